"""Thin benchmark clients over the public API: gRPC with the generated stubs, REST with httpx.

Kept free of SDK conveniences (retries, iterators) so the figures measure the server. Responses
are parsed by the protobuf runtime's C parser (upb: the server's generated classes), not by
betterproto2's pure-Python one: parsing a 10-hit recall response there costs milliseconds of
the load generator's CPU, which would be counted as server latency.
"""

from __future__ import annotations

from typing import Any, Protocol

import grpc
import httpx

from engram.models import (
    BatchStoreMemoriesRequest,
    RecallRequest,
    StoreMemoryRequest,
)
from engram_server.pb import RecallResponse

from .common import ROOT_KEY

_METADATA = (("authorization", f"Bearer {ROOT_KEY}"),)


class BenchClient(Protocol):
    def store(self, agent_id: str, content: str) -> str: ...
    def batch_store(self, agent_id: str, contents: list[str]) -> int: ...
    def recall(self, agent_id: str, query: str, top_k: int = 10) -> list[str]: ...
    last_took_ms: float  # the server's own `took_ms` of the last recall (engine time, no transport)
    def close(self) -> None: ...


class GrpcClient:
    transport = "grpc"
    last_took_ms = 0.0

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(
            target, options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        # Multi-callables built once: the figures should not include their set-up.
        self._store = self._channel.unary_unary(
            "/engram.v1.MemoryService/StoreMemory", StoreMemoryRequest.SerializeToString, lambda b: b
        )
        self._batch_store = self._channel.unary_unary(
            "/engram.v1.MemoryService/BatchStoreMemories", BatchStoreMemoriesRequest.SerializeToString, lambda b: b
        )
        self._recall = self._channel.unary_unary(
            "/engram.v1.MemoryService/Recall", RecallRequest.SerializeToString, RecallResponse.FromString
        )
        self._health = self._channel.unary_unary("/engram.v1.AdminService/Health", lambda _m: b"", lambda b: b)

    def store(self, agent_id: str, content: str) -> str:
        resp = self._store(StoreMemoryRequest(agent_id=agent_id, content=content), metadata=_METADATA)
        return str(len(resp))

    def batch_store(self, agent_id: str, contents: list[str]) -> int:
        req = BatchStoreMemoriesRequest(
            requests=[StoreMemoryRequest(agent_id=agent_id, content=c) for c in contents]
        )
        resp = self._batch_store(req, metadata=_METADATA, timeout=600)
        return len(contents) if resp is not None else 0

    def recall(self, agent_id: str, query: str, top_k: int = 10) -> list[str]:
        resp = self._recall(RecallRequest(agent_id=agent_id, query=query, top_k=top_k), metadata=_METADATA)
        self.last_took_ms = float(resp.took_ms)
        return [m.id for m in resp.memories]

    def health(self) -> None:
        self._health(None)

    def close(self) -> None:
        self._channel.close()


class RestClient:
    transport = "rest"
    last_took_ms = 0.0

    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(
            base_url=base_url, timeout=600, headers={"authorization": f"Bearer {ROOT_KEY}"}
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self._http.post(path, json=body)
        if resp.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status_code}: {resp.text[:300]}")
        data: dict[str, Any] = resp.json()
        return data

    def store(self, agent_id: str, content: str) -> str:
        return str(self._post("/v1/memories", {"agent_id": agent_id, "content": content})["memory"]["id"])

    def batch_store(self, agent_id: str, contents: list[str]) -> int:
        body = {"requests": [{"agent_id": agent_id, "content": c} for c in contents]}
        return len(self._post("/v1/memories:batchStore", body)["memories"])

    def recall(self, agent_id: str, query: str, top_k: int = 10) -> list[str]:
        data = self._post("/v1/memories/recall", {"agent_id": agent_id, "query": query, "top_k": top_k})
        self.last_took_ms = float(data.get("took_ms", 0.0))
        return [m["id"] for m in data.get("memories", [])]

    def health(self) -> None:
        self._http.get("/health")

    def close(self) -> None:
        self._http.close()


def make_client(transport: str, target: str, base_url: str) -> GrpcClient | RestClient:
    return GrpcClient(target) if transport == "grpc" else RestClient(base_url)
