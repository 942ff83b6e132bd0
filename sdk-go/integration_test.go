package engram_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	engram "github.com/engram-memory-server/engram/sdk-go"
)

// client returns a client of the test server with the root key (unless opts set another).
func client(t *testing.T, opts ...engram.Option) *engram.Client {
	t.Helper()
	needServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := engram.NewClient(ctx, serverAddr, append([]engram.Option{engram.WithAPIKey(rootKey)}, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// must returns v, failing the running test (see needServer) when err is not nil. The tests of
// this package run one at a time (none calls t.Parallel), so the running test is known.
func must[T any](v T, err error) T {
	current.Helper()
	if err != nil {
		current.Fatalf("unexpected error: %v", err)
	}
	return v
}

// wantCode fails t unless err is an *engram.Error from the server with the code.
func wantCode(t *testing.T, err error, code engram.Code) *engram.Error {
	t.Helper()
	var e *engram.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want an *engram.Error %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("got code %s (%v), want %s", e.Code, e, code)
	}
	if !e.FromServer {
		t.Errorf("%v: FromServer = false, want true", e)
	}
	if engram.CodeOf(err) != code || status.Code(err).String() == "" {
		t.Errorf("CodeOf = %s, want %s", engram.CodeOf(err), code)
	}
	return e
}

func TestAdmin(t *testing.T) {
	c := client(t)
	ctx := context.Background()

	h := must(c.Health(ctx))
	if h.Status != "healthy" || h.Version == "" {
		t.Errorf("Health = %v", h)
	}
	info := must(c.ServerInfo(ctx))
	if info.ApiVersion != "v1" || info.EmbeddingModel == "" || info.EmbeddingDimensions != 384 || !info.AuthRequired {
		t.Errorf("ServerInfo = %v", info)
	}
	if l := info.Limits; l.GetMaxTopK() != 100 || l.GetMaxBatchSize() != 256 || l.GetMaxPageSize() != 1000 || l.GetMaxContentBytes() != 32768 {
		t.Errorf("ServerInfo.Limits = %v", l)
	}
	must(c.Store(ctx, "stats-agent", "something to count", nil))
	st := must(c.Stats(ctx))
	if st.AgentCount < 1 || st.MemoryCount < 1 || st.UptimeSeconds <= 0 {
		t.Errorf("Stats = %v", st)
	}
	cs := must(c.ClusterStatus(ctx))
	if cs.NodeCount != 1 || cs.HealthyNodeCount != 1 || cs.ReplicationFactor != 1 || len(cs.Nodes) != 1 || !cs.Nodes[0].Healthy {
		t.Errorf("ClusterStatus = %v", cs)
	}
	// A single server has no cluster to drain a node from.
	_, err := c.DrainClusterNode(ctx, cs.Nodes[0].GetNodeId())
	wantCode(t, err, engram.CodeFailedPrecondition)
}

func TestAuth(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	anon := must(engram.NewClient(ctx, serverAddr))
	defer anon.Close()
	// Health needs no key.
	must(anon.Health(ctx))
	_, err := anon.Store(ctx, "auth-agent", "no key", nil)
	wantCode(t, err, engram.CodeUnauthenticated)
	if !engram.IsUnauthenticated(err) {
		t.Error("IsUnauthenticated = false")
	}
	bad := must(engram.NewClient(ctx, "http://"+serverAddr, engram.WithAPIKey("not-a-valid-key-at-all")))
	defer bad.Close()
	_, err = bad.Recall(ctx, "auth-agent", "anything", nil)
	wantCode(t, err, engram.CodeUnauthenticated)
}

func TestAPIKeys(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent := "keys-agent"
	must(c.Store(ctx, agent, "The deploy window is Tuesday at 10:00 UTC.", nil))

	created := must(c.CreateAPIKey(ctx, "go-read-only", engram.APIKeyRoleReadOnly, &engram.APIKeyOptions{AgentIDs: []string{agent}, TTL: time.Hour}))
	if created.Key == "" || created.ApiKey.GetId() == "" || created.ApiKey.GetRole() != engram.APIKeyRoleReadOnly ||
		!slices.Equal(created.ApiKey.GetAgentIds(), []string{agent}) || created.ApiKey.GetExpiresAt() == nil {
		t.Fatalf("CreateAPIKey = %v", created)
	}
	if created.ApiKey.GetPrefix() == "" || !strings.HasPrefix(created.Key, created.ApiKey.GetPrefix()) {
		t.Errorf("prefix %q is not the start of the secret", created.ApiKey.GetPrefix())
	}

	ro := client(t, engram.WithAPIKey(created.Key))
	res := must(ro.Recall(ctx, agent, "when is the deploy window?", nil))
	if len(res.Memories) != 1 {
		t.Errorf("read-only Recall: %d memories, want 1", len(res.Memories))
	}
	_, err := ro.Store(ctx, agent, "a read-only key cannot write", nil)
	wantCode(t, err, engram.CodePermissionDenied)
	if !engram.IsPermissionDenied(err) {
		t.Error("IsPermissionDenied = false")
	}
	_, err = ro.Recall(ctx, "another-agent", "outside the key's scope", nil)
	wantCode(t, err, engram.CodePermissionDenied)
	_, err = ro.Stats(ctx)
	wantCode(t, err, engram.CodePermissionDenied)

	keys := must(c.ListAPIKeys(ctx, false))
	if !slices.ContainsFunc(keys, func(k *engram.APIKey) bool { return k.Id == created.ApiKey.Id }) {
		t.Errorf("ListAPIKeys does not list %s", created.ApiKey.Id)
	}
	for _, k := range keys {
		if k.Prefix == created.Key {
			t.Error("ListAPIKeys shows a secret")
		}
	}

	revoked := must(c.RevokeAPIKey(ctx, created.ApiKey.Id))
	if revoked.RevokedAt == nil {
		t.Errorf("RevokeAPIKey = %v, want revoked_at", revoked)
	}
	_, err = ro.Recall(ctx, agent, "when is the deploy window?", nil)
	wantCode(t, err, engram.CodeUnauthenticated)
	if keys := must(c.ListAPIKeys(ctx, false)); slices.ContainsFunc(keys, func(k *engram.APIKey) bool { return k.Id == created.ApiKey.Id }) {
		t.Error("ListAPIKeys(false) lists the revoked key")
	}
	if keys := must(c.ListAPIKeys(ctx, true)); !slices.ContainsFunc(keys, func(k *engram.APIKey) bool { return k.Id == created.ApiKey.Id }) {
		t.Error("ListAPIKeys(true) does not list the revoked key")
	}
	_, err = c.RevokeAPIKey(ctx, "no-such-key")
	wantCode(t, err, engram.CodeNotFound)
	_, err = c.CreateAPIKey(ctx, "no-role", engram.APIKeyRoleUnspecified, nil)
	wantCode(t, err, engram.CodeInvalidArgument)
}

func TestStoreGetUpdateHistoryDelete(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent := "crud-agent"
	event := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

	res := must(c.Store(ctx, agent, "The customer prefers answers in French.", &engram.StoreOptions{
		Type:       engram.MemoryTypeSemantic,
		Importance: engram.Ptr[float32](0.8),
		Tags:       []string{"preferences", "language"},
		Metadata:   map[string]any{"source": "chat", "turn": 3.0, "verified": true},
		SessionID:  "s-1",
		EventTime:  event,
		TTL:        24 * time.Hour,
	}))
	m := res.Memory
	if !res.Created || m.Id == "" || m.AgentId != agent || m.MemoryType != engram.MemoryTypeSemantic ||
		math.Abs(float64(m.Importance)-0.8) > 1e-6 || !slices.Equal(m.Tags, []string{"preferences", "language"}) ||
		m.SessionId != "s-1" || !m.EventTime.AsTime().Equal(event) || m.Version != 1 || m.EmbeddingModel == "" ||
		m.CreatedAt == nil || m.ExpiresAt == nil {
		t.Fatalf("Store = %v", res)
	}
	if got := m.Metadata.AsMap(); got["source"] != "chat" || got["turn"] != 3.0 || got["verified"] != true {
		t.Errorf("metadata = %v", got)
	}
	if d := m.ExpiresAt.AsTime().Sub(m.CreatedAt.AsTime()); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("expires %v after creation, want 24h", d)
	}

	got := must(c.Get(ctx, m.Id))
	if got.Id != m.Id || got.Content != m.Content || got.Version != 1 {
		t.Errorf("Get = %v", got)
	}

	// A client-chosen id makes Store idempotent.
	first := must(c.Store(ctx, agent, "Deploys happen on Tuesdays.", &engram.StoreOptions{ID: "go-fixed-id-1"}))
	again := must(c.Store(ctx, agent, "Deploys happen on Tuesdays.", &engram.StoreOptions{ID: "go-fixed-id-1"}))
	if first.Memory.Id != "go-fixed-id-1" || !first.Created || again.Created || again.Memory.Id != "go-fixed-id-1" {
		t.Errorf("idempotent Store: first %v, again %v", first, again)
	}
	_, err := c.Store(ctx, agent, "Other content, same id.", &engram.StoreOptions{ID: "go-fixed-id-1"})
	wantCode(t, err, engram.CodeAlreadyExists)
	if !engram.IsAlreadyExists(err) {
		t.Error("IsAlreadyExists = false")
	}

	// Bad input: INVALID_ARGUMENT naming the field.
	_, err = c.Store(ctx, agent, "", nil)
	e := wantCode(t, err, engram.CodeInvalidArgument)
	if !strings.Contains(e.Message, "content") {
		t.Errorf("message %q does not name the field", e.Message)
	}
	if !engram.IsInvalidArgument(err) {
		t.Error("IsInvalidArgument = false")
	}
	_, err = c.Store(ctx, agent, "importance out of range", &engram.StoreOptions{Importance: engram.Ptr[float32](1.5)})
	wantCode(t, err, engram.CodeInvalidArgument)
	_, err = c.Store(ctx, "", "no agent", nil)
	wantCode(t, err, engram.CodeInvalidArgument)
	// Metadata that is not JSON-like is refused by the client itself.
	_, err = c.Store(ctx, agent, "bad metadata", &engram.StoreOptions{Metadata: map[string]any{"ch": make(chan int)}})
	var ce *engram.Error
	if !errors.As(err, &ce) || ce.Code != engram.CodeInvalidArgument || ce.FromServer {
		t.Errorf("bad metadata: %v", err)
	}

	// Update: new version, history keeps the old one.
	upd := must(c.Update(ctx, m.Id, engram.MemoryUpdate{
		Content: engram.Ptr("The customer prefers answers in German."),
		Tags:    []string{"preferences"},
	}))
	if upd.Version != 2 || upd.Content != "The customer prefers answers in German." || !slices.Equal(upd.Tags, []string{"preferences"}) ||
		upd.SessionId != "s-1" || upd.MemoryType != engram.MemoryTypeSemantic {
		t.Errorf("Update = %v", upd)
	}
	hist := must(c.History(ctx, m.Id))
	if len(hist) != 2 || hist[0].Version != 1 || hist[0].Content != m.Content || hist[1].Version != 2 || hist[1].Content != upd.Content {
		t.Errorf("History = %v", hist)
	}
	_, err = c.Update(ctx, "no-such-memory", engram.MemoryUpdate{Content: engram.Ptr("x")})
	wantCode(t, err, engram.CodeNotFound)
	_, err = c.Update(ctx, m.Id, engram.MemoryUpdate{Content: engram.Ptr("wrong agent"), AgentID: "other-agent"})
	wantCode(t, err, engram.CodeNotFound)
	_, err = c.History(ctx, "no-such-memory")
	wantCode(t, err, engram.CodeNotFound)

	// ForAgent: the memory of another agent is not found.
	if got := must(c.Get(ctx, m.Id, engram.ForAgent(agent))); got.Id != m.Id {
		t.Errorf("Get(ForAgent(owner)) = %v", got)
	}
	if hist := must(c.History(ctx, m.Id, engram.ForAgent(agent))); len(hist) != 2 {
		t.Errorf("History(ForAgent(owner)) = %v", hist)
	}
	_, err = c.Get(ctx, m.Id, engram.ForAgent("other-agent"))
	wantCode(t, err, engram.CodeNotFound)
	_, err = c.History(ctx, m.Id, engram.ForAgent("other-agent"))
	wantCode(t, err, engram.CodeNotFound)
	err = c.Delete(ctx, m.Id, engram.ForAgent("other-agent"))
	wantCode(t, err, engram.CodeNotFound)

	// Delete.
	if err := c.Delete(ctx, m.Id); err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(ctx, m.Id)
	wantCode(t, err, engram.CodeNotFound)
	if !engram.IsNotFound(err) {
		t.Error("IsNotFound = false")
	}
	err = c.Delete(ctx, m.Id)
	wantCode(t, err, engram.CodeNotFound)
}

func TestBatchStoreListMemories(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent := "list-agent"
	var items []engram.StoreItem
	for i := range 7 {
		tag := "even"
		if i%2 == 1 {
			tag = "odd"
		}
		items = append(items, engram.StoreItem{AgentID: agent, Content: "fact number " + string(rune('A'+i)),
			StoreOptions: engram.StoreOptions{Tags: []string{tag}, Importance: engram.Ptr(float32(i) / 10)}})
	}
	b := must(c.BatchStore(ctx, items))
	if len(b.Memories) != 7 || b.CreatedCount != 7 || b.Memories[3].Content != "fact number D" {
		t.Fatalf("BatchStore = %v", b)
	}
	_, err := c.BatchStore(ctx, []engram.StoreItem{{AgentID: agent, Content: "fine"}, {AgentID: agent, Content: ""}})
	wantCode(t, err, engram.CodeInvalidArgument)
	if page := must(c.List(ctx, agent, nil)); page.TotalSize != 7 {
		t.Errorf("all-or-nothing BatchStore stored part of a refused batch: total %d", page.TotalSize)
	}

	page := must(c.List(ctx, agent, &engram.ListOptions{PageSize: 3, OrderBy: "importance desc"}))
	if len(page.Memories) != 3 || page.TotalSize != 7 || page.NextPageToken == "" || page.Memories[0].Content != "fact number G" {
		t.Fatalf("List page 1 = %v", page)
	}
	page2 := must(c.List(ctx, agent, &engram.ListOptions{PageSize: 3, OrderBy: "importance desc", PageToken: page.NextPageToken}))
	if len(page2.Memories) != 3 || page2.Memories[0].Content != "fact number D" {
		t.Errorf("List page 2 = %v", page2)
	}

	var all []string
	for m, err := range c.Memories(ctx, agent, &engram.ListOptions{PageSize: 2, OrderBy: "importance asc"}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, m.Content)
	}
	if len(all) != 7 || all[0] != "fact number A" || all[6] != "fact number G" {
		t.Errorf("Memories = %v", all)
	}
	n := 0
	for m, err := range c.Memories(ctx, agent, &engram.ListOptions{Filter: &engram.Filter{TagsAny: []string{"odd"}}}) {
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(m.Tags, "odd") {
			t.Errorf("filtered Memories yielded %v", m)
		}
		n++
	}
	if n != 3 {
		t.Errorf("filtered Memories: %d, want 3", n)
	}
	// Breaking out of the loop stops the iteration.
	n = 0
	for range c.Memories(ctx, agent, &engram.ListOptions{PageSize: 2}) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break: %d iterations", n)
	}
	// An error ends the iteration.
	for m, err := range c.Memories(ctx, "", nil) {
		if m != nil || !engram.IsInvalidArgument(err) {
			t.Errorf("Memories without agent: %v, %v", m, err)
		}
	}
	_, err = c.List(ctx, agent, &engram.ListOptions{PageSize: 100000})
	wantCode(t, err, engram.CodeInvalidArgument)
}

