// Command conformance is the Go SDK's shim for the conformance suite (../../conformance): it
// reads JSON Lines on stdin, makes each call through the public API of package engram over
// gRPC, and answers one JSON line per request on stdout.
//
//	→ {"id": 7, "url": "http://127.0.0.1:4411", "transport": "grpc", "api_key": "…",
//	   "rpc": "MemoryService.StoreMemory", "request": {…proto3 JSON…}, "timeout_ms": 0}
//	← {"id": 7, "response": {…}} | {"id": 7, "responses": [{…}, …]} |
//	  {"id": 7, "error": {"code": "NOT_FOUND", "message": "…"}}
//
// A server-streaming request may carry "take": N: the shim reads the first N responses, then
// stops reading (which cancels the call) and answers with those; WatchMemories never ends on
// its own.
//
// Each request's proto3 JSON is decoded into its generated request message (protojson) only to
// read its fields; the shim then calls the Client method a Go user would call, with the options
// a Go user would pass, and writes the result as proto3 JSON with the proto field names.
// Where the typed API cannot express a request, the shim answers INVALID_ARGUMENT with a
// message starting "client-side:", as the SDK refusing the call would.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	engram "github.com/engram-memory-server/engram/sdk-go"
	pb "github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// request is one line from the runner.
type request struct {
	ID        int64           `json:"id"`
	URL       string          `json:"url"`
	Transport string          `json:"transport"`
	APIKey    *string         `json:"api_key"`
	RPC       string          `json:"rpc"`
	Request   json.RawMessage `json:"request"`
	TimeoutMS int64           `json:"timeout_ms"`
	Take      int             `json:"take"` // server streaming: the first Take responses (0: all)
}

// reply is one line to the runner: exactly one of Response, Responses and Error is set.
type reply struct {
	ID        int64             `json:"id"`
	Response  json.RawMessage   `json:"response,omitempty"`
	Responses []json.RawMessage `json:"responses,omitzero"` // an empty stream is []
	Error     *replyError       `json:"error,omitempty"`
}

type replyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// result is what a handler returns: one message, or a list of them for server streaming.
type result struct {
	one    proto.Message
	stream []proto.Message
}

// A handler makes one call. take is the request's "take" (0: read a server stream to its end).
type handler func(ctx context.Context, c *engram.Client, raw json.RawMessage, take int) (result, error)

// clientSide is an error for a request the typed API cannot express.
type clientSide struct{ msg string }

func (e *clientSide) Error() string { return e.msg }

func refuse(format string, args ...any) error {
	return &clientSide{msg: fmt.Sprintf(format, args...)}
}

var (
	unmarshal = protojson.UnmarshalOptions{}
	marshal   = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}
)

