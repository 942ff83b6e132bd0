package engram

import (
	"context"
	"errors"
	"io"
	"iter"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// OldestCursor is the cursor to start a watch from to replay every change the server still
// retains (its event retention, 7 days by default) before the live ones:
// Watch(ctx, agentID, StartAfter(OldestCursor)).
const OldestCursor = "0"

// WatchOption is an option of [Client.Watch] and [Client.WatchResponses].
type WatchOption func(*watchOptions)

type watchOptions struct {
	startAfter string
}

// StartAfter makes a watch start after cursor: a MemoryEvent.Cursor or
// WatchMemoriesResponse.Cursor of an earlier watch (of the same server and data), to resume
// exactly where it stopped, or [OldestCursor] to replay every change still retained. Cursors
// are opaque strings of digits. A cursor older than the retained changes fails with
// OUT_OF_RANGE ([IsOutOfRange]: resynchronise with [Client.Export], then watch from now); a
// malformed one, or one ahead of the server, with INVALID_ARGUMENT. Default (or ""): changes
// from now on.
func StartAfter(cursor string) WatchOption {
	return func(o *watchOptions) { o.startAfter = cursor }
}

// Watch streams the changes to agentID's memories (WatchMemories), in the order the server
// made them, each once: created, updated (an update, a merged duplicate, an upsert by key, a
// consolidation), deleted and expired memories. MemoryEvent.Memory is the memory after a change
// of type MemoryEventTypeCreated or MemoryEventTypeUpdated. An empty agentID watches every agent
// the API key may access. See [StartAfter] for where it starts (default: from now).
//
// The stream never ends on its own: range over it until you have what you need and break (which
// cancels the call), or until ctx ends, when it yields one error with code CANCELLED or
// DEADLINE_EXCEEDED that wraps ctx.Err() (errors.Is(err, context.Canceled) or
// context.DeadlineExceeded holds; ctx.Err() is set by then). The heartbeats the server sends
// while nothing changes are not yielded (see [Client.WatchResponses] for them).
//
// When the stream breaks (UNAVAILABLE: the server restarted, the connection dropped; or the
// server ended it as it stopped) Watch resumes it after the last cursor it received, waiting
// between attempts as the client's [RetryPolicy] says, so no change is missed or repeated.
// While no connection to the server could ever be opened, Watch tries RetryPolicy.MaxAttempts
// times, then yields the UNAVAILABLE "cannot connect" error; once a stream has reached the
// server, Watch resumes for as long as ctx lasts, each attempt waiting until the connection is
// ready again. Any other error ends the iteration: it yields it with a nil event, such as
// OUT_OF_RANGE when the cursor is older than what the server retains ([IsOutOfRange]),
// INVALID_ARGUMENT, PERMISSION_DENIED, or FAILED_PRECONDITION when the server's change stream
// is off.
//
// Save an event's Cursor once you have processed it, and pass it to [StartAfter] to continue
// from there after a restart of your program. The server's first response comes at once with
// the cursor a watch from now starts at, so even a stream lost before any change resumes where
// the watch began. Each range over the returned sequence is a new watch from the options' cursor.
func (c *Client) Watch(ctx context.Context, agentID string, opts ...WatchOption) iter.Seq2[*MemoryEvent, error] {
	responses := c.WatchResponses(ctx, agentID, opts...)
	return func(yield func(*MemoryEvent, error) bool) {
		for res, err := range responses {
			if err != nil {
				yield(nil, err)
				return
			}
			for _, ev := range res.GetEvents() {
				if !yield(ev, nil) {
					return
				}
			}
		}
	}
}

// WatchResponses is [Client.Watch] one response at a time, as the server sent them: a
// WatchMemoriesResponse holds events (oldest first) or none (a heartbeat, at least every 15
// seconds while nothing changes), and the Cursor to resume after it. Unlike an event's cursor,
// a heartbeat's also moves past the changes of agents the watch does not show: use it to
// checkpoint a watch of a quiet agent, or to tell that the stream is alive. Errors, resumption
// and cancellation are those of Watch.
func (c *Client) WatchResponses(ctx context.Context, agentID string, opts ...WatchOption) iter.Seq2[*WatchMemoriesResponse, error] {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	return func(yield func(*WatchMemoriesResponse, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		policy := c.watchRetryPolicy()
		cursor := o.startAfter
		answered := false // the server accepted a stream of this watch: resume for as long as ctx lasts
		failures := 0     // consecutive attempts that ended without a response
		for {
			var meta callMeta
			callOpts := meta.callOptions()
			if answered {
				// Wait for the server to come back rather than fail at once while it is away.
				callOpts = append(callOpts, grpc.WaitForReady(true))
			}
			req := &engramv1.WatchMemoriesRequest{AgentId: agentID, StartAfter: cursor}
			stream, err := c.memory.WatchMemories(ctx, req, callOpts...)
			for err == nil {
				var res *engramv1.WatchMemoriesResponse
				res, err = stream.Recv()
				if err != nil {
					break
				}
				answered, failures = true, 0
				if res.GetCursor() != "" {
					cursor = res.GetCursor()
				}
				if !yield(res, nil) {
					return
				}
			}
			e := c.watchError(ctx, err, meta.received())
			// The server took the call if it answered, or if the stream broke after the
			// connection was open (only the connection failing means the server is not there).
			answered = answered || meta.received() || !cannotConnectError(e)
			if ctx.Err() != nil || !c.resumable(e) ||
				(!answered && failures+1 >= max(1, c.cfg.retry.MaxAttempts)) ||
				!sleepFor(ctx, policy, failures, e) {
				if errors.Is(e, context.DeadlineExceeded) {
					// gRPC may see the deadline a moment before ctx does: let ctx.Err() be set
					// when the caller sees the error.
					<-ctx.Done()
				}
				yield(nil, e)
				return
			}
			failures++
		}
	}
}

// cannotConnectError reports whether err says that no connection to the server could be
// opened (see cannotConnect).
func cannotConnectError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeUnavailable && !e.FromServer && strings.HasPrefix(e.Message, "cannot connect to ")
}

// watchError converts the error that ended a watch stream into an *Error; the end of the
// stream (the server stopping) is UNAVAILABLE.
func (c *Client) watchError(ctx context.Context, err error, fromServer bool) error {
	if err == io.EOF {
		if ctx.Err() != nil {
			return toError(ctx, ctx.Err(), false)
		}
		return &Error{Code: CodeUnavailable, Message: "the server ended the watch stream (it is stopping)", FromServer: true, cause: err}
	}
	return c.callError(ctx, err, fromServer)
}

// resumable reports whether a watch whose context is still live and that ended with err
// should be resumed: the connection or the stream broke (UNAVAILABLE), or the server cancelled
// the call (CANCELLED, as when it stops), unless the client was closed.
func (c *Client) resumable(err error) bool {
	var e *Error
	if !errors.As(err, &e) || c.conn.GetState() == connectivity.Shutdown {
		return false
	}
	return e.Code == CodeUnavailable || e.Code == CodeCanceled
}

// watchRetryPolicy is the client's retry policy with the backoff bounds a watch needs to not
// spin when they are zero.
func (c *Client) watchRetryPolicy() RetryPolicy {
	p := c.cfg.retry
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	return p
}
