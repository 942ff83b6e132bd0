package engram_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	engram "github.com/engram-memory-server/engram/sdk-go"
)

// ownServer starts an engram-server for t alone (extra: more `serve` arguments), stopped and
// removed at the end of t: for tests that restart the server or need other settings.
func ownServer(t *testing.T, extra ...string) *testServer {
	t.Helper()
	needServer(t)
	srv, err := newTestServer(extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.close)
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// clientOf returns a client of srv with its root key.
func clientOf(t *testing.T, srv *testServer, opts ...engram.Option) *engram.Client {
	t.Helper()
	c, err := engram.NewClient(context.Background(), srv.addr(), append([]engram.Option{engram.WithAPIKey(srv.key)}, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// firstEvents returns the first n events of a watch, or the error that ended it first; it
// gives up after 30 s.
func firstEvents(c *engram.Client, agentID string, n int, opts ...engram.WatchOption) ([]*engram.MemoryEvent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*engram.MemoryEvent
	for ev, err := range c.Watch(ctx, agentID, opts...) {
		if err != nil {
			return out, fmt.Errorf("Watch(%q) after %d events: %w", agentID, len(out), err)
		}
		out = append(out, ev)
		if len(out) == n {
			break
		}
	}
	return out, nil
}

// take returns the first n events of a watch, failing t on an error or after 30 s.
func take(t *testing.T, c *engram.Client, agentID string, n int, opts ...engram.WatchOption) []*engram.MemoryEvent {
	t.Helper()
	events, err := firstEvents(c, agentID, n, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// position is the number a cursor of this server holds (cursors are opaque to clients; the
// tests use it to check the order).
func position(t *testing.T, cursor string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(cursor, 10, 64)
	if err != nil {
		t.Fatalf("cursor %q: %v", cursor, err)
	}
	return n
}

// ascending fails t unless the events' cursors strictly increase.
func ascending(t *testing.T, events []*engram.MemoryEvent) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		if position(t, events[i].Cursor) <= position(t, events[i-1].Cursor) {
			t.Fatalf("event %d cursor %s after %s: not ascending", i, events[i].Cursor, events[i-1].Cursor)
		}
	}
}

func TestWatchOrder(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	agent, other := "watch-order-agent-"+randomHex(4), "watch-order-other-"+randomHex(4)
	m := must(c.Store(ctx, agent, "Watched memory", nil))
	must(c.Update(ctx, m.Memory.Id, engram.MemoryUpdate{Content: engram.Ptr("Watched memory, edited")}))
	k := must(c.Store(ctx, agent, "theme: light", &engram.StoreOptions{Key: "theme"}))
	must(c.Store(ctx, agent, "theme: dark", &engram.StoreOptions{Key: "theme"}))
	must(c.Store(ctx, other, "not this agent's", nil))
	if err := c.Delete(ctx, m.Memory.Id); err != nil {
		t.Fatal(err)
	}

	events := take(t, c, agent, 5, engram.StartAfter(engram.OldestCursor))
	type seen struct {
		typ     engram.MemoryEventType
		id      string
		version int32
		content string
	}
	var got []seen
	for _, ev := range events {
		got = append(got, seen{ev.Type, ev.MemoryId, ev.Version, ev.GetMemory().GetContent()})
		if ev.AgentId != agent || ev.Time == nil || ev.Cursor == "" {
			t.Errorf("event %v: want agent %s, a time and a cursor", ev, agent)
		}
	}
	want := []seen{
		{engram.MemoryEventTypeCreated, m.Memory.Id, 1, "Watched memory"},
		{engram.MemoryEventTypeUpdated, m.Memory.Id, 2, "Watched memory, edited"},
		{engram.MemoryEventTypeCreated, k.Memory.Id, 1, "theme: light"},
		{engram.MemoryEventTypeUpdated, k.Memory.Id, 2, "theme: dark"},
		{engram.MemoryEventTypeDeleted, m.Memory.Id, 2, ""}, // no memory on a deletion
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Watch events:\n got %v\nwant %v", got, want)
	}
	ascending(t, events)

	// Resuming after a cursor continues exactly there.
	if again := take(t, c, agent, 1, engram.StartAfter(events[1].Cursor)); again[0].Cursor != events[2].Cursor {
		t.Errorf("resumed after %s at %s, want %s", events[1].Cursor, again[0].Cursor, events[2].Cursor)
	}

	// Changes after the last cursor arrive live.
	live := make(chan []*engram.MemoryEvent, 1)
	go func() {
		got, err := firstEvents(c, agent, 2, engram.StartAfter(events[4].Cursor))
		if err != nil {
			t.Error(err)
		}
		live <- got
	}()
	time.Sleep(200 * time.Millisecond)
	a := must(c.Store(ctx, agent, "Live one", nil))
	b := must(c.Store(ctx, agent, "Live two", nil))
	select {
	case got := <-live:
		if len(got) != 2 || got[0].MemoryId != a.Memory.Id || got[1].MemoryId != b.Memory.Id || got[1].Memory.GetContent() != "Live two" {
			t.Errorf("live events = %v", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no live events within 30 s")
	}

	// An empty agent id watches every agent the key may access.
	all := take(t, c, "", 2, engram.StartAfter(events[3].Cursor))
	if all[0].AgentId != other || all[1].MemoryId != m.Memory.Id {
		t.Errorf("Watch of every agent = %v", all)
	}

	// WatchResponses yields the responses as the server sent them, with their cursor.
	ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for res, err := range c.WatchResponses(ctx2, agent, engram.StartAfter(engram.OldestCursor)) {
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res.Events); n == 0 || res.Cursor != res.Events[n-1].Cursor {
			t.Errorf("WatchResponses = %v: want events and the last one's cursor", res)
		}
		break
	}
}

func TestWatchFromNow(t *testing.T) {
	c := client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agent := "watch-now-agent-" + randomHex(4)
	must(c.Store(ctx, agent, "before the watch", nil))
	first := make(chan *engram.MemoryEvent, 1)
	go func() {
		for ev, err := range c.Watch(ctx, agent) {
			if err == nil {
				first <- ev
			}
			break
		}
		close(first)
	}()
	// The watch starts when the server takes the call: store until it sees a change.
	for i := 0; ; i++ {
		content := fmt.Sprintf("after the watch %d", i)
		must(c.Store(ctx, agent, content, nil))
		select {
		case ev := <-first:
			if ev == nil || ev.Type != engram.MemoryEventTypeCreated || ev.Memory.GetContent() == "before the watch" {
				t.Fatalf("first event from now = %v", ev)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestWatchErrors(t *testing.T) {
	c := client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agent := "watch-errors-agent"
	for _, cursor := range []string{"yesterday", "9223372036854775807"} {
		n := 0
		for ev, err := range c.Watch(ctx, agent, engram.StartAfter(cursor)) {
			n++
			if ev != nil {
				t.Fatalf("Watch after %q yielded %v", cursor, ev)
			}
			wantCode(t, err, engram.CodeInvalidArgument)
		}
		if n != 1 {
			t.Errorf("Watch after %q yielded %d times, want one error", cursor, n)
		}
	}
	created := must(c.CreateAPIKey(ctx, "go-watch-pinned", engram.APIKeyRoleReadOnly, &engram.APIKeyOptions{AgentIDs: []string{agent}}))
	pinned := client(t, engram.WithAPIKey(created.Key))
	for _, err := range pinned.Watch(ctx, "watch-errors-other", engram.StartAfter(engram.OldestCursor)) {
		wantCode(t, err, engram.CodePermissionDenied)
	}

	// A server that is not there: the "cannot connect" error, after the retries.
	port, err := freePort() // nothing listens there any more
	if err != nil {
		t.Fatal(err)
	}
	closed, err := engram.NewClient(context.Background(), fmt.Sprintf("127.0.0.1:%d", port),
		engram.WithRetry(engram.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	for _, err := range closed.Watch(ctx, agent) {
		if !engram.IsUnavailable(err) {
			t.Errorf("Watch of a closed port: %v, want UNAVAILABLE", err)
		}
	}
}

func TestWatchCancel(t *testing.T) {
	c := client(t)
	agent := "watch-cancel-agent-" + randomHex(4)
	must(c.Store(context.Background(), agent, "one", nil))

	// Cancelling the context ends the watch with CANCELLED, also while it waits for changes.
	ctx, cancel := context.WithCancel(context.Background())
	var events int
	var last error
	start := time.Now()
	for ev, err := range c.Watch(ctx, agent, engram.StartAfter(engram.OldestCursor)) {
		if err != nil {
			last = err
			continue // the iteration ends after its error
		}
		events++
		if ev.Memory.GetContent() == "one" {
			time.AfterFunc(100*time.Millisecond, cancel)
		}
	}
	if events != 1 || engram.CodeOf(last) != engram.CodeCanceled || !errors.Is(last, context.Canceled) {
		t.Errorf("cancelled Watch: %d events, error %v; want 1 event, then CANCELLED", events, last)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled Watch ended after %v", d)
	}

	// A deadline ends it with DEADLINE_EXCEEDED.
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for ev, err := range c.Watch(ctx, agent) {
		if ev != nil || engram.CodeOf(err) != engram.CodeDeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Watch past its deadline: %v, %v; want DEADLINE_EXCEEDED", ev, err)
		}
	}
}

func TestWatchResumesAcrossRestarts(t *testing.T) {
	srv := ownServer(t)
	c := clientOf(t, srv)
	agent := "watch-restart-agent"
	store := func(from, to int) {
		t.Helper()
		// A new client for each server run: the watch's client must reconnect on its own.
		w := clientOf(t, srv)
		for i := from; i <= to; i++ {
			must(w.Store(context.Background(), agent, fmt.Sprintf("change %d", i), nil))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		ev  *engram.MemoryEvent
		err error
	}
	results := make(chan result, 100)
	go func() {
		for ev, err := range c.Watch(ctx, agent, engram.StartAfter(engram.OldestCursor)) {
			results <- result{ev, err}
		}
		close(results)
	}()
	var events []*engram.MemoryEvent
	receive := func(n int) {
		t.Helper()
		for len(events) < n {
			select {
			case r := <-results:
				if r.err != nil {
					t.Fatalf("Watch ended after %d events: %v", len(events), r.err)
				}
				events = append(events, r.ev)
			case <-time.After(60 * time.Second):
				t.Fatalf("Watch: %d events within 60 s, want %d", len(events), n)
			}
		}
	}

	store(1, 3)
	receive(3)
	// A graceful stop (the server ends the stream), then changes made before the watch is back.
	srv.stop(syscall.SIGTERM)
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	store(4, 6)
	receive(6)
	// A crash (the connection drops).
	srv.stop(syscall.SIGKILL)
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	store(7, 9)
	receive(9)

	for i, ev := range events {
		if want := fmt.Sprintf("change %d", i+1); ev.Type != engram.MemoryEventTypeCreated || ev.Memory.GetContent() != want {
			t.Errorf("event %d = %v, want the creation of %q", i, ev, want)
		}
	}
	ascending(t, events)
	select {
	case r := <-results:
		t.Errorf("an event more than the changes: %v, %v", r.ev, r.err)
	case <-time.After(500 * time.Millisecond):
	}
	cancel()
	for r := range results {
		if engram.CodeOf(r.err) != engram.CodeCanceled {
			t.Errorf("after cancel: %v, %v; want CANCELLED", r.ev, r.err)
		}
	}
}

func TestWatchOutOfRange(t *testing.T) {
	srv := ownServer(t, "--max-retained-events", "3", "--maintenance-interval", "0.1")
	c := clientOf(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	agent := "watch-range-agent"
	must(c.Store(ctx, agent, "the first change", nil))
	first := take(t, c, agent, 1, engram.StartAfter(engram.OldestCursor))[0]
	for i := range 6 {
		must(c.Store(ctx, agent, fmt.Sprintf("change %d", i), nil))
	}
	// Maintenance drops the oldest changes beyond 3: the first cursor expires.
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, err = range c.Watch(ctx, agent, engram.StartAfter(first.Cursor)) {
			break
		}
		if err != nil {
			break
		}
	}
	e := wantCode(t, err, engram.CodeOutOfRange)
	if !engram.IsOutOfRange(err) || e.Message == "" {
		t.Errorf("expired cursor: %v", err)
	}
	// The iteration ends with its error: nothing more comes.
	n := 0
	for range c.Watch(ctx, agent, engram.StartAfter(first.Cursor)) {
		n++
	}
	if n != 1 {
		t.Errorf("Watch after an expired cursor yielded %d times, want its error once", n)
	}
}
