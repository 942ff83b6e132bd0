package engram

// Unit tests of the client's behaviour against an in-process fake server (no engram-server):
// retries, timeouts, API key metadata, error conversion.

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// fakeMemory fails the first `failures` calls of each RPC with UNAVAILABLE (with a RetryInfo
// detail when retryAfter is set) and records the authorization metadata it saw.
type fakeMemory struct {
	engramv1.UnimplementedMemoryServiceServer
	engramv1.UnimplementedEmbeddingServiceServer
	failures   int32
	retryAfter time.Duration
	calls      atomic.Int32
	auth       atomic.Value
	delay      time.Duration
	watchEnds  []error // how each WatchMemories call ends after its response (nil: the stream ends)
	mu         sync.Mutex
	starts     []string // the start_after of each WatchMemories call
}

func (f *fakeMemory) watchStarts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.starts)
}

func (f *fakeMemory) fail(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.auth.Store(md.Get("authorization"))
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.calls.Add(1) <= f.failures {
		s := status.New(codes.Unavailable, "try again")
		if f.retryAfter > 0 {
			s, _ = s.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(f.retryAfter)})
		}
		return s.Err()
	}
	return nil
}

func (f *fakeMemory) StoreMemory(ctx context.Context, req *engramv1.StoreMemoryRequest) (*engramv1.StoreMemoryResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &engramv1.StoreMemoryResponse{Memory: &engramv1.Memory{Id: "m1", Content: req.Content}, Created: true}, nil
}

func (f *fakeMemory) GetMemory(ctx context.Context, req *engramv1.GetMemoryRequest) (*engramv1.GetMemoryResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &engramv1.GetMemoryResponse{Memory: &engramv1.Memory{Id: req.Id}}, nil
}

func (f *fakeMemory) ForgetMemories(ctx context.Context, req *engramv1.ForgetMemoriesRequest) (*engramv1.ForgetMemoriesResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &engramv1.ForgetMemoriesResponse{DryRun: req.DryRun}, nil
}

func (f *fakeMemory) ListMemories(ctx context.Context, req *engramv1.ListMemoriesRequest) (*engramv1.ListMemoriesResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	// Three pages of two memories; the token is the index of the next memory.
	start := map[string]int{"": 0, "2": 2, "4": 4}[req.PageToken]
	res := &engramv1.ListMemoriesResponse{TotalSize: 6}
	for i := start; i < start+2; i++ {
		res.Memories = append(res.Memories, &engramv1.Memory{Id: string(rune('a' + i))})
	}
	if start+2 < 6 {
		res.NextPageToken = string(rune('0' + start + 2))
	}
	return res, nil
}

func (f *fakeMemory) ConsolidateMemories(ctx context.Context, req *engramv1.ConsolidateMemoriesRequest) (*engramv1.ConsolidateMemoriesResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &engramv1.ConsolidateMemoriesResponse{DryRun: req.DryRun}, nil
}

// WatchMemories sends the events after start_after of a log of six, two a response (or a
// heartbeat after the last), then ends each stream as f.watchEnds says (one entry per call;
// past them, it waits for the cancel).
func (f *fakeMemory) WatchMemories(req *engramv1.WatchMemoriesRequest, stream grpc.ServerStreamingServer[engramv1.WatchMemoriesResponse]) error {
	n := f.calls.Add(1)
	f.mu.Lock()
	f.starts = append(f.starts, req.StartAfter)
	f.mu.Unlock()
	after := 0
	if req.StartAfter != "" {
		after = int(req.StartAfter[0] - '0')
	}
	end := func() error {
		if int(n) <= len(f.watchEnds) {
			return f.watchEnds[n-1]
		}
		<-stream.Context().Done()
		return nil
	}
	res := &engramv1.WatchMemoriesResponse{Cursor: req.StartAfter} // a heartbeat when nothing is left
	for i := after + 1; i <= min(after+2, 6); i++ {
		c := string(rune('0' + i))
		res.Events = append(res.Events, &engramv1.MemoryEvent{Cursor: c, MemoryId: "m" + c})
		res.Cursor = c
	}
	if err := stream.Send(res); err != nil {
		return err
	}
	return end()
}