// decode reads proto3 JSON into a generated request message.
func decode(raw json.RawMessage, m proto.Message) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := unmarshal.Unmarshal(raw, m); err != nil {
		return refuse("cannot decode %s: %v", m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

func one(m proto.Message, err error) (result, error) {
	if err != nil {
		return result{}, err
	}
	return result{one: m}, nil
}

// Conversions from generated request fields to the SDK's option types.

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func mapOf(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	return s.AsMap()
}

func timeRange(r *pb.TimeRange) engram.TimeRange {
	return engram.TimeRange{Start: timeOf(r.GetStartTime()), End: timeOf(r.GetEndTime())}
}

func filterOf(f *pb.MemoryFilter) *engram.Filter {
	if f == nil {
		return nil
	}
	return &engram.Filter{
		MemoryTypes:    f.GetMemoryTypes(),
		TagsAny:        f.GetTagsAny(),
		TagsAll:        f.GetTagsAll(),
		SessionID:      f.GetSessionId(),
		EventTime:      timeRange(f.GetEventTime()),
		CreatedTime:    timeRange(f.GetCreatedTime()),
		MinImportance:  f.MinImportance,
		MetadataEquals: mapOf(f.GetMetadataEquals()),
		IDs:            f.GetIds(),
		Keys:           f.GetKeys(),
	}
}

func storeOptions(r *pb.StoreMemoryRequest) engram.StoreOptions {
	return engram.StoreOptions{
		ID:         r.GetId(),
		Type:       r.GetMemoryType(),
		Importance: r.Importance,
		Tags:       r.GetTags(),
		Metadata:   mapOf(r.GetMetadata()),
		SessionID:  r.GetSessionId(),
		EventTime:  timeOf(r.GetEventTime()),
		TTL:        time.Duration(r.GetTtlSeconds()) * time.Second,
		ExpiresAt:  timeOf(r.GetExpiresAt()),
		Key:        r.GetKey(),

		DuplicatePolicy:    r.GetDuplicatePolicy(),
		DuplicateThreshold: r.DuplicateThreshold,
	}
}

func recallOptions(r *pb.RecallRequest) engram.RecallOptions {
	return engram.RecallOptions{
		TopK:              int(r.GetTopK()),
		Filter:            filterOf(r.GetFilter()),
		Mode:              r.GetMode(),
		Explain:           r.GetExplain(),
		IncludeAssociated: r.GetIncludeAssociated(),
		MinScore:          r.GetMinScore(),
	}
}

func memoryOptions(agentID string) []engram.MemoryOption {
	if agentID == "" {
		return nil
	}
	return []engram.MemoryOption{engram.ForAgent(agentID)}
}

// snakeCase turns a FieldMask path as proto3 JSON writes it ("memoryType") into the field
// name ("memory_type").
func snakeCase(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// update maps UpdateMemory onto Client.Update: with a mask, every named field is set (to the
// request's value, or to its default, which clears it); without one, every field with a
// non-default value is set, as the server does over gRPC.
func update(ctx context.Context, c *engram.Client, raw json.RawMessage, _ int) (result, error) {
	// The mask travels apart: the typed API takes field names, so read them as written.
	var envelope map[string]json.RawMessage
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return result{}, refuse("cannot decode UpdateMemoryRequest: %v", err)
	}
	var mask string
	if m, ok := envelope["update_mask"]; ok {
		if err := json.Unmarshal(m, &mask); err != nil {
			return result{}, refuse("update_mask is not a string: %v", err)
		}
		delete(envelope, "update_mask")
	}
	rest, _ := json.Marshal(envelope)
	req := &pb.UpdateMemoryRequest{}
	if err := decode(rest, req); err != nil {
		return result{}, err
	}
	m := req.GetMemory()
	u := engram.MemoryUpdate{
		AgentID: req.GetAgentId(),
		TTL:     time.Duration(req.GetTtlSeconds()) * time.Second,
	}
	var paths []string
	for p := range strings.SplitSeq(mask, ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, snakeCase(p))
		}
	}
	if len(paths) > 0 {
		var unknown []string
		for _, p := range paths {
			switch p {
			case "content":
				u.Content = engram.Ptr(m.GetContent())
			case "memory_type":
				u.Type = engram.Ptr(m.GetMemoryType())
			case "importance":
				u.Importance = engram.Ptr(m.GetImportance())
			case "tags":
				u.Tags = append([]string{}, m.GetTags()...)
			case "metadata":
				u.Metadata = mapOf(m.GetMetadata())
				if u.Metadata == nil {
					u.Metadata = map[string]any{}
				}
			case "session_id":
				u.SessionID = engram.Ptr(m.GetSessionId())
			case "event_time":
				u.EventTime = engram.Ptr(timeOf(m.GetEventTime()))
			case "expires_at":
				u.ExpiresAt = engram.Ptr(timeOf(m.GetExpiresAt()))
			default:
				unknown = append(unknown, p)
			}
		}
		if len(unknown) > 0 {
			// MemoryUpdate has no way to name other fields: a Go user cannot make this call.
			return result{}, refuse("update_mask names fields that cannot be updated: %v", unknown)
		}
	} else {
		if m.GetContent() != "" {
			u.Content = engram.Ptr(m.GetContent())
		}
		if m.GetMemoryType() != engram.MemoryTypeUnspecified {
			u.Type = engram.Ptr(m.GetMemoryType())
		}
		if m.GetImportance() != 0 {
			u.Importance = engram.Ptr(m.GetImportance())
		}
		if len(m.GetTags()) > 0 {
			u.Tags = m.GetTags()
		}
		if m.GetMetadata() != nil {
			u.Metadata = mapOf(m.GetMetadata())
		}
		if m.GetSessionId() != "" {
			u.SessionID = engram.Ptr(m.GetSessionId())
		}
		if m.GetEventTime() != nil {
			u.EventTime = engram.Ptr(timeOf(m.GetEventTime()))
		}
		if m.GetExpiresAt() != nil {
			u.ExpiresAt = engram.Ptr(timeOf(m.GetExpiresAt()))
		}
	}
	res, err := c.Update(ctx, m.GetId(), u)
	return one(&pb.UpdateMemoryResponse{Memory: res}, err)
}

