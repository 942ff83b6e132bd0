package engram

import (
	"context"
	"io"
	"iter"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// StoreOptions holds the optional fields of a memory to store. The zero value (or nil) stores
// an episodic memory of importance 0.5 that never expires, or, under the server's default
// duplicate policy, merges it into the agent's memory with the same text.
type StoreOptions struct {
	// ID is a client-chosen id (1 to 128 characters of [A-Za-z0-9._:-]). Storing the same id
	// and content again returns the existing memory (Created false, Outcome
	// StoreOutcomeUnchanged), so a Store with an ID is safe to retry and is retried on
	// UNAVAILABLE; the same id with other content fails with ALREADY_EXISTS. A memory with an ID
	// is never merged into a duplicate. Exclusive with Key. Empty: the server assigns an id, and
	// the call is not retried (unless Key is set).
	ID string
	// Type is the kind of memory; MemoryTypeUnspecified means episodic.
	Type MemoryType
	// Importance, from 0 to 1; nil means 0.5.
	Importance *float32
	// Tags are labels to filter by.
	Tags []string
	// Metadata is arbitrary JSON-like metadata (see Filter.MetadataEquals for the value types).
	Metadata map[string]any
	// SessionID groups memories of one conversation or task run.
	SessionID string
	// EventTime is when the remembered thing happened; zero means now.
	EventTime time.Time
	// TTL makes the memory expire after this long (whole seconds); 0 means never.
	// Exclusive with ExpiresAt.
	TTL time.Duration
	// ExpiresAt makes the memory expire at this time; zero means never. Exclusive with TTL.
	ExpiresAt time.Time
	// Key is an upsert key, unique within the agent: any text without control characters, at
	// most 512 UTF-8 bytes. When the agent already has a memory with this key, that memory is
	// replaced by this one (same id, a new version, the old one kept in its History; Outcome
	// StoreOutcomeReplaced); otherwise a new memory is stored with the key. A Store with a Key
	// converges on the same memory however often it runs (a repeat replaces it again, with a
	// new version), so it is retried on UNAVAILABLE. Exclusive with ID. Empty: no key.
	Key string
	// DuplicatePolicy is what the store does when the agent already holds the same memory:
	// DuplicatePolicyOff stores a copy, DuplicatePolicyExact merges the same text into the
	// existing memory, DuplicatePolicyNear also merges a text whose embedding is within
	// DuplicateThreshold. A merge answers Outcome StoreOutcomeMerged with the existing memory,
	// updated. DuplicatePolicyUnspecified: the server's default (exact unless configured).
	DuplicatePolicy DuplicatePolicy
	// DuplicateThreshold is the cosine similarity, from 0.5 to 1, from which
	// DuplicatePolicyNear merges; nil means the server's duplicate threshold (default 0.95).
	DuplicateThreshold *float32
}

// StoreItem is one memory of a BatchStore: its agent, its content and its optional fields
// (Key, DuplicatePolicy and DuplicateThreshold included).
type StoreItem struct {
	AgentID string
	Content string
	StoreOptions
}

func storeRequest(agentID, content string, o *StoreOptions) (*engramv1.StoreMemoryRequest, error) {
	if o == nil {
		o = &StoreOptions{}
	}
	md, err := toStruct("metadata", o.Metadata)
	if err != nil {
		return nil, err
	}
	return &engramv1.StoreMemoryRequest{
		AgentId:    agentID,
		Content:    content,
		MemoryType: o.Type,
		Importance: o.Importance,
		Tags:       o.Tags,
		Metadata:   md,
		SessionId:  o.SessionID,
		EventTime:  timestamp(o.EventTime),
		TtlSeconds: int64(o.TTL / time.Second),
		ExpiresAt:  timestamp(o.ExpiresAt),
		Id:         o.ID,
		Key:        o.Key,

		DuplicatePolicy:    o.DuplicatePolicy,
		DuplicateThreshold: o.DuplicateThreshold,
	}, nil
}

// safeToRetry reports whether a store request converges however often it is applied: it
// names its memory by a client-chosen id or an upsert key.
func safeToRetry(r *engramv1.StoreMemoryRequest) bool { return r.Id != "" || r.Key != "" }

// Store stores one memory of agentID (StoreMemory) and returns it with what the store did in
// Outcome: StoreOutcomeCreated (a new memory; Created true), StoreOutcomeUnchanged (a
// client-chosen ID already held the same content), StoreOutcomeMerged (a duplicate, merged into
// the existing memory that Memory is; see StoreOptions.DuplicatePolicy) or StoreOutcomeReplaced
// (the memory with StoreOptions.Key was replaced). opts may be nil. The memory is visible to
// the next Recall as soon as Store returns. Retried on UNAVAILABLE only when opts.ID or
// opts.Key is set.
func (c *Client) Store(ctx context.Context, agentID, content string, opts *StoreOptions) (*StoreMemoryResponse, error) {
	req, err := storeRequest(agentID, content, opts)
	if err != nil {
		return nil, err
	}
	return unary(ctx, c, safeToRetry(req), c.memory.StoreMemory, req)
}

// BatchStore stores many memories of one agent at once, all or nothing (BatchStoreMemories),
// and returns them in order with what each store did in Outcomes (see Store; a duplicate of an
// earlier item of the same batch is merged into it). Retried on UNAVAILABLE only when every
// item has an ID or a Key.
func (c *Client) BatchStore(ctx context.Context, items []StoreItem) (*BatchStoreMemoriesResponse, error) {
	req := &engramv1.BatchStoreMemoriesRequest{}
	idempotent := len(items) > 0
	for i := range items {
		r, err := storeRequest(items[i].AgentID, items[i].Content, &items[i].StoreOptions)
		if err != nil {
			return nil, err
		}
		idempotent = idempotent && safeToRetry(r)
		req.Requests = append(req.Requests, r)
	}
	return unary(ctx, c, idempotent, c.memory.BatchStoreMemories, req)
}

// MemoryOption is an option of the calls that name one memory by its id: Get, Delete and
// History.
type MemoryOption func(*memoryOptions)

type memoryOptions struct {
	agentID string
}

// ForAgent makes the call fail with NOT_FOUND unless the memory belongs to agentID (the
// request's agent_id), as if the memories of other agents did not exist. Default: any agent
// the API key may read.
func ForAgent(agentID string) MemoryOption {
	return func(o *memoryOptions) { o.agentID = agentID }
}

func applyMemoryOptions(opts []MemoryOption) memoryOptions {
	var o memoryOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Get returns the memory with the id (GetMemory). It fails with NOT_FOUND when there is none
// (or, with ForAgent, when it belongs to another agent).
func (c *Client) Get(ctx context.Context, id string, opts ...MemoryOption) (*Memory, error) {
	o := applyMemoryOptions(opts)
	res, err := unary(ctx, c, true, c.memory.GetMemory, &engramv1.GetMemoryRequest{Id: id, AgentId: o.agentID})
	return res.GetMemory(), err
}

// MemoryUpdate lists the fields of a memory to change: nil (or zero, for TTL and AgentID)
// fields are left as they are. A non-nil empty Tags or Metadata clears them.
type MemoryUpdate struct {
	Content    *string
	Type       *MemoryType
	Importance *float32
	Tags       []string
	Metadata   map[string]any
	SessionID  *string
	EventTime  *time.Time
	// ExpiresAt sets the expiry; a pointer to the zero time removes it.
	ExpiresAt *time.Time
	// TTL makes the memory expire this long from now (whole seconds).
	TTL time.Duration
	// AgentID, when set, makes the update fail with NOT_FOUND unless the memory belongs to it.
	AgentID string
}

// Update changes fields of the memory with the id (UpdateMemory) and returns it with its
// version incremented; the previous version stays in its History. Never retried.
func (c *Client) Update(ctx context.Context, id string, u MemoryUpdate) (*Memory, error) {
	m := &engramv1.Memory{Id: id}
	var paths []string
	if u.Content != nil {
		m.Content, paths = *u.Content, append(paths, "content")
	}
	if u.Type != nil {
		m.MemoryType, paths = *u.Type, append(paths, "memory_type")
	}
	if u.Importance != nil {
		m.Importance, paths = *u.Importance, append(paths, "importance")
	}
	if u.Tags != nil {
		m.Tags, paths = u.Tags, append(paths, "tags")
	}
	if u.Metadata != nil {
		md, err := toStruct("metadata", u.Metadata)
		if err != nil {
			return nil, err
		}
		m.Metadata, paths = md, append(paths, "metadata")
	}
	if u.SessionID != nil {
		m.SessionId, paths = *u.SessionID, append(paths, "session_id")
	}
	if u.EventTime != nil {
		m.EventTime, paths = timestamp(*u.EventTime), append(paths, "event_time")
	}
	if u.ExpiresAt != nil {
		m.ExpiresAt, paths = timestamp(*u.ExpiresAt), append(paths, "expires_at")
	}
	if len(paths) == 0 && u.TTL == 0 {
		return nil, NewError(CodeInvalidArgument, "update: no field to update")
	}
	req := &engramv1.UpdateMemoryRequest{
		Memory:     m,
		AgentId:    u.AgentID,
		TtlSeconds: int64(u.TTL / time.Second),
	}
	if len(paths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
	}
	res, err := unary(ctx, c, false, c.memory.UpdateMemory, req)
	return res.GetMemory(), err
}

// Delete deletes the memory with the id, with its vector, links and history (DeleteMemory).
// It fails with NOT_FOUND when there is none (or, with ForAgent, when it belongs to another
// agent).
func (c *Client) Delete(ctx context.Context, id string, opts ...MemoryOption) error {
	o := applyMemoryOptions(opts)
	_, err := unary(ctx, c, true, c.memory.DeleteMemory, &engramv1.DeleteMemoryRequest{Id: id, AgentId: o.agentID})
	return err
}

// ListOptions selects and orders the memories of List and Memories. nil lists every memory,
// newest first, 50 a page.
type ListOptions struct {
	// PageSize is the page size, 1 to ServerLimits.MaxPageSize; 0 means 50.
	PageSize int
	// PageToken is the NextPageToken of the previous page (List only; Memories follows pages
	// itself).
	PageToken string
	// Filter selects the memories; nil lists all.
	Filter *Filter
	// OrderBy is "created_at desc" (default), "created_at asc", "updated_at desc|asc",
	// "importance desc|asc" or "event_time desc|asc".
	OrderBy string
}

func listRequest(agentID string, o *ListOptions) (*engramv1.ListMemoriesRequest, error) {
	if o == nil {
		o = &ListOptions{}
	}
	f, err := o.Filter.proto()
	if err != nil {
		return nil, err
	}
	return &engramv1.ListMemoriesRequest{
		AgentId: agentID, PageSize: int32(o.PageSize), PageToken: o.PageToken, Filter: f, OrderBy: o.OrderBy,
	}, nil
}

// List returns one page of agentID's memories (ListMemories) with the total count across
// pages. Use Memories to iterate over every page.
func (c *Client) List(ctx context.Context, agentID string, opts *ListOptions) (*ListMemoriesResponse, error) {
	req, err := listRequest(agentID, opts)
	if err != nil {
		return nil, err
	}
	return unary(ctx, c, true, c.memory.ListMemories, req)
}

// Memories iterates over agentID's memories, fetching page after page (each page retried on
// UNAVAILABLE). The iteration stops after the first error, which it yields with a nil memory.
func (c *Client) Memories(ctx context.Context, agentID string, opts *ListOptions) iter.Seq2[*Memory, error] {
	req, err := listRequest(agentID, opts)
	if err != nil {
		return errSeq[*Memory](err)
	}
	return pages(ctx, req.PageToken, func(ctx context.Context, token string) ([]*Memory, string, error) {
		req.PageToken = token
		res, err := unary(ctx, c, true, c.memory.ListMemories, req)
		return res.GetMemories(), res.GetNextPageToken(), err
	})
}

// RecallOptions holds the optional parts of a recall. nil recalls the 10 best memories by
// hybrid search.
type RecallOptions struct {
	// TopK is how many memories to return, 1 to ServerLimits.MaxTopK; 0 means 10.
	TopK int
	// Filter selects the candidates before TopK is applied; nil searches every memory.
	Filter *Filter
	// Mode is how candidates are found; RecallModeUnspecified means hybrid.
	Mode RecallMode
	// Explain asks for the parts of each score in RecalledMemory.Explanation.
	Explain bool
	// IncludeAssociated also returns memories linked to the results (one hop), marked
	// Associated.
	IncludeAssociated bool
	// MinScore drops results scoring below it.
	MinScore float32
}

// RecallQuery is one recall of a BatchRecall.
type RecallQuery struct {
	AgentID string
	Query   string
	RecallOptions
}

func recallRequest(agentID, query string, o *RecallOptions) (*engramv1.RecallRequest, error) {
	if o == nil {
		o = &RecallOptions{}
	}
	f, err := o.Filter.proto()
	if err != nil {
		return nil, err
	}
	return &engramv1.RecallRequest{
		AgentId: agentID, Query: query, TopK: int32(o.TopK), Filter: f, Mode: o.Mode,
		Explain: o.Explain, IncludeAssociated: o.IncludeAssociated, MinScore: o.MinScore,
	}, nil
}

// Recall returns agentID's memories most relevant to query, best first (Recall): vector and
// keyword search fused by rank, adjusted by importance and recency. opts may be nil.
func (c *Client) Recall(ctx context.Context, agentID, query string, opts *RecallOptions) (*RecallResponse, error) {
	req, err := recallRequest(agentID, query, opts)
	if err != nil {
		return nil, err
	}
	return unary(ctx, c, true, c.memory.Recall, req)
}

// BatchRecall runs several recalls in one call (BatchRecall) and returns one response per
// query, in order.
func (c *Client) BatchRecall(ctx context.Context, queries []RecallQuery) ([]*RecallResponse, error) {
	req := &engramv1.BatchRecallRequest{}
	for i := range queries {
		r, err := recallRequest(queries[i].AgentID, queries[i].Query, &queries[i].RecallOptions)
		if err != nil {
			return nil, err
		}
		req.Requests = append(req.Requests, r)
	}
	res, err := unary(ctx, c, true, c.memory.BatchRecall, req)
	return res.GetResponses(), err
}

// Forget deletes every memory of agentID that matches the filter (ForgetMemories). The server
// refuses an empty filter with INVALID_ARGUMENT: use DeleteAgent to erase an agent. Never
// retried; see ForgetDryRun.
func (c *Client) Forget(ctx context.Context, agentID string, filter Filter) (*ForgetMemoriesResponse, error) {
	return c.forget(ctx, agentID, filter, false)
}

// ForgetDryRun counts and lists (the first 1000 ids) what Forget would delete, deleting
// nothing. Retried on UNAVAILABLE.
func (c *Client) ForgetDryRun(ctx context.Context, agentID string, filter Filter) (*ForgetMemoriesResponse, error) {
	return c.forget(ctx, agentID, filter, true)
}

func (c *Client) forget(ctx context.Context, agentID string, filter Filter, dryRun bool) (*ForgetMemoriesResponse, error) {
	f, err := filter.proto()
	if err != nil {
		return nil, err
	}
	req := &engramv1.ForgetMemoriesRequest{AgentId: agentID, Filter: f, DryRun: dryRun}
	return unary(ctx, c, dryRun, c.memory.ForgetMemories, req)
}

// History returns every version of the memory with the id, oldest first; the last is the
// current version (GetMemoryHistory). It fails with NOT_FOUND when there is no such memory (or,
// with ForAgent, when it belongs to another agent).
func (c *Client) History(ctx context.Context, id string, opts ...MemoryOption) ([]*Memory, error) {
	o := applyMemoryOptions(opts)
	res, err := unary(ctx, c, true, c.memory.GetMemoryHistory, &engramv1.GetMemoryHistoryRequest{Id: id, AgentId: o.agentID})
	return res.GetVersions(), err
}

// LinkOptions holds the optional parts of a link. nil makes a "related_to" link of weight 1.
type LinkOptions struct {
	// Relation is what the link means: 1 to 64 characters of [a-z0-9_], such as "caused_by",
	// "contradicts", "supersedes"; empty means "related_to".
	Relation string
	// Weight is the strength of the link, from 0 to 1; nil means 1.
	Weight *float32
}

// Link links two memories of agentID in its knowledge graph (LinkMemories) and returns the
// link. Never retried.
func (c *Client) Link(ctx context.Context, agentID, sourceID, targetID string, opts *LinkOptions) (*MemoryLink, error) {
	if opts == nil {
		opts = &LinkOptions{}
	}
	req := &engramv1.LinkMemoriesRequest{
		AgentId: agentID, SourceId: sourceID, TargetId: targetID, Relation: opts.Relation, Weight: opts.Weight,
	}
	res, err := unary(ctx, c, false, c.memory.LinkMemories, req)
	return res.GetLink(), err
}

// Unlink removes the links from sourceID to targetID with the relation, or of every relation
// when it is empty (UnlinkMemories), and returns how many it removed.
func (c *Client) Unlink(ctx context.Context, agentID, sourceID, targetID, relation string) (int, error) {
	req := &engramv1.UnlinkMemoriesRequest{AgentId: agentID, SourceId: sourceID, TargetId: targetID, Relation: relation}
	res, err := unary(ctx, c, true, c.memory.UnlinkMemories, req)
	return int(res.GetRemovedCount()), err
}

// GraphOptions bounds a graph traversal. nil follows every relation one link deep, returning
// at most 100 memories.
type GraphOptions struct {
	// Depth is how many links to follow, 1 to ServerLimits.MaxGraphDepth; 0 means 1.
	Depth int
	// Relations are the relations to follow; empty follows all.
	Relations []string
	// MaxNodes is the most memories to return; 0 means 100.
	MaxNodes int
}

// Graph returns the memories reachable from the memory with the id by following links, the
// starting memory first, and the links between them (GetMemoryGraph).
func (c *Client) Graph(ctx context.Context, agentID, id string, opts *GraphOptions) (*GetMemoryGraphResponse, error) {
	if opts == nil {
		opts = &GraphOptions{}
	}
	req := &engramv1.GetMemoryGraphRequest{
		AgentId: agentID, Id: id, Depth: int32(opts.Depth), Relations: opts.Relations, MaxNodes: int32(opts.MaxNodes),
	}
	return unary(ctx, c, true, c.memory.GetMemoryGraph, req)
}

// Export streams every memory of agentID that matches the filter (nil: all), with all fields,
// for backup or migration (ExportMemories). The stream has no deadline but ctx's; opening it
// is retried on UNAVAILABLE until the first memory arrives. The iteration stops after the first
// error, which it yields with a nil memory; breaking out of the loop cancels the stream.
func (c *Client) Export(ctx context.Context, agentID string, filter *Filter) iter.Seq2[*Memory, error] {
	f, err := filter.proto()
	if err != nil {
		return errSeq[*Memory](err)
	}
	req := &engramv1.ExportMemoriesRequest{AgentId: agentID, Filter: f}
	return func(yield func(*Memory, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		received := false
		for attempt := 0; ; attempt++ {
			var header callMeta
			stream, err := c.memory.ExportMemories(ctx, req, header.callOptions()...)
			for err == nil {
				var res *engramv1.ExportMemoriesResponse
				res, err = stream.Recv()
				if err != nil {
					break
				}
				received = true
				if !yield(res.GetMemory(), nil) {
					return
				}
			}
			if err == io.EOF {
				return
			}
			e := c.callError(ctx, err, header.received())
			if received || attempt+1 >= max(1, c.cfg.retry.MaxAttempts) || CodeOf(e) != CodeUnavailable || !c.sleep(ctx, attempt, e) {
				yield(nil, e)
				return
			}
		}
	}
}

// ImportOptions holds the optional parts of an import.
type ImportOptions struct {
	// AgentID, when set, imports every memory into this agent instead of its own AgentId.
	AgentID string
}

// Import imports memories as Export returned them, keeping their ids, times and versions
// (ImportMemories, client streaming). A memory whose id already exists is skipped, so an
// interrupted import can simply be run again. opts may be nil. Never retried automatically;
// the stream has no deadline but ctx's. Pass a slice as slices.Values(memories).
func (c *Client) Import(ctx context.Context, memories iter.Seq[*Memory], opts *ImportOptions) (*ImportMemoriesResponse, error) {
	agentID := ""
	if opts != nil {
		agentID = opts.AgentID
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var header callMeta
	stream, err := c.memory.ImportMemories(ctx, header.callOptions()...)
	if err != nil {
		return nil, c.callError(ctx, err, header.received())
	}
	for m := range memories {
		if err := stream.Send(&engramv1.ImportMemoriesRequest{Memory: m, AgentId: agentID}); err != nil {
			// The server ended the call; its status comes with CloseAndRecv.
			break
		}
	}
	res, err := stream.CloseAndRecv()
	if err != nil {
		return nil, c.callError(ctx, err, header.received())
	}
	return res, nil
}
