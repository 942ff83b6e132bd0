package engram

import (
	"context"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// ConsolidateOption is an option of [Client.Consolidate].
type ConsolidateOption func(*consolidateOptions)

type consolidateOptions struct {
	dryRun    bool
	threshold *float32
}

// DryRun makes [Client.Consolidate] only list the groups of duplicates it would merge, changing
// nothing. A dry run needs an API key that may read the agent; merging needs one that may
// write. Default: merge.
func DryRun() ConsolidateOption {
	return func(o *consolidateOptions) { o.dryRun = true }
}

// SimilarityThreshold sets the cosine similarity, from 0.5 to 1, from which
// [Client.Consolidate] takes two memories for duplicates (outside that range the server
// answers INVALID_ARGUMENT). Default: the server's duplicate threshold (0.95 unless
// configured).
func SimilarityThreshold(t float32) ConsolidateOption {
	return func(o *consolidateOptions) { o.threshold = &t }
}

// Consolidate finds the near-duplicate memories of agentID and merges each group into one
// memory, the most important (then the oldest) of the group (ConsolidateMemories): the kept
// memory gets a new version, the others' records stay in its History, their links move to it,
// and they are deleted. It returns the groups (DuplicateGroup: KeepId, DuplicateIds,
// MinSimilarity) and how many memories were merged (MergedCount). With [DryRun] it only lists
// the groups; a dry run is retried on UNAVAILABLE, a merge never is (run it again instead: a
// consolidated agent has no more groups).
func (c *Client) Consolidate(ctx context.Context, agentID string, opts ...ConsolidateOption) (*ConsolidateMemoriesResponse, error) {
	var o consolidateOptions
	for _, opt := range opts {
		opt(&o)
	}
	req := &engramv1.ConsolidateMemoriesRequest{AgentId: agentID, DryRun: o.dryRun, SimilarityThreshold: o.threshold}
	return unary(ctx, c, o.dryRun, c.memory.ConsolidateMemories, req)
}