func importMemories(ctx context.Context, c *engram.Client, raw json.RawMessage, _ int) (result, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return result{}, refuse("ImportMemories takes a list of requests: %v", err)
	}
	var memories []*engram.Memory
	agentID := ""
	for i, item := range items {
		req := &pb.ImportMemoriesRequest{}
		if err := decode(item, req); err != nil {
			return result{}, err
		}
		if i > 0 && req.GetAgentId() != agentID {
			// ImportOptions.AgentID applies to the whole import.
			return result{}, refuse("ImportMemories: one agent_id override for the whole stream, got %q and %q", agentID, req.GetAgentId())
		}
		agentID = req.GetAgentId()
		memories = append(memories, req.GetMemory())
	}
	res, err := c.Import(ctx, slices.Values(memories), &engram.ImportOptions{AgentID: agentID})
	return one(res, err)
}

// collect reads a server stream into a result: every item, or the first take of them (take >
// 0), after which it stops ranging, which cancels the call.
func collect[T any](seq iter.Seq2[T, error], take int, message func(T) proto.Message) (result, error) {
	out := []proto.Message{}
	if take < 0 {
		return result{}, refuse("take must not be negative, got %d", take)
	}
	for item, err := range seq {
		if err != nil {
			return result{}, err
		}
		out = append(out, message(item))
		if take > 0 && len(out) >= take {
			break
		}
	}
	return result{stream: out}, nil
}

func export(ctx context.Context, c *engram.Client, raw json.RawMessage, take int) (result, error) {
	req := &pb.ExportMemoriesRequest{}
	if err := decode(raw, req); err != nil {
		return result{}, err
	}
	return collect(c.Export(ctx, req.GetAgentId(), filterOf(req.GetFilter())), take,
		func(m *engram.Memory) proto.Message { return &pb.ExportMemoriesResponse{Memory: m} })
}

// watch answers with the raw responses of the change stream, heartbeats included, as
// Client.WatchResponses yields them.
func watch(ctx context.Context, c *engram.Client, raw json.RawMessage, take int) (result, error) {
	req := &pb.WatchMemoriesRequest{}
	if err := decode(raw, req); err != nil {
		return result{}, err
	}
	var opts []engram.WatchOption
	if req.GetStartAfter() != "" {
		opts = append(opts, engram.StartAfter(req.GetStartAfter()))
	}
	return collect(c.WatchResponses(ctx, req.GetAgentId(), opts...), take,
		func(r *engram.WatchMemoriesResponse) proto.Message { return r })
}

func consolidate(ctx context.Context, c *engram.Client, raw json.RawMessage, _ int) (result, error) {
	req := &pb.ConsolidateMemoriesRequest{}
	if err := decode(raw, req); err != nil {
		return result{}, err
	}
	var opts []engram.ConsolidateOption
	if req.GetDryRun() {
		opts = append(opts, engram.DryRun())
	}
	if req.SimilarityThreshold != nil {
		opts = append(opts, engram.SimilarityThreshold(req.GetSimilarityThreshold()))
	}
	return one(c.Consolidate(ctx, req.GetAgentId(), opts...))
}

func embed(ctx context.Context, c *engram.Client, raw json.RawMessage, _ int) (result, error) {
	req := &pb.EmbedRequest{}
	if err := decode(raw, req); err != nil {
		return result{}, err
	}
	e, err := c.Embed(ctx, req.GetTexts(), req.GetInputType())
	if err != nil {
		return result{}, err
	}
	res := &pb.EmbedResponse{Model: e.Model, Dimensions: int32(e.Dimensions)}
	for _, v := range e.Vectors {
		res.Embeddings = append(res.Embeddings, &pb.Embedding{Vector: engram.EncodeVector(v)})
	}
	return result{one: res}, nil
}

// typed adapts a handler of one generated request type.
func typed[Req proto.Message](newReq func() Req, call func(context.Context, *engram.Client, Req) (proto.Message, error)) handler {
	return func(ctx context.Context, c *engram.Client, raw json.RawMessage, _ int) (result, error) {
		req := newReq()
		if err := decode(raw, req); err != nil {
			return result{}, err
		}
		return one(call(ctx, c, req))
	}
}