func (f *fakeMemory) Embed(ctx context.Context, req *engramv1.EmbedRequest) (*engramv1.EmbedResponse, error) {
	res := &engramv1.EmbedResponse{Model: "fake", Dimensions: 3}
	for range req.Texts {
		res.Embeddings = append(res.Embeddings, &engramv1.Embedding{Vector: EncodeVector([]float32{1, -0.5, 0.25})})
	}
	return res, nil
}

func fakeClient(t *testing.T, f *fakeMemory, opts ...Option) *Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	engramv1.RegisterMemoryServiceServer(srv, f)
	engramv1.RegisterEmbeddingServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	opts = append([]Option{
		WithRetry(RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}),
		WithDialOptions(grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })),
	}, opts...)
	c, err := NewClient(context.Background(), "passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestUnitRetryIdempotentOnly(t *testing.T) {
	ctx := context.Background()

	f := &fakeMemory{failures: 2}
	c := fakeClient(t, f)
	if _, err := c.Get(ctx, "m1"); err != nil || f.calls.Load() != 3 {
		t.Errorf("Get: %v after %d calls, want success after 3", err, f.calls.Load())
	}

	f = &fakeMemory{failures: 1}
	c = fakeClient(t, f)
	_, err := c.Store(ctx, "a", "no id", nil)
	if CodeOf(err) != CodeUnavailable || f.calls.Load() != 1 {
		t.Errorf("Store without id: %v after %d calls, want UNAVAILABLE after 1", err, f.calls.Load())
	}
	var e *Error
	if !errors.As(err, &e) || !e.FromServer || e.Message != "try again" {
		t.Errorf("Store without id: %#v", err)
	}

	f = &fakeMemory{failures: 1}
	c = fakeClient(t, f)
	if _, err := c.Store(ctx, "a", "with id", &StoreOptions{ID: "m1"}); err != nil || f.calls.Load() != 2 {
		t.Errorf("Store with id: %v after %d calls, want success after 2", err, f.calls.Load())
	}

	f = &fakeMemory{failures: 1}
	c = fakeClient(t, f)
	if _, err := c.Store(ctx, "a", "with key", &StoreOptions{Key: "k"}); err != nil || f.calls.Load() != 2 {
		t.Errorf("Store with key: %v after %d calls, want success after 2", err, f.calls.Load())
	}

	f = &fakeMemory{failures: 1}
	c = fakeClient(t, f)
	if _, err := c.Consolidate(ctx, "a"); CodeOf(err) != CodeUnavailable || f.calls.Load() != 1 {
		t.Errorf("Consolidate: %v after %d calls, want UNAVAILABLE after 1", err, f.calls.Load())
	}
	f = &fakeMemory{failures: 1}
	c = fakeClient(t, f)
	if res, err := c.Consolidate(ctx, "a", DryRun()); err != nil || !res.DryRun || f.calls.Load() != 2 {
		t.Errorf("Consolidate(DryRun): %v after %d calls, want success after 2", err, f.calls.Load())
	}

	f = &fakeMemory{failures: 1}
	c = fakeClient(t, f)
	if _, err := c.Forget(ctx, "a", Filter{TagsAny: []string{"x"}}); CodeOf(err) != CodeUnavailable || f.calls.Load() != 1 {
		t.Errorf("Forget: %v after %d calls", err, f.calls.Load())
	}
	f = &fakeMemory{failures: 1}
	c = fakeClient(t, f)
	if _, err := c.ForgetDryRun(ctx, "a", Filter{TagsAny: []string{"x"}}); err != nil || f.calls.Load() != 2 {
		t.Errorf("ForgetDryRun: %v after %d calls", err, f.calls.Load())
	}

	f = &fakeMemory{failures: 5}
	c = fakeClient(t, f)
	if _, err := c.Get(ctx, "m1"); CodeOf(err) != CodeUnavailable || f.calls.Load() != 3 {
		t.Errorf("Get, always failing: %v after %d calls, want 3 attempts", err, f.calls.Load())
	}

	f = &fakeMemory{failures: 5}
	c = fakeClient(t, f, WithRetry(RetryPolicy{MaxAttempts: 1}))
	if _, err := c.Get(ctx, "m1"); CodeOf(err) != CodeUnavailable || f.calls.Load() != 1 {
		t.Errorf("Get, retries off: %v after %d calls", err, f.calls.Load())
	}
}

