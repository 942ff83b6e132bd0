package engram

import (
	"crypto/tls"
	"time"

	"google.golang.org/grpc"
)

// Option configures a Client. Pass options to NewClient.
type Option func(*config)

// Default settings of a Client. They are the same in every Engram SDK.
const (
	// DefaultTimeout is the deadline of each unary call, retries included, when the call's
	// context has none.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxAttempts is how many times an idempotent call is tried in all (one try and two
	// retries) when it fails with UNAVAILABLE.
	DefaultMaxAttempts = 3
	// DefaultInitialBackoff is the upper bound of the random wait before the first retry.
	DefaultInitialBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the upper bound of the random wait before a retry.
	DefaultMaxBackoff = 2 * time.Second
)

// RetryPolicy says how idempotent calls are retried when they fail with UNAVAILABLE.
// The n-th retry (n from 0) waits a random time in [0, min(MaxBackoff, InitialBackoff·2ⁿ))
// (full jitter), and at least the delay the server asked for in google.rpc.RetryInfo.
type RetryPolicy struct {
	// MaxAttempts is how many times a call is tried in all; 1 (or less) disables retries.
	MaxAttempts int
	// InitialBackoff bounds the wait before the first retry.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait before any retry.
	MaxBackoff time.Duration
}

// DefaultRetryPolicy is the policy of a client made without WithRetry: 3 attempts, backoff
// from 100 ms up to 2 s.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:    DefaultMaxAttempts,
	InitialBackoff: DefaultInitialBackoff,
	MaxBackoff:     DefaultMaxBackoff,
}

type config struct {
	apiKey      string
	tls         *tls.Config
	tlsSet      bool // WithTLS or WithInsecure was given: it overrides the address's scheme
	timeout     time.Duration
	retry       RetryPolicy
	dialOptions []grpc.DialOption
	userAgent   string
}

// WithAPIKey sends key as "authorization: Bearer <key>" metadata on every call, including
// calls made through the generated clients (Client.MemoryService, ...).
// Default: no key (for a server started without --api-key).
func WithAPIKey(key string) Option {
	return func(c *config) { c.apiKey = key }
}

// WithTLS makes the client use TLS with cfg; a nil cfg uses the system's root certificates.
// Default: TLS when the address starts with "https://", plaintext HTTP/2 (h2c) otherwise.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.tls, c.tlsSet = cfg, true
	}
}

// WithInsecure makes the client use plaintext HTTP/2 (h2c), as engram-server serves it, even
// for an "https://" address. Default: plaintext unless the address starts with "https://".
func WithInsecure() Option {
	return func(c *config) { c.tls, c.tlsSet = nil, true }
}

// WithTimeout sets the deadline of each unary call, retries included, applied when the call's
// context has no deadline of its own; 0 disables it. Streams (Export, Import) never get it:
// bound them with their context. Default: DefaultTimeout (30 s).
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithRetry sets how idempotent calls are retried on UNAVAILABLE. Calls that could apply twice
// (Store without a client-chosen id, BatchStore unless every item has an id, Update, Link,
// Forget unless a dry run, CreateAPIKey, Import) are never retried.
// WithRetry(RetryPolicy{MaxAttempts: 1}) disables retries. Default: DefaultRetryPolicy
// (3 attempts, backoff from 100 ms to 2 s, full jitter).
func WithRetry(p RetryPolicy) Option {
	return func(c *config) { c.retry = p }
}

// WithDialOptions adds gRPC dial options (interceptors, keepalive, message size limits, a
// custom dialer, ...), applied after the client's own so that they can override them.
// Default: none.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, opts...) }
}

// WithUserAgent puts ua before the client's own user agent ("engram-go/<Version>").
// Default: "engram-go/<Version>" only.
func WithUserAgent(ua string) Option {
	return func(c *config) { c.userAgent = ua }
}