var handlers = map[string]handler{
	"MemoryService.StoreMemory": typed(func() *pb.StoreMemoryRequest { return &pb.StoreMemoryRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.StoreMemoryRequest) (proto.Message, error) {
			o := storeOptions(r)
			return c.Store(ctx, r.GetAgentId(), r.GetContent(), &o)
		}),
	"MemoryService.BatchStoreMemories": typed(func() *pb.BatchStoreMemoriesRequest { return &pb.BatchStoreMemoriesRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.BatchStoreMemoriesRequest) (proto.Message, error) {
			items := make([]engram.StoreItem, 0, len(r.GetRequests()))
			for _, s := range r.GetRequests() {
				items = append(items, engram.StoreItem{AgentID: s.GetAgentId(), Content: s.GetContent(), StoreOptions: storeOptions(s)})
			}
			return c.BatchStore(ctx, items)
		}),
	"MemoryService.GetMemory": typed(func() *pb.GetMemoryRequest { return &pb.GetMemoryRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.GetMemoryRequest) (proto.Message, error) {
			m, err := c.Get(ctx, r.GetId(), memoryOptions(r.GetAgentId())...)
			return &pb.GetMemoryResponse{Memory: m}, err
		}),
	"MemoryService.UpdateMemory": update,
	"MemoryService.DeleteMemory": typed(func() *pb.DeleteMemoryRequest { return &pb.DeleteMemoryRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.DeleteMemoryRequest) (proto.Message, error) {
			// Delete returns only an error; on success the deleted memory is the one asked for.
			err := c.Delete(ctx, r.GetId(), memoryOptions(r.GetAgentId())...)
			return &pb.DeleteMemoryResponse{Id: r.GetId()}, err
		}),
	"MemoryService.ListMemories": typed(func() *pb.ListMemoriesRequest { return &pb.ListMemoriesRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.ListMemoriesRequest) (proto.Message, error) {
			return c.List(ctx, r.GetAgentId(), &engram.ListOptions{
				PageSize: int(r.GetPageSize()), PageToken: r.GetPageToken(), Filter: filterOf(r.GetFilter()), OrderBy: r.GetOrderBy(),
			})
		}),
	"MemoryService.Recall": typed(func() *pb.RecallRequest { return &pb.RecallRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.RecallRequest) (proto.Message, error) {
			o := recallOptions(r)
			return c.Recall(ctx, r.GetAgentId(), r.GetQuery(), &o)
		}),
	"MemoryService.BatchRecall": typed(func() *pb.BatchRecallRequest { return &pb.BatchRecallRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.BatchRecallRequest) (proto.Message, error) {
			queries := make([]engram.RecallQuery, 0, len(r.GetRequests()))
			for _, q := range r.GetRequests() {
				queries = append(queries, engram.RecallQuery{AgentID: q.GetAgentId(), Query: q.GetQuery(), RecallOptions: recallOptions(q)})
			}
			res, err := c.BatchRecall(ctx, queries)
			return &pb.BatchRecallResponse{Responses: res}, err
		}),
	"MemoryService.ForgetMemories": typed(func() *pb.ForgetMemoriesRequest { return &pb.ForgetMemoriesRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.ForgetMemoriesRequest) (proto.Message, error) {
			var f engram.Filter
			if p := filterOf(r.GetFilter()); p != nil {
				f = *p
			}
			if r.GetDryRun() {
				return c.ForgetDryRun(ctx, r.GetAgentId(), f)
			}
			return c.Forget(ctx, r.GetAgentId(), f)
		}),
	"MemoryService.GetMemoryHistory": typed(func() *pb.GetMemoryHistoryRequest { return &pb.GetMemoryHistoryRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.GetMemoryHistoryRequest) (proto.Message, error) {
			versions, err := c.History(ctx, r.GetId(), memoryOptions(r.GetAgentId())...)
			return &pb.GetMemoryHistoryResponse{Versions: versions}, err
		}),
	"MemoryService.LinkMemories": typed(func() *pb.LinkMemoriesRequest { return &pb.LinkMemoriesRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.LinkMemoriesRequest) (proto.Message, error) {
			link, err := c.Link(ctx, r.GetAgentId(), r.GetSourceId(), r.GetTargetId(), &engram.LinkOptions{Relation: r.GetRelation(), Weight: r.Weight})
			return &pb.LinkMemoriesResponse{Link: link}, err
		}),
	"MemoryService.UnlinkMemories": typed(func() *pb.UnlinkMemoriesRequest { return &pb.UnlinkMemoriesRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.UnlinkMemoriesRequest) (proto.Message, error) {
			n, err := c.Unlink(ctx, r.GetAgentId(), r.GetSourceId(), r.GetTargetId(), r.GetRelation())
			return &pb.UnlinkMemoriesResponse{RemovedCount: int32(n)}, err
		}),
	"MemoryService.GetMemoryGraph": typed(func() *pb.GetMemoryGraphRequest { return &pb.GetMemoryGraphRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.GetMemoryGraphRequest) (proto.Message, error) {
			return c.Graph(ctx, r.GetAgentId(), r.GetId(), &engram.GraphOptions{
				Depth: int(r.GetDepth()), Relations: r.GetRelations(), MaxNodes: int(r.GetMaxNodes()),
			})
		}),
	"MemoryService.ExportMemories":      export,
	"MemoryService.ImportMemories":      importMemories,
	"MemoryService.ConsolidateMemories": consolidate,
	"MemoryService.WatchMemories":       watch,
	"AgentService.ListAgents": typed(func() *pb.ListAgentsRequest { return &pb.ListAgentsRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.ListAgentsRequest) (proto.Message, error) {
			return c.ListAgents(ctx, int(r.GetPageSize()), r.GetPageToken())
		}),
	"AgentService.GetAgent": typed(func() *pb.GetAgentRequest { return &pb.GetAgentRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.GetAgentRequest) (proto.Message, error) {
			a, err := c.GetAgent(ctx, r.GetAgentId())
			return &pb.GetAgentResponse{Agent: a}, err
		}),
	"AgentService.DeleteAgent": typed(func() *pb.DeleteAgentRequest { return &pb.DeleteAgentRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.DeleteAgentRequest) (proto.Message, error) {
			n, err := c.DeleteAgent(ctx, r.GetAgentId())
			return &pb.DeleteAgentResponse{DeletedMemoryCount: int32(n)}, err
		}),
	"AdminService.Health": typed(func() *pb.HealthRequest { return &pb.HealthRequest{} },
		func(ctx context.Context, c *engram.Client, _ *pb.HealthRequest) (proto.Message, error) {
			return c.Health(ctx)
		}),
	"AdminService.GetServerInfo": typed(func() *pb.GetServerInfoRequest { return &pb.GetServerInfoRequest{} },
		func(ctx context.Context, c *engram.Client, _ *pb.GetServerInfoRequest) (proto.Message, error) {
			return c.ServerInfo(ctx)
		}),
	"AdminService.GetStats": typed(func() *pb.GetStatsRequest { return &pb.GetStatsRequest{} },
		func(ctx context.Context, c *engram.Client, _ *pb.GetStatsRequest) (proto.Message, error) {
			return c.Stats(ctx)
		}),
	"AdminService.CreateApiKey": typed(func() *pb.CreateApiKeyRequest { return &pb.CreateApiKeyRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.CreateApiKeyRequest) (proto.Message, error) {
			return c.CreateAPIKey(ctx, r.GetName(), r.GetRole(), &engram.APIKeyOptions{
				AgentIDs: r.GetAgentIds(), AgentIDPrefix: r.GetAgentIdPrefix(), TTL: time.Duration(r.GetTtlSeconds()) * time.Second,
			})
		}),
	"AdminService.ListApiKeys": typed(func() *pb.ListApiKeysRequest { return &pb.ListApiKeysRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.ListApiKeysRequest) (proto.Message, error) {
			keys, err := c.ListAPIKeys(ctx, r.GetIncludeRevoked())
			return &pb.ListApiKeysResponse{ApiKeys: keys}, err
		}),
	"AdminService.RevokeApiKey": typed(func() *pb.RevokeApiKeyRequest { return &pb.RevokeApiKeyRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.RevokeApiKeyRequest) (proto.Message, error) {
			k, err := c.RevokeAPIKey(ctx, r.GetId())
			return &pb.RevokeApiKeyResponse{ApiKey: k}, err
		}),
	"AdminService.GetClusterStatus": typed(func() *pb.GetClusterStatusRequest { return &pb.GetClusterStatusRequest{} },
		func(ctx context.Context, c *engram.Client, _ *pb.GetClusterStatusRequest) (proto.Message, error) {
			return c.ClusterStatus(ctx)
		}),
	"AdminService.DrainClusterNode": typed(func() *pb.DrainClusterNodeRequest { return &pb.DrainClusterNodeRequest{} },
		func(ctx context.Context, c *engram.Client, r *pb.DrainClusterNodeRequest) (proto.Message, error) {
			return c.DrainClusterNode(ctx, r.GetNodeId())
		}),
	"EmbeddingService.Embed": embed,
}

