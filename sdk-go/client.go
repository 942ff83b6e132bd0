package engram

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// Version is the version of this SDK, sent in the user agent.
const Version = "0.1.0"

// Client is a client of one Engram server. It is safe for concurrent use; make one and share
// it. Close it when done.
type Client struct {
	conn      *grpc.ClientConn
	cfg       config
	addr      endpoint
	memory    engramv1.MemoryServiceClient
	agent     engramv1.AgentServiceClient
	admin     engramv1.AdminServiceClient
	embedding engramv1.EmbeddingServiceClient
}

// NewClient returns a client of the Engram server at addr: "host:port", "http://host:port" or
// "grpc://host:port" (plaintext HTTP/2, as engram-server serves it), "https://host:port" or
// "grpcs://host:port" (TLS), each with or without a trailing slash, IPv6 hosts in brackets
// ("[::1]:3300"); without a port 3300 (443 for TLS). "" means DefaultAddress,
// "http://127.0.0.1:3300" (no environment variable is read). Any gRPC target such as
// "dns:///engram.internal:3300" or "unix:///run/engram.sock" is used as it is. An address of
// another form fails with INVALID_ARGUMENT.
//
// NewClient does not wait for the connection unless ctx has a deadline: then it connects and
// waits until the connection is ready, failing with UNAVAILABLE when the deadline passes first.
// Without a deadline the first call connects. A server that cannot be reached fails calls with
// UNAVAILABLE naming the address and the cause: "cannot connect to http://127.0.0.1:3300
// (connection refused): is the Engram server running? ...".
func NewClient(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	cfg := config{timeout: DefaultTimeout, retry: DefaultRetryPolicy}
	for _, o := range opts {
		o(&cfg)
	}
	ep, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	target, useTLS := ep.target, ep.tls
	var creds credentials.TransportCredentials
	switch {
	case cfg.tlsSet && cfg.tls != nil:
		creds = credentials.NewTLS(cfg.tls)
	case !cfg.tlsSet && useTLS:
		creds = credentials.NewTLS(nil)
	default:
		creds = insecure.NewCredentials()
	}
	ua := "engram-go/" + Version
	if cfg.userAgent != "" {
		ua = cfg.userAgent + " " + ua
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent(ua),
	}
	if cfg.apiKey != "" {
		auth := "Bearer " + cfg.apiKey
		dialOpts = append(dialOpts,
			grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(withAuth(ctx, auth), method, req, reply, cc, opts...)
			}),
			grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				return streamer(withAuth(ctx, auth), desc, cc, method, opts...)
			}),
		)
	}
	dialOpts = append(dialOpts, cfg.dialOptions...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: err.Error(), cause: err}
	}
	c := &Client{
		conn:      conn,
		cfg:       cfg,
		addr:      ep,
		memory:    engramv1.NewMemoryServiceClient(conn),
		agent:     engramv1.NewAgentServiceClient(conn),
		admin:     engramv1.NewAdminServiceClient(conn),
		embedding: engramv1.NewEmbeddingServiceClient(conn),
	}
	if _, ok := ctx.Deadline(); ok {
		if err := c.waitReady(ctx); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) waitReady(ctx context.Context) error {
	c.conn.Connect()
	for {
		s := c.conn.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !c.conn.WaitForStateChange(ctx, s) {
			if s == connectivity.TransientFailure {
				// The last attempt failed: a fail-fast call answers at once with its cause.
				probe, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := c.admin.Health(probe, &engramv1.HealthRequest{})
				if e, ok := c.callError(probe, err, false).(*Error); ok && e.Code == CodeUnavailable && strings.HasPrefix(e.Message, "cannot connect to ") {
					return e
				}
			}
			return cannotConnect(c.addr.display, "connection timed out", ctx.Err())
		}
	}
}

// Address returns the server address as the client normalised it ("127.0.0.1:3300" becomes
// "http://127.0.0.1:3300"; a gRPC target such as "unix:///run/engram.sock" stays as given).
func (c *Client) Address() string { return c.addr.display }

func withAuth(ctx context.Context, auth string) context.Context {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get("authorization")) > 0 {
		return ctx // the caller set its own key for this call
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", auth)
}

// Close closes the connection. Calls in flight fail with CANCELLED.
func (c *Client) Close() error { return c.conn.Close() }

// Conn returns the underlying gRPC connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// MemoryService returns the generated client of MemoryService, for anything the methods of
// Client do not wrap. Calls through it carry the API key but get no default timeout, no
// retries and no error conversion.
func (c *Client) MemoryService() engramv1.MemoryServiceClient { return c.memory }

// AgentService returns the generated client of AgentService (see MemoryService).
func (c *Client) AgentService() engramv1.AgentServiceClient { return c.agent }

// AdminService returns the generated client of AdminService (see MemoryService).
func (c *Client) AdminService() engramv1.AdminServiceClient { return c.admin }

// EmbeddingService returns the generated client of EmbeddingService (see MemoryService).
func (c *Client) EmbeddingService() engramv1.EmbeddingServiceClient { return c.embedding }

// rpc is the signature of a generated unary method.
type rpc[Req, Resp any] func(context.Context, Req, ...grpc.CallOption) (Resp, error)

// unary runs one unary call with the client's default timeout, retrying it on UNAVAILABLE
// when idempotent, and converts its error into an *Error.
func unary[Req, Resp any](ctx context.Context, c *Client, idempotent bool, fn rpc[Req, Resp], req Req) (Resp, error) {
	var zero Resp
	if _, ok := ctx.Deadline(); !ok && c.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	attempts := 1
	if idempotent {
		attempts = max(1, c.cfg.retry.MaxAttempts)
	}
	for n := 0; ; n++ {
		var header, trailer metadata.MD
		resp, err := fn(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer))
		if err == nil {
			return resp, nil
		}
		e := c.callError(ctx, err, len(header) > 0 || len(trailer) > 0)
		if n+1 >= attempts || CodeOf(e) != CodeUnavailable {
			return zero, e
		}
		if !c.sleep(ctx, n, e) {
			return zero, e
		}
	}
}

// sleep waits before retry n (from 0). It returns false, at once, when the context would end
// before the wait does.
func (c *Client) sleep(ctx context.Context, n int, err error) bool {
	return sleepFor(ctx, c.cfg.retry, n, err)
}

// sleepFor waits before retry n (from 0) of policy p, and at least the delay err asks for. It
// returns false, at once, when the context would end before the wait does.
func sleepFor(ctx context.Context, p RetryPolicy, n int, err error) bool {
	wait := backoff(p, n)
	if e, ok := err.(*Error); ok && e.RetryAfter > wait {
		wait = e.RetryAfter
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff returns a random wait in [0, min(MaxBackoff, InitialBackoff·2ⁿ)).
func backoff(p RetryPolicy, n int) time.Duration {
	limit := p.InitialBackoff
	for i := 0; i < n && (p.MaxBackoff <= 0 || limit < p.MaxBackoff); i++ {
		limit *= 2
	}
	if p.MaxBackoff > 0 && limit > p.MaxBackoff {
		limit = p.MaxBackoff
	}
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}
