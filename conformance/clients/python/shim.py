"""Conformance shim for the Python SDK: JSON Lines on stdin → `engram.Client` calls → JSON Lines.

Built on the SDK's public API only (`engram.Client`, `engram.models`, `engram.errors`); see
conformance/README.md for the protocol. Each request's proto3 JSON is turned into the keyword
arguments a Python user would pass.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import betterproto2

import engram
from engram import models

Handler = Callable[[engram.Client, dict[str, Any]], Any]
StreamHandler = Callable[[engram.Client, dict[str, Any]], Iterator[Any]]


def _opt(req: dict[str, Any], *names: str) -> dict[str, Any]:
    """The named fields present in the request, as keyword arguments."""
    return {n: req[n] for n in names if n in req}


def _update(client: engram.Client, req: dict[str, Any]) -> Any:
    memory = dict(req.get("memory") or {})
    mask = req.get("update_mask")
    fields = ("content", "memory_type", "importance", "tags", "metadata", "session_id", "event_time", "expires_at")
    if isinstance(mask, str) and mask:
        # proto3 JSON writes FieldMask paths in lowerCamelCase; an absent field in a masked path means "clear it"
        paths = [betterproto2.casing.snake_case(p) for p in mask.split(",")]
        defaults: dict[str, Any] = {"content": "", "tags": [], "metadata": {}, "session_id": "", "importance": 0.0}
        unknown = [p for p in paths if p not in fields]
        if unknown:
            # The typed API has no way to name other fields: the SDK refuses such a call.
            raise ValueError(f"update_mask names fields that cannot be updated: {unknown}")
        kwargs = {p: memory.get(p, defaults.get(p)) for p in paths}
    else:
        kwargs = {f: memory[f] for f in fields if f in memory}
    return client.update(memory.get("id", ""), agent_id=req.get("agent_id", ""),
                         ttl_seconds=int(req.get("ttl_seconds", 0)), **kwargs)


HANDLERS: dict[str, Handler] = {
    "MemoryService.StoreMemory": lambda c, r: c.store(
        r.get("agent_id", ""), r.get("content", ""),
        **_opt(r, "memory_type", "importance", "tags", "metadata", "session_id", "event_time", "expires_at", "id",
               "key", "duplicate_policy", "duplicate_threshold"),
        ttl_seconds=int(r.get("ttl_seconds", 0)),
    ),
    # Each item as the dict of store()'s keyword arguments a user would pass (key, duplicate_policy, ...).
    "MemoryService.BatchStoreMemories": lambda c, r: c.batch_store(
        [{k: (int(v) if k == "ttl_seconds" else v) for k, v in x.items()} for x in r.get("requests", [])]
    ),
    "MemoryService.GetMemory": lambda c, r: c.get(r.get("id", ""), **_opt(r, "agent_id")),
    "MemoryService.UpdateMemory": _update,
    "MemoryService.DeleteMemory": lambda c, r: c.delete(r.get("id", ""), **_opt(r, "agent_id")),
    "MemoryService.ListMemories": lambda c, r: c.list(
        r.get("agent_id", ""), **_opt(r, "page_size", "page_token", "filter", "order_by")
    ),
    "MemoryService.Recall": lambda c, r: c.recall(
        r.get("agent_id", ""), r.get("query", ""),
        **_opt(r, "top_k", "filter", "mode", "explain", "include_associated", "min_score"),
    ),
    "MemoryService.BatchRecall": lambda c, r: c.batch_recall(
        [models.RecallRequest.from_dict(x) for x in r.get("requests", [])]
    ),
    "MemoryService.ForgetMemories": lambda c, r: c.forget(
        r.get("agent_id", ""), filter=r.get("filter"), **_opt(r, "dry_run")
    ),
    "MemoryService.ConsolidateMemories": lambda c, r: c.consolidate(
        r.get("agent_id", ""), **_opt(r, "dry_run", "similarity_threshold")
    ),
    "MemoryService.GetMemoryHistory": lambda c, r: c.history(r.get("id", ""), **_opt(r, "agent_id")),
    "MemoryService.LinkMemories": lambda c, r: c.link(
        r.get("agent_id", ""), r.get("source_id", ""), r.get("target_id", ""), **_opt(r, "relation", "weight")
    ),
    "MemoryService.UnlinkMemories": lambda c, r: c.unlink(
        r.get("agent_id", ""), r.get("source_id", ""), r.get("target_id", ""), **_opt(r, "relation")
    ),
    "MemoryService.GetMemoryGraph": lambda c, r: c.graph(
        r.get("agent_id", ""), r.get("id", ""), **_opt(r, "depth", "relations", "max_nodes")
    ),
    "MemoryService.ImportMemories": lambda c, r: c.import_memories(
        [models.ImportMemoriesRequest.from_dict(x) for x in r]
    ),
    "AgentService.ListAgents": lambda c, r: c.list_agents(**_opt(r, "page_size", "page_token")),
    "AgentService.GetAgent": lambda c, r: c.get_agent(r.get("agent_id", "")),
    "AgentService.DeleteAgent": lambda c, r: c.delete_agent(r.get("agent_id", "")),
    "AdminService.Health": lambda c, r: c.health(),
    "AdminService.GetServerInfo": lambda c, r: c.server_info(),
    "AdminService.GetStats": lambda c, r: c.stats(),
    "AdminService.CreateApiKey": lambda c, r: c.create_api_key(
        r.get("name", ""), r.get("role", "API_KEY_ROLE_UNSPECIFIED"), **_opt(r, "agent_ids", "agent_id_prefix", "ttl_seconds")
    ),
    "AdminService.ListApiKeys": lambda c, r: c.list_api_keys(**_opt(r, "include_revoked")),
    "AdminService.RevokeApiKey": lambda c, r: c.revoke_api_key(r.get("id", "")),
    "AdminService.GetClusterStatus": lambda c, r: c.cluster_status(),
    "AdminService.DrainClusterNode": lambda c, r: c.drain_cluster_node(r.get("node_id", "")),
    "EmbeddingService.Embed": lambda c, r: _embed(c, r),
}


# Server-streaming RPCs: an iterator of responses, of which the shim reads `take` (or all).
STREAMS: dict[str, StreamHandler] = {
    "MemoryService.ExportMemories": lambda c, r: (
        models.ExportMemoriesResponse(memory=m) for m in c.export(r.get("agent_id", ""), **_opt(r, "filter"))
    ),
    # The raw responses (heartbeats included), not watch()'s events: the cases check responses.
    "MemoryService.WatchMemories": lambda c, r: c.watch_responses(
        r.get("agent_id", ""), **_opt(r, "start_after")
    ),
}


def _stream(client: engram.Client, rpc: str, request: dict[str, Any], take: int | None) -> list[Any]:
    """The first `take` responses of a server stream (then the call is cancelled), or all of them."""
    responses = STREAMS[rpc](client, request)
    try:
        return list(itertools.islice(responses, take) if take else responses)
    finally:
        close = getattr(responses, "close", None)
        if close is not None:
            close()  # cancels the call (an endless watch)


def _embed(client: engram.Client, req: dict[str, Any]) -> models.EmbedResponse:
    vectors = client.embed(req.get("texts", []), **_opt(req, "input_type"))
    info = client.server_info()
    return models.EmbedResponse(
        embeddings=[models.Embedding(vector=engram.encode_vector(v)) for v in vectors],
        model=info.embedding_model, dimensions=len(vectors[0]) if vectors else 0,
    )


def _to_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, betterproto2.Message):
        return value.to_dict(casing=betterproto2.Casing.SNAKE)
    return value


def main() -> None:
    clients: dict[tuple[str, str, str | None], engram.Client] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        key = (msg["url"], msg["transport"], msg.get("api_key"))
        if key not in clients:
            url = msg["url"].replace("http://", "grpc://", 1) if msg["transport"] == "grpc" else msg["url"]
            clients[key] = engram.Client(url, api_key=msg.get("api_key") or "", retry=engram.Retry(attempts=1))
        client = clients[key]
        reply: dict[str, Any] = {"id": msg["id"]}
        try:
            if msg["rpc"] in STREAMS:
                result: Any = _stream(client, msg["rpc"], msg["request"], msg.get("take"))
            else:
                result = HANDLERS[msg["rpc"]](client, msg["request"])
            reply["responses" if isinstance(result, list) else "response"] = _to_json(result)
        except engram.EngramError as err:
            reply["error"] = {"code": err.code, "message": err.message}
        except (TypeError, ValueError) as err:  # the SDK refused the arguments before sending
            reply["error"] = {"code": "INVALID_ARGUMENT", "message": f"client-side: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    for client in clients.values():
        client.close()


if __name__ == "__main__":
    main()
