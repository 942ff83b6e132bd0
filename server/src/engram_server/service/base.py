"""What every service shares: the call context, engine calls off the loop, access levels."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..auth import Authenticator, Principal
from ..engine import clock
from ..errors import RpcError, from_engine_error, invalid
from . import validation

if TYPE_CHECKING:
    from ..config import Config
    from ..descriptors import MethodInfo
    from ..engine.engine import Engine
    from ..metrics import Metrics
    from ..state import ServerState

log = logging.getLogger("engram.server")
T = TypeVar("T")

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
    "WatchMemories": "read",
    "ConsolidateMemories": "read",  # a dry run reads; a merge needs write (memory_service.py)
    "ListAgents": "read",
    "GetAgent": "read",
    "GetServerInfo": "read",
    "GetClusterStatus": "read",
    "DrainClusterNode": "admin",
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
    # Cluster mode: the token a read waits for (x-engram-token) and the one a write returns.
    consistency_token: str = ""
    response_token: str = ""
    started: float = field(default_factory=time.perf_counter)

    @property
    def who(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def note_agent(self, agent_id: str) -> None:
        if agent_id and not self.agent_id:
            self.agent_id = agent_id


class ServiceBase:
    def __init__(
        self, engine: Engine, config: Config, auth: Authenticator, metrics: Metrics, state: ServerState
    ) -> None:
        self.engine = engine
        self.config = config
        self.auth = auth
        self.metrics = metrics
        self.state = state  # health status, start time

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the engine in its worker pool; engine errors become RpcErrors."""
        loop = asyncio.get_running_loop()
        if clock.current() is not None:  # a write applied from the cluster log: keep its clock
            fn = functools.partial(contextvars.copy_context().run, fn)
        try:
            return await loop.run_in_executor(self.engine.executor, fn, *args)
        except RpcError:
            raise
        except Exception as exc:
            err = from_engine_error(exc)
            if err.code == "INTERNAL":
                log.exception("engine call failed")
            raise err from exc

    async def agent_of(self, ctx: CallContext, memory_id: str, agent_id: str) -> str:
        """The agent a by-id call acts on, within the key's scope.

        Memory ids are per agent. A named agent outside the key's scope is PERMISSION_DENIED.
        Without a named agent, the id is looked up among the agents the key may access: none →
        NOT_FOUND (exactly as for an id that exists nowhere: nothing about other agents' ids can
        be learned); more than one → INVALID_ARGUMENT asking for agent_id.
        """
        p = ctx.who
        if agent_id:
            validation.agent_id(agent_id)
            p.require_agent(agent_id)
            ctx.note_agent(agent_id)
            return agent_id
        owners = [a for a in await self.run(self.engine.owners, memory_id) if p.may_access_agent(a)]
        if not owners:
            raise RpcError("NOT_FOUND", f"memory {memory_id} not found")
        if len(owners) > 1:
            raise invalid("agent_id", f"memory id {memory_id} exists in {len(owners)} agents; name the agent")
        ctx.note_agent(owners[0])
        return owners[0]