func TestUnitRetryAfter(t *testing.T) {
	f := &fakeMemory{failures: 1, retryAfter: 150 * time.Millisecond}
	c := fakeClient(t, f)
	start := time.Now()
	if _, err := c.Get(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("retried after %v, before the server's RetryInfo delay", d)
	}
	// The delay shows in the error, and a deadline shorter than it ends the retries at once.
	f = &fakeMemory{failures: 1, retryAfter: time.Hour}
	c = fakeClient(t, f, WithTimeout(time.Second))
	start = time.Now()
	_, err := c.Get(context.Background(), "m1")
	var e *Error
	if !errors.As(err, &e) || e.RetryAfter != time.Hour || len(e.Details) != 1 {
		t.Errorf("error %#v, want RetryAfter 1h and the RetryInfo detail", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("waited %v for a retry that could not finish before the deadline", d)
	}
}

func TestUnitTimeoutAndAPIKey(t *testing.T) {
	f := &fakeMemory{delay: time.Second}
	c := fakeClient(t, f, WithTimeout(50*time.Millisecond), WithAPIKey("secret-key"))
	_, err := c.Get(context.Background(), "m1")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeDeadlineExceeded || e.FromServer {
		t.Errorf("timeout: %#v", err)
	}
	if got := f.auth.Load(); !slices.Equal(got.([]string), []string{"Bearer secret-key"}) {
		t.Errorf("authorization = %v", got)
	}
	// A context deadline takes precedence over the default timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "m1"); err != nil {
		t.Errorf("with a longer context deadline: %v", err)
	}
	// The generated clients carry the key too.
	if _, err := c.MemoryService().GetMemory(ctx, &engramv1.GetMemoryRequest{Id: "m1"}); err != nil {
		t.Fatal(err)
	}
}

func TestUnitPages(t *testing.T) {
	c := fakeClient(t, &fakeMemory{})
	var ids []string
	for m, err := range c.Memories(context.Background(), "a", &ListOptions{PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Id)
	}
	if !slices.Equal(ids, []string{"a", "b", "c", "d", "e", "f"}) {
		t.Errorf("Memories = %v", ids)
	}
}

func TestUnitEmbedDecodes(t *testing.T) {
	c := fakeClient(t, &fakeMemory{})
	e, err := c.Embed(context.Background(), []string{"x", "y"}, EmbeddingInputTypeQuery)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Vectors) != 2 || !slices.Equal(e.Vectors[1], []float32{1, -0.5, 0.25}) || e.Dimensions != 3 || e.Model != "fake" {
		t.Errorf("Embed = %+v", e)
	}
}

func TestUnitVectorCodec(t *testing.T) {
	b := EncodeVector([]float32{1, -2.5})
	if want := []byte{0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0}; !slices.Equal(b, want) {
		t.Errorf("EncodeVector = %x, want %x (little-endian float32)", b, want)
	}
	v, err := DecodeVector(b)
	if err != nil || !slices.Equal(v, []float32{1, -2.5}) {
		t.Errorf("DecodeVector = %v, %v", v, err)
	}
	if _, err := DecodeVector([]byte{1, 2, 3}); err == nil {
		t.Error("DecodeVector of 3 bytes: no error")
	}
}