func TestRecall(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent := "recall-agent"
	must(c.BatchStore(ctx, []engram.StoreItem{
		{AgentID: agent, Content: "The production database is PostgreSQL 16 on db-7.internal.", StoreOptions: engram.StoreOptions{Type: engram.MemoryTypeSemantic, Tags: []string{"infra"}}},
		{AgentID: agent, Content: "The user's cat is called Miso and likes tuna.", StoreOptions: engram.StoreOptions{Tags: []string{"personal"}}},
		{AgentID: agent, Content: "To restart the API, run systemctl restart engram-api.", StoreOptions: engram.StoreOptions{Type: engram.MemoryTypeProcedural, Tags: []string{"infra"}}},
	}))
	res := must(c.Recall(ctx, agent, "what is the cat's name?", &engram.RecallOptions{TopK: 2, Explain: true}))
	if len(res.Memories) != 2 || !strings.Contains(res.Memories[0].Content, "Miso") || res.TotalFound < 2 {
		t.Fatalf("Recall = %v", res)
	}
	top := res.Memories[0]
	if top.Score <= 0 || top.Score < res.Memories[1].Score || top.Explanation == nil || top.Id == "" || top.AgentId != agent {
		t.Errorf("top result = %v", top)
	}
	kw := must(c.Recall(ctx, agent, "db-7.internal", &engram.RecallOptions{Mode: engram.RecallModeKeyword, TopK: 1}))
	if len(kw.Memories) != 1 || !strings.Contains(kw.Memories[0].Content, "PostgreSQL") || kw.Memories[0].KeywordScore <= 0 {
		t.Errorf("keyword Recall = %v", kw)
	}
	filtered := must(c.Recall(ctx, agent, "cat", &engram.RecallOptions{Filter: &engram.Filter{TagsAll: []string{"infra"}, MemoryTypes: []engram.MemoryType{engram.MemoryTypeProcedural}}}))
	if len(filtered.Memories) != 1 || !strings.Contains(filtered.Memories[0].Content, "systemctl") {
		t.Errorf("filtered Recall = %v", filtered)
	}
	if empty := must(c.Recall(ctx, "agent-without-memories", "anything", nil)); len(empty.Memories) != 0 {
		t.Errorf("Recall of an empty agent = %v", empty)
	}

	batch := must(c.BatchRecall(ctx, []engram.RecallQuery{
		{AgentID: agent, Query: "which database do we run?", RecallOptions: engram.RecallOptions{TopK: 1}},
		{AgentID: agent, Query: "how do I restart the API?", RecallOptions: engram.RecallOptions{TopK: 1}},
	}))
	if len(batch) != 2 || len(batch[0].Memories) != 1 || !strings.Contains(batch[0].Memories[0].Content, "PostgreSQL") ||
		!strings.Contains(batch[1].Memories[0].Content, "systemctl") {
		t.Errorf("BatchRecall = %v", batch)
	}

	_, err := c.Recall(ctx, agent, "", nil)
	wantCode(t, err, engram.CodeInvalidArgument)
	_, err = c.Recall(ctx, agent, "too many", &engram.RecallOptions{TopK: 1000})
	wantCode(t, err, engram.CodeInvalidArgument)
	_, err = c.BatchRecall(ctx, []engram.RecallQuery{{AgentID: agent, Query: "ok"}, {AgentID: "", Query: "no agent"}})
	wantCode(t, err, engram.CodeInvalidArgument)
}