// clients holds one client per (url, api key).
type clients map[[2]string]*engram.Client

func (cs clients) get(url string, apiKey *string) (*engram.Client, error) {
	key := ""
	if apiKey != nil {
		key = *apiKey
	}
	if c, ok := cs[[2]string{url, key}]; ok {
		return c, nil
	}
	// NewClient takes "http://host:port" as plaintext HTTP/2, as the server serves gRPC.
	opts := []engram.Option{engram.WithRetry(engram.RetryPolicy{MaxAttempts: 1})}
	if key != "" {
		opts = append(opts, engram.WithAPIKey(key))
	}
	c, err := engram.NewClient(context.Background(), url, opts...)
	if err != nil {
		return nil, err
	}
	cs[[2]string{url, key}] = c
	return c, nil
}

func handle(cs clients, req *request) reply {
	out := reply{ID: req.ID}
	res, err := call(cs, req)
	if err == nil {
		err = encode(&out, res)
	}
	if err != nil {
		var ce *clientSide
		var ee *engram.Error
		switch {
		case errors.As(err, &ce):
			out.Error = &replyError{Code: engram.CodeInvalidArgument.String(), Message: "client-side: " + ce.msg}
		case errors.As(err, &ee) && !ee.FromServer && ee.Code == engram.CodeInvalidArgument:
			// The SDK refused the arguments before sending anything.
			out.Error = &replyError{Code: ee.Code.String(), Message: "client-side: " + ee.Message}
		case errors.As(err, &ee):
			out.Error = &replyError{Code: ee.Code.String(), Message: ee.Message}
		default:
			out.Error = &replyError{Code: engram.CodeOf(err).String(), Message: err.Error()}
		}
		out.Response, out.Responses = nil, nil
	}
	return out
}