func TestUnitCodes(t *testing.T) {
	for c := CodeOK; c <= CodeUnauthenticated; c++ {
		if c.String() != grpcName(codes.Code(c)) {
			t.Errorf("%d: %s, want %s", c, c, grpcName(codes.Code(c)))
		}
		if p, ok := ParseCode(c.String()); !ok || p != c {
			t.Errorf("ParseCode(%s) = %v, %v", c, p, ok)
		}
	}
	if Code(99).String() != "CODE(99)" {
		t.Error(Code(99).String())
	}
	if CodeOf(nil) != CodeOK || CodeOf(errors.New("x")) != CodeUnknown || CodeOf(context.Canceled) != CodeCanceled ||
		CodeOf(status.Error(codes.NotFound, "x")) != CodeNotFound {
		t.Error("CodeOf")
	}
	err := error(&Error{Code: CodeNotFound, Message: "memory m1 not found"})
	wrapped := errors.Join(errors.New("context"), err)
	if !IsNotFound(wrapped) || err.Error() != "engram: NOT_FOUND: memory m1 not found" || status.Code(err) != codes.NotFound {
		t.Errorf("wrapped error: %v", wrapped)
	}
}

// grpcName is the canonical name of a gRPC code, from its google.golang.org/grpc name.
func grpcName(c codes.Code) string {
	names := map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
		codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
		codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
		codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
		codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
	}
	return names[c]
}

func TestUnitBackoff(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}
	for n, limit := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second} {
		for range 50 {
			if d := backoff(p, n); d < 0 || d >= limit {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", n, d, limit)
			}
		}
	}
	if backoff(RetryPolicy{}, 3) != 0 {
		t.Error("zero policy: non-zero backoff")
	}
}

// A watch resumes after the last cursor when its stream breaks with UNAVAILABLE or ends, and
// stops at any other error; the events come once each, in order.
func TestUnitWatchResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unavailable := status.Error(codes.Unavailable, "the proxy went away")
	f := &fakeMemory{watchEnds: []error{unavailable, nil, unavailable}}
	c := fakeClient(t, f)
	var ids []string
	for ev, err := range c.Watch(ctx, "a", StartAfter("0")) {
		if err != nil {
			t.Fatal(err)
		}
		if ids = append(ids, ev.MemoryId); len(ids) == 6 {
			break
		}
	}
	if want := []string{"m1", "m2", "m3", "m4", "m5", "m6"}; !slices.Equal(ids, want) {
		t.Errorf("events %v, want %v", ids, want)
	}
	if want := []string{"0", "2", "4"}; !slices.Equal(f.watchStarts(), want) {
		t.Errorf("start_after of each call %v, want %v", f.watchStarts(), want)
	}

	f = &fakeMemory{watchEnds: []error{status.Error(codes.OutOfRange, "expired")}}
	c = fakeClient(t, f)
	var got []error
	for ev, err := range c.Watch(ctx, "a", StartAfter("0")) {
		if err != nil {
			got = append(got, err)
		} else if ev.MemoryId != "m1" && ev.MemoryId != "m2" {
			t.Errorf("event %v", ev)
		}
	}
	if len(got) != 1 || !IsOutOfRange(got[0]) || len(f.watchStarts()) != 1 {
		t.Errorf("errors %v after %d calls, want one OUT_OF_RANGE after 1", got, len(f.watchStarts()))
	}

	// Heartbeats (responses without events) are hidden from Watch, shown by WatchResponses.
	f = &fakeMemory{watchEnds: []error{nil}}
	c = fakeClient(t, f)
	for res, err := range c.WatchResponses(ctx, "a", StartAfter("6")) {
		if err != nil || len(res.Events) != 0 || res.Cursor != "6" {
			t.Errorf("WatchResponses after the last event: %v, %v; want a heartbeat", res, err)
		}
		break
	}
	f = &fakeMemory{watchEnds: []error{nil}}
	c = fakeClient(t, f)
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	ids = nil
	var last error
	for ev, err := range c.Watch(short, "a", StartAfter("5")) {
		if err != nil {
			last = err
			continue
		}
		ids = append(ids, ev.MemoryId)
	}
	if !slices.Equal(ids, []string{"m6"}) || CodeOf(last) != CodeDeadlineExceeded || !slices.Equal(f.watchStarts(), []string{"5", "6"}) {
		t.Errorf("Watch over a heartbeat: events %v, error %v, starts %v", ids, last, f.watchStarts())
	}
}