func TestForget(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent := "forget-agent"
	must(c.BatchStore(ctx, []engram.StoreItem{
		{AgentID: agent, Content: "temporary note one", StoreOptions: engram.StoreOptions{Tags: []string{"tmp"}}},
		{AgentID: agent, Content: "temporary note two", StoreOptions: engram.StoreOptions{Tags: []string{"tmp"}}},
		{AgentID: agent, Content: "keep this one", StoreOptions: engram.StoreOptions{Tags: []string{"keep"}}},
	}))
	dry := must(c.ForgetDryRun(ctx, agent, engram.Filter{TagsAny: []string{"tmp"}}))
	if dry.MatchedCount != 2 || dry.DeletedCount != 0 || !dry.DryRun || len(dry.Ids) != 2 {
		t.Errorf("ForgetDryRun = %v", dry)
	}
	done := must(c.Forget(ctx, agent, engram.Filter{TagsAny: []string{"tmp"}}))
	if done.MatchedCount != 2 || done.DeletedCount != 2 || done.DryRun {
		t.Errorf("Forget = %v", done)
	}
	if page := must(c.List(ctx, agent, nil)); page.TotalSize != 1 || page.Memories[0].Content != "keep this one" {
		t.Errorf("after Forget: %v", page)
	}
	_, err := c.Forget(ctx, agent, engram.Filter{})
	wantCode(t, err, engram.CodeInvalidArgument)
}

