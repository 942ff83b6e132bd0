package engram

import (
	"context"
	"iter"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// ListAgents returns one page of the agents that have memories, in agent id order
// (ListAgents), with the total count. pageSize 0 means 50; pageToken is the NextPageToken of
// the previous page, "" for the first. Use Agents to iterate over every page.
func (c *Client) ListAgents(ctx context.Context, pageSize int, pageToken string) (*ListAgentsResponse, error) {
	req := &engramv1.ListAgentsRequest{PageSize: int32(pageSize), PageToken: pageToken}
	return unary(ctx, c, true, c.agent.ListAgents, req)
}

// Agents iterates over every agent, fetching pages of pageSize (0 means 50), each retried on
// UNAVAILABLE. The iteration stops after the first error, which it yields with a nil agent.
func (c *Client) Agents(ctx context.Context, pageSize int) iter.Seq2[*Agent, error] {
	return pages(ctx, "", func(ctx context.Context, token string) ([]*Agent, string, error) {
		res, err := c.ListAgents(ctx, pageSize, token)
		return res.GetAgents(), res.GetNextPageToken(), err
	})
}

// GetAgent returns the agent with its counts, sizes and last activity (GetAgent). It fails
// with NOT_FOUND for an agent without memories.
func (c *Client) GetAgent(ctx context.Context, agentID string) (*Agent, error) {
	res, err := unary(ctx, c, true, c.agent.GetAgent, &engramv1.GetAgentRequest{AgentId: agentID})
	return res.GetAgent(), err
}

// DeleteAgent erases an agent: every memory, vector, index, link and version (DeleteAgent).
// It returns how many memories were erased. It cannot be undone.
func (c *Client) DeleteAgent(ctx context.Context, agentID string) (int, error) {
	res, err := unary(ctx, c, true, c.agent.DeleteAgent, &engramv1.DeleteAgentRequest{AgentId: agentID})
	return int(res.GetDeletedMemoryCount()), err
}
