"""The method table: every RPC of the descriptor set bound to its one implementation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from .. import pb
from ..descriptors import Api, MethodInfo
from ..errors import RpcError
from .admin_service import AdminService
from .agent_service import AgentService
from .base import ACCESS, CallContext, ServiceBase
from .embedding_service import EmbeddingService
from .memory_service import MemoryService

SERVICES = {
    "MemoryService": MemoryService,
    "AgentService": AgentService,
    "AdminService": AdminService,
    "EmbeddingService": EmbeddingService,
}


if TYPE_CHECKING:
    from ..auth import Authenticator
    from ..config import Config
    from ..engine.engine import Engine
    from ..metrics import Metrics
    from ..state import ServerState


@dataclass
class Method:
    info: MethodInfo
    request_cls: type[Message]
    response_cls: type[Message]
    handler: Callable[..., Any]  # what transports call (in cluster mode: the router)
    access: str
    local: Callable[..., Any]  # the service's own implementation, on this node's engine


class Registry:
    def __init__(
        self, api: Api, engine: Engine, config: Config, auth: Authenticator, metrics: Metrics, state: ServerState
    ) -> None:
        self.auth = auth
        self.services: dict[str, ServiceBase] = {
            name: cls(engine, config, auth, metrics, state) for name, cls in SERVICES.items()
        }
        self.methods: dict[str, Method] = {}
        for path, info in api.methods.items():
            svc = self.services.get(info.service)
            handler = getattr(svc, info.snake_name, None) if svc else None
            if handler is None:
                continue  # declared but not implemented: UNIMPLEMENTED at call time
            self.methods[path] = Method(
                info=info,
                request_cls=getattr(pb, info.input_type.rsplit(".", 1)[1]),
                response_cls=getattr(pb, info.output_type.rsplit(".", 1)[1]),
                handler=handler,
                access=ACCESS.get(info.name, "admin"),
                local=handler,
            )

    def route_through(self, wrap: Callable[[Method], Callable[..., Any]]) -> None:
        """Cluster mode: every call goes through wrap(method) (cluster/node.py routes it)."""
        for m in self.methods.values():
            m.handler = wrap(m)

    def get(self, path: str) -> Method:
        m = self.methods.get(path)
        if m is None:
            raise RpcError("UNIMPLEMENTED", f"unknown method {path}")
        return m

    async def authorize(self, method: Method, ctx: CallContext) -> None:
        ctx.principal = await self.auth.authenticate(ctx.authorization, method.access)
        ctx.principal.require(method.access)