func TestGraph(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent := "graph-agent"
	b := must(c.BatchStore(ctx, []engram.StoreItem{
		{AgentID: agent, Content: "The outage started at 09:12."},
		{AgentID: agent, Content: "A bad config push caused the outage."},
		{AgentID: agent, Content: "Config pushes now need two reviewers."},
	}))
	a, bb, cc := b.Memories[0].Id, b.Memories[1].Id, b.Memories[2].Id
	l := must(c.Link(ctx, agent, a, bb, &engram.LinkOptions{Relation: "caused_by", Weight: engram.Ptr[float32](0.9)}))
	if l.SourceId != a || l.TargetId != bb || l.Relation != "caused_by" || math.Abs(float64(l.Weight)-0.9) > 1e-6 || l.AgentId != agent {
		t.Errorf("Link = %v", l)
	}
	l2 := must(c.Link(ctx, agent, bb, cc, nil))
	if l2.Relation != "related_to" || l2.Weight != 1 {
		t.Errorf("Link with defaults = %v", l2)
	}
	g := must(c.Graph(ctx, agent, a, &engram.GraphOptions{Depth: 2}))
	if len(g.Memories) != 3 || g.Memories[0].Id != a || len(g.Links) != 2 {
		t.Errorf("Graph depth 2 = %v", g)
	}
	g1 := must(c.Graph(ctx, agent, a, nil))
	if len(g1.Memories) != 2 || len(g1.Links) != 1 {
		t.Errorf("Graph depth 1 = %v", g1)
	}
	if gr := must(c.Graph(ctx, agent, a, &engram.GraphOptions{Depth: 2, Relations: []string{"related_to"}})); len(gr.Memories) != 1 {
		t.Errorf("Graph following related_to only = %v", gr)
	}
	_, err := c.Link(ctx, agent, a, a, nil)
	wantCode(t, err, engram.CodeInvalidArgument)
	_, err = c.Link(ctx, agent, a, "no-such-memory", nil)
	wantCode(t, err, engram.CodeNotFound)
	_, err = c.Graph(ctx, agent, "no-such-memory", nil)
	wantCode(t, err, engram.CodeNotFound)

	if n := must(c.Unlink(ctx, agent, a, bb, "")); n != 1 {
		t.Errorf("Unlink removed %d, want 1", n)
	}
	if n := must(c.Unlink(ctx, agent, a, bb, "")); n != 0 {
		t.Errorf("second Unlink removed %d, want 0", n)
	}
	if g := must(c.Graph(ctx, agent, a, nil)); len(g.Memories) != 1 || len(g.Links) != 0 {
		t.Errorf("Graph after Unlink = %v", g)
	}
}

