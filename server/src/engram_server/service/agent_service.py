"""AgentService: inspect and erase agents (memory namespaces)."""

from __future__ import annotations

from .. import pb
from ..engine.models import AgentInfo
from . import convert as cv
from . import validation as v
from .base import CallContext, ServiceBase


class AgentService(ServiceBase):
    async def list_agents(self, req: pb.ListAgentsRequest, ctx: CallContext) -> pb.ListAgentsResponse:
        size = v.page_size(req.page_size, self.config)
        p = ctx.who
        if not p.pinned:
            agents, token, total = await self.run(self.engine.list_agents, size, req.page_token)
            return self._agents(agents, token, total)

        # A pinned key sees only its agents: gathered whole (they are few), one page.
        def gather() -> list[AgentInfo]:
            out: list[AgentInfo] = []
            token = ""
            while True:
                agents, token, _ = self.engine.list_agents(1000, token)
                out.extend(a for a in agents if p.may_access_agent(a.agent_id))
                if not token:
                    return out

        agents = await self.run(gather)
        return self._agents(agents, "", len(agents))

    @staticmethod
    def _agents(agents: list[AgentInfo], token: str, total: int) -> pb.ListAgentsResponse:
        out = pb.ListAgentsResponse(next_page_token=token, total_size=total)
        for a in agents:
            cv.fill_agent(out.agents.add(), a)
        return out

    async def get_agent(self, req: pb.GetAgentRequest, ctx: CallContext) -> pb.GetAgentResponse:
        v.agent_id(req.agent_id)
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        info = await self.run(self.engine.get_agent, req.agent_id)
        out = pb.GetAgentResponse()
        cv.fill_agent(out.agent, info)
        return out

    async def delete_agent(self, req: pb.DeleteAgentRequest, ctx: CallContext) -> pb.DeleteAgentResponse:
        v.agent_id(req.agent_id)
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        n = await self.run(self.engine.delete_agent, req.agent_id)
        return pb.DeleteAgentResponse(deleted_memory_count=n)
