"""What every service shares: the call context, engine calls off the loop, access levels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..auth import Authenticator, Principal
from ..errors import RpcError, from_engine_error

if TYPE_CHECKING:
    from ..config import Config
    from ..descriptors import MethodInfo
    from ..metrics import Metrics

# What each RPC needs from the caller's key. Health needs none.
ACCESS: dict[str, str] = {
    "Health": "public",
    "GetMemory": "read",
    "ListMemories": "read",
    "Recall": "read",
    "BatchRecall": "read",
    "GetMemoryHistory": "read",
    "GetMemoryGraph": "read",
    "ExportMemories": "read",
    "ListAgents": "read",
    "GetAgent": "read",
    "GetServerInfo": "read",
    "GetClusterStatus": "read",
    "Embed": "read",
    "StoreMemory": "write",
    "BatchStoreMemories": "write",
    "UpdateMemory": "write",
    "DeleteMemory": "write",
    "ForgetMemories": "write",
    "LinkMemories": "write",
    "UnlinkMemories": "write",
    "ImportMemories": "write",
    "DeleteAgent": "write",
    "GetStats": "admin",
    "CreateApiKey": "admin",
    "ListApiKeys": "admin",
    "RevokeApiKey": "admin",
}


@dataclass
class CallContext:
    """One call, whatever the transport."""

    method: MethodInfo
    transport: str  # grpc | grpc-web | rest
    authorization: str | None = None
    principal: Principal | None = None
    agent_id: str = ""  # for the access log
    deadline: float | None = None  # loop.time() at which the call expires
    started: float = field(default_factory=time.perf_counter)

    @property
    def who(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def note_agent(self, agent_id: str) -> None:
        if agent_id and not self.agent_id:
            self.agent_id = agent_id


class ServiceBase:
    def __init__(self, engine: Any, config: Config, auth: Authenticator, metrics: Metrics, state: Any) -> None:
        self.engine = engine
        self.config = config
        self.auth = auth
        self.metrics = metrics
        self.state = state  # the app's ServerState (health status, start time)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the engine in its worker pool; engine errors become RpcErrors."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.engine.executor, fn, *args)
        except RpcError:
            raise
        except Exception as exc:
            err = from_engine_error(exc)
            if err.code == "INTERNAL":
                import logging

                logging.getLogger("engram.server").exception("engine call failed")
            raise err from exc

    async def owned_agent(self, ctx: CallContext, memory_id: str, agent_id: str) -> str:
        """The agent a by-id call acts on, enforcing the key's scope.

        A named agent outside the key's scope → PERMISSION_DENIED. A pinned key without a named
        agent may only see its agents' memories: another agent's memory is NOT_FOUND, exactly as
        if it did not exist (no probing of ids).
        """
        p = ctx.who
        if agent_id:
            p.require_agent(agent_id)
            ctx.note_agent(agent_id)
            return agent_id
        if not p.pinned:
            return ""
        mem = await self.run(self.engine.get, memory_id, "")
        if not p.may_access_agent(mem.agent_id):
            raise RpcError("NOT_FOUND", f"memory {memory_id!r} not found")
        ctx.note_agent(mem.agent_id)
        return str(mem.agent_id)