func TestExportImport(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent, restored := "export-agent", "export-agent-restored"
	for i := range 5 {
		must(c.Store(ctx, agent, "exported memory "+string(rune('0'+i)), &engram.StoreOptions{Tags: []string{"export"}, Metadata: map[string]any{"i": float64(i)}}))
	}
	var backup []*engram.Memory
	for m, err := range c.Export(ctx, agent, nil) {
		if err != nil {
			t.Fatal(err)
		}
		backup = append(backup, m)
	}
	if len(backup) != 5 || backup[0].AgentId != agent || backup[0].CreatedAt == nil || backup[0].Version != 1 {
		t.Fatalf("Export = %v", backup)
	}
	n := 0
	for _, err := range c.Export(ctx, agent, &engram.Filter{IDs: []string{backup[0].Id, backup[1].Id}}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("filtered Export: %d, want 2", n)
	}
	for range c.Export(ctx, agent, nil) {
		break // stopping early cancels the stream
	}

	// Ids are per agent: importing over the originals' own ids skips every one...
	res := must(c.Import(ctx, slices.Values(backup), &engram.ImportOptions{AgentID: agent}))
	if res.ImportedCount != 0 || res.SkippedCount != 5 {
		t.Errorf("Import over existing ids = %v, want every memory skipped", res)
	}
	// ...and the same ids copy into another agent, with ids and times.
	if n := must(c.DeleteAgent(ctx, agent)); n != 5 {
		t.Fatalf("DeleteAgent erased %d, want 5", n)
	}
	res = must(c.Import(ctx, slices.Values(backup), &engram.ImportOptions{AgentID: restored}))
	if res.ImportedCount != 5 || res.SkippedCount != 0 {
		t.Errorf("Import = %v", res)
	}
	res = must(c.Import(ctx, slices.Values(backup), &engram.ImportOptions{AgentID: restored}))
	if res.ImportedCount != 0 || res.SkippedCount != 5 {
		t.Errorf("Import again = %v, want every memory skipped", res)
	}
	copyOf := must(c.Get(ctx, backup[2].Id))
	if copyOf.AgentId != restored || copyOf.Content != backup[2].Content || !copyOf.CreatedAt.AsTime().Equal(backup[2].CreatedAt.AsTime()) {
		t.Errorf("imported memory = %v, want %v", copyOf, backup[2])
	}
	if rec := must(c.Recall(ctx, restored, "exported memory 3", &engram.RecallOptions{TopK: 1, Mode: engram.RecallModeKeyword})); len(rec.Memories) != 1 {
		t.Errorf("Recall in the restored agent = %v", rec)
	}
	for m, err := range c.Export(ctx, "", nil) {
		if m != nil || !engram.IsInvalidArgument(err) {
			t.Errorf("Export without agent: %v, %v", m, err)
		}
	}
	_, err := c.Import(ctx, slices.Values([]*engram.Memory{{Content: "no id, no agent"}}), nil)
	wantCode(t, err, engram.CodeInvalidArgument)
}