func call(cs clients, req *request) (result, error) {
	if req.Transport != "grpc" {
		return result{}, engram.NewError(engram.CodeUnimplemented, "the Go SDK speaks gRPC only, not "+req.Transport)
	}
	h, ok := handlers[req.RPC]
	if !ok {
		return result{}, engram.NewError(engram.CodeUnimplemented, "no handler for "+req.RPC)
	}
	c, err := cs.get(req.URL, req.APIKey)
	if err != nil {
		return result{}, err
	}
	ctx := context.Background()
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	return h(ctx, c, req.Request, req.Take)
}

func encode(out *reply, res result) error {
	if res.stream != nil || res.one == nil {
		out.Responses = make([]json.RawMessage, 0, len(res.stream))
		for _, m := range res.stream {
			b, err := marshal.Marshal(m)
			if err != nil {
				return err
			}
			out.Responses = append(out.Responses, b)
		}
		return nil
	}
	b, err := marshal.Marshal(res.one)
	if err != nil {
		return err
	}
	out.Response = b
	return nil
}

// lines yields the non-empty lines of stdin.
func lines(sc *bufio.Scanner) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for sc.Scan() {
			if len(strings.TrimSpace(sc.Text())) == 0 {
				continue
			}
			if !yield(sc.Bytes()) {
				return
			}
		}
	}
}

func main() {
	cs := clients{}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for line := range lines(in) {
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			fmt.Fprintf(os.Stderr, "engram-conformance: bad request line: %v\n", err)
			os.Exit(2)
		}
		if err := enc.Encode(handle(cs, &req)); err != nil {
			fmt.Fprintf(os.Stderr, "engram-conformance: %v\n", err)
			os.Exit(1)
		}
		if err := w.Flush(); err != nil {
			fmt.Fprintf(os.Stderr, "engram-conformance: %v\n", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "engram-conformance: reading stdin: %v\n", err)
		os.Exit(1)
	}
}
