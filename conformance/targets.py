"""What the runner calls: raw REST with httpx, or an SDK's client shim over stdin/stdout.

Shim protocol (JSON Lines, one object per line each way; see README.md):

    runner → shim  {"id": 7, "url": "http://127.0.0.1:4411", "transport": "grpc",
                    "api_key": "...", "rpc": "MemoryService.StoreMemory",
                    "request": {...proto3 JSON...} | [...one per message, client streaming...],
                    "timeout_ms": 0}
    shim → runner  {"id": 7, "response": {...}}            unary / client streaming
                   {"id": 7, "responses": [{...}, ...]}    server streaming
                   {"id": 7, "error": {"code": "NOT_FOUND", "message": "..."}}

The shim calls the SDK's public client API (never raw stubs), keeps one client per
(url, transport, api_key), and writes proto3 JSON of the response messages.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from engram._gen.codes import CODE_FOR_HTTP_STATUS

from .api import REPO, Rpc, rpcs

# The code of an HTTP error status whose body names none (generated from google/rpc/code.proto), and
# 413, which the server answers for a body over the size limit.
_STATUS_TO_CODE = {**CODE_FOR_HTTP_STATUS, 413: "RESOURCE_EXHAUSTED"}


@dataclass
class Outcome:
    response: Any = None  # dict, or list of dicts for server streaming
    error: dict[str, Any] | None = None


class Target(Protocol):
    name: str  # "<sdk>/<transport>"

    def call(self, rpc: Rpc, request: Any, api_key: str | None, timeout_ms: int, take: int = 0) -> Outcome: ...
    def close(self) -> None: ...


class RawRestTarget:
    """REST exactly as a user with curl would call it: the http rule, JSON in and out."""

    name = "rest-raw/rest"

    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=60)

    def call(self, rpc: Rpc, request: Any, api_key: str | None, timeout_ms: int, take: int = 0) -> Outcome:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        rule = rpc.http
        if rpc.client_streaming:
            body = "\n".join(json.dumps(r) for r in request) + "\n"
            resp = self._http.request(rule.method, rule.path, content=body.encode(),
                                      headers={**headers, "content-type": "application/x-ndjson"})
            return self._outcome(resp, stream=False)
        fields = dict(request)
        path = rule.path

        def fill(match: re.Match[str]) -> str:
            value: Any = fields
            parts = match.group(1).split(".")
            for part in parts:
                value = value.get(part, "") if isinstance(value, dict) else ""
            if len(parts) == 1:
                fields.pop(parts[0], None)
            return httpx.URL("/" + str(value)).raw_path.decode()[1:] if value else ""

        path = re.sub(r"\{([a-z_.]+)\}", fill, path)
        kwargs: dict[str, Any] = {"headers": headers}
        if rule.body == "*":
            kwargs["json"] = fields
        elif rule.body:
            kwargs["json"] = fields.pop(rule.body, {})
            kwargs["params"] = _flatten_query(fields)
        else:
            kwargs["params"] = _flatten_query(fields)
        if timeout_ms:
            kwargs["timeout"] = timeout_ms / 1000
        if take and rpc.server_streaming:  # an endless stream (WatchMemories): read N lines, hang up
            with self._http.stream(rule.method, path, **kwargs) as resp:
                if resp.status_code != 200:
                    resp.read()
                    return self._outcome(resp, stream=True)
                lines: list[Any] = []
                for line in resp.iter_lines():
                    if line.strip():
                        lines.append(json.loads(line))
                        if len(lines) >= take:
                            break
                return Outcome(response=lines)
        resp = self._http.request(rule.method, path, **kwargs)
        return self._outcome(resp, stream=rpc.server_streaming)

    @staticmethod
    def _outcome(resp: httpx.Response, stream: bool) -> Outcome:
        if resp.status_code != 200:
            try:
                body = resp.json()
                code = body.get("code")
            except ValueError:
                body, code = {}, None
            code = code if isinstance(code, str) else _STATUS_TO_CODE.get(resp.status_code, f"HTTP_{resp.status_code}")
            return Outcome(error={"code": code, "message": str(body.get("message", resp.text[:200]))})
        if stream:
            return Outcome(response=[json.loads(line) for line in resp.text.splitlines() if line.strip()])
        return Outcome(response=resp.json())

    def close(self) -> None:
        self._http.close()


def _flatten_query(fields: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Non-body fields as query parameters: nested messages dotted, repeated fields repeated."""
    out: list[tuple[str, str]] = []
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten_query(value, f"{name}.")
        elif isinstance(value, list):
            out += [(name, _scalar(v)) for v in value]
        else:
            out.append((name, _scalar(value)))
    return out


def _scalar(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class ShimTarget:
    """An SDK's conformance shim process for one transport."""

    def __init__(self, sdk: str, transport: str, command: list[str], base_url: str) -> None:
        self.name = f"{sdk}/{transport}"
        self._transport = transport
        self._url = base_url
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                      cwd=REPO)
        self._next = 0
        self._lock = threading.Lock()

    def call(self, rpc: Rpc, request: Any, api_key: str | None, timeout_ms: int, take: int = 0) -> Outcome:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._next += 1
            msg = {"id": self._next, "url": self._url, "transport": self._transport, "api_key": api_key,
                   "rpc": rpc.name, "request": request, "timeout_ms": timeout_ms}
            if take:
                msg["take"] = take
            self._proc.stdin.write(json.dumps(msg) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: shim exited (code {self._proc.poll()})")
        reply = json.loads(line)
        if reply.get("id") != msg["id"]:
            raise RuntimeError(f"{self.name}: reply id {reply.get('id')} for request {msg['id']}")
        if "error" in reply:
            return Outcome(error=reply["error"])
        return Outcome(response=reply.get("responses") if "responses" in reply else reply.get("response"))

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


@dataclass
class ClientSpec:
    sdk: str
    command: list[str]
    build: list[str] | None
    transports: list[str]
    features: list[str]
    known_failing: Path
    # Per-transport overrides of `features`, for what a transport itself cannot carry (gRPC-Web in a
    # browser has no client streaming: fetch cannot stream a request body).
    transport_features: dict[str, list[str]] = field(default_factory=dict)

    def features_for(self, transport: str) -> set[str]:
        return set(self.transport_features.get(transport, self.features))


def client_specs(path: Path = Path(__file__).resolve().parent / "clients.yaml") -> list[ClientSpec]:
    doc = yaml.safe_load(path.read_text())
    specs = []
    for sdk, raw in doc["clients"].items():
        def expand(parts: list[str] | None) -> list[str] | None:
            return [p.replace("{repo}", str(REPO)) for p in parts] if parts else None

        specs.append(ClientSpec(
            sdk=sdk, command=expand(raw["command"]) or [], build=expand(raw.get("build")),
            transports=list(raw["transports"]), features=list(raw.get("features", [])),
            known_failing=REPO / "conformance" / "known-failing" / f"{sdk}.txt",
            transport_features={t: list(f) for t, f in (raw.get("transport_features") or {}).items()},
        ))
    return specs


def rpc(name: str) -> Rpc:
    table = rpcs()
    if name not in table:
        raise KeyError(f"unknown rpc {name}")
    return table[name]