func TestAgents(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	for _, a := range []string{"agents-a", "agents-b", "agents-c"} {
		must(c.Store(ctx, a, "a memory of "+a, &engram.StoreOptions{Type: engram.MemoryTypeSemantic}))
	}
	must(c.Store(ctx, "agents-a", "another memory", nil))

	a := must(c.GetAgent(ctx, "agents-a"))
	if a.AgentId != "agents-a" || a.MemoryCount != 2 || a.BytesStored <= 0 || a.CreatedAt == nil || a.LastActivityAt == nil ||
		a.MemoryTypeCounts["semantic"] != 1 || a.MemoryTypeCounts["episodic"] != 1 {
		t.Errorf("GetAgent = %v", a)
	}
	page := must(c.ListAgents(ctx, 2, ""))
	if len(page.Agents) != 2 || page.TotalSize < 3 || page.NextPageToken == "" {
		t.Errorf("ListAgents = %v", page)
	}
	var ids []string
	for a, err := range c.Agents(ctx, 2) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.AgentId)
	}
	if !slices.IsSorted(ids) || !slices.Contains(ids, "agents-a") || !slices.Contains(ids, "agents-c") || len(ids) != int(page.TotalSize) {
		t.Errorf("Agents = %v (total %d)", ids, page.TotalSize)
	}

	n := must(c.DeleteAgent(ctx, "agents-a"))
	if n != 2 {
		t.Errorf("DeleteAgent erased %d, want 2", n)
	}
	_, err := c.GetAgent(ctx, "agents-a")
	wantCode(t, err, engram.CodeNotFound)
	if page := must(c.List(ctx, "agents-a", nil)); page.TotalSize != 0 {
		t.Errorf("memories left after DeleteAgent: %v", page)
	}
}

func TestEmbed(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	e := must(c.Embed(ctx, []string{"hello world", "the cat sat on the mat"}, engram.EmbeddingInputTypeDocument))
	if len(e.Vectors) != 2 || e.Dimensions != 384 || e.Model == "" {
		t.Fatalf("Embed = %d vectors, %d dimensions, model %q", len(e.Vectors), e.Dimensions, e.Model)
	}
	for _, v := range e.Vectors {
		if len(v) != e.Dimensions {
			t.Errorf("vector of %d, want %d", len(v), e.Dimensions)
		}
		var norm float64
		for _, f := range v {
			norm += float64(f) * float64(f)
		}
		if math.Abs(math.Sqrt(norm)-1) > 1e-3 {
			t.Errorf("norm %v, want 1", math.Sqrt(norm))
		}
	}
	q := must(c.Embed(ctx, []string{"hello world"}, engram.EmbeddingInputTypeQuery))
	var dot float64
	for i := range q.Vectors[0] {
		dot += float64(q.Vectors[0][i]) * float64(e.Vectors[0][i])
	}
	if dot < 0.9 {
		t.Errorf("query and document embedding of the same text: cosine %v", dot)
	}
	_, err := c.Embed(ctx, nil, engram.EmbeddingInputTypeUnspecified)
	wantCode(t, err, engram.CodeInvalidArgument)
}

func TestClientErrors(t *testing.T) {
	needServer(t)
	ctx := context.Background()

	// A timeout: the client makes up DEADLINE_EXCEEDED.
	c := client(t, engram.WithTimeout(time.Microsecond))
	_, err := c.Recall(ctx, "timeout-agent", "anything", nil)
	var e *engram.Error
	if !errors.As(err, &e) || e.Code != engram.CodeDeadlineExceeded || e.FromServer || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %#v", err)
	}

	// A cancelled context: CANCELLED.
	c = client(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Health(cctx)
	if engram.CodeOf(err) != engram.CodeCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	// No server: UNAVAILABLE after the retries, made up by the client.
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	down := must(engram.NewClient(ctx, "127.0.0.1:"+strconv.Itoa(port), engram.WithRetry(engram.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})))
	defer down.Close()
	start := time.Now()
	_, err = down.Health(ctx)
	if !errors.As(err, &e) || e.Code != engram.CodeUnavailable || e.FromServer || !engram.IsUnavailable(err) {
		t.Errorf("no server: %#v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("no server: took %v", d)
	}
	// NewClient with a deadline waits for the connection, and fails without a server.
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer dcancel()
	if _, err := engram.NewClient(dctx, "127.0.0.1:"+strconv.Itoa(port)); engram.CodeOf(err) != engram.CodeUnavailable {
		t.Errorf("NewClient with a deadline and no server: %v", err)
	}
	// Errors keep the server's details.
	_, err = c.Store(ctx, "details-agent", "", nil)
	if errors.As(err, &e) {
		for _, d := range e.Details {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 && br.FieldViolations[0].Field == "" {
				t.Errorf("BadRequest detail without a field: %v", br)
			}
		}
	}
	if s, ok := status.FromError(err); !ok || s.Code().String() != "InvalidArgument" {
		t.Errorf("status.FromError(%v) = %v, %v", err, s, ok)
	}
}
