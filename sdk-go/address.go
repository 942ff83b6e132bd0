package engram

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// DefaultAddress is the server address of a client made with an empty address: a local server
// on its default port. The same in every Engram SDK.
const DefaultAddress = "http://127.0.0.1:3300"

// DefaultPort is the port of an address that names none (443 for https:// and grpcs://).
const DefaultPort = 3300

// startHint is the advice every Engram SDK gives when it cannot connect.
const startHint = "is the Engram server running? Start it with `make serve` or `engram-server serve`"

// endpoint is a parsed server address.
type endpoint struct {
	target  string // the gRPC target: host:port, or a target with a resolver scheme (dns:///, unix://)
	tls     bool   // the scheme asks for TLS (https://, grpcs://)
	display string // the address as errors name it: http(s)://host:port, or the gRPC target as given
}

// parseAddr normalises a server address. Accepted, with or without a trailing slash:
// "host:port" (plaintext), "http://host:port", "grpc://host:port" (the same),
// "https://host:port", "grpcs://host:port" (TLS); IPv6 hosts in brackets ("[::1]:3300"). Without
// a port: 3300, or 443 for TLS. "" is DefaultAddress. Targets of a gRPC resolver
// ("dns:///engram.internal:3300", "unix:///run/engram.sock") are used as they are.
func parseAddr(addr string) (endpoint, error) {
	raw := strings.TrimSpace(addr)
	if raw == "" {
		raw = DefaultAddress
	}
	scheme, rest, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		// "unix:/path", "unix-abstract:name", "dns:host": opaque targets of a gRPC resolver.
		if name, _, ok := strings.Cut(raw, ":"); ok && name != "" && resolver.Get(strings.ToLower(name)) != nil {
			return endpoint{target: raw, display: raw}, nil
		}
		scheme, rest = "http", raw
	}
	var useTLS bool
	switch strings.ToLower(scheme) {
	case "http", "grpc":
	case "https", "grpcs":
		useTLS = true
	default:
		if resolver.Get(strings.ToLower(scheme)) != nil {
			return endpoint{target: raw, display: raw}, nil
		}
		return endpoint{}, NewError(CodeInvalidArgument, "unsupported scheme "+strconv.Quote(scheme+"://")+" in server address "+strconv.Quote(raw)+": use http, https, grpc or grpcs, or a gRPC target such as dns:/// or unix://")
	}
	hostport := strings.TrimRight(rest, "/")
	if strings.ContainsAny(hostport, "/?#") {
		return endpoint{}, NewError(CodeInvalidArgument, "server address "+strconv.Quote(raw)+" has a path: gRPC needs host:port only")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: "host" or "[::1]".
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), strconv.Itoa(DefaultPort)
		if useTLS {
			port = "443"
		}
		if strings.Contains(host, ":") && !strings.HasPrefix(hostport, "[") {
			return endpoint{}, NewError(CodeInvalidArgument, "server address "+strconv.Quote(raw)+": put an IPv6 host in brackets, e.g. [::1]:3300")
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return endpoint{}, NewError(CodeInvalidArgument, "invalid port in server address "+strconv.Quote(raw))
	}
	if host == "" {
		return endpoint{}, NewError(CodeInvalidArgument, "no host in server address "+strconv.Quote(raw))
	}
	target := net.JoinHostPort(host, port)
	display := "http://" + target
	if useTLS {
		display = "https://" + target
	}
	return endpoint{target: target, tls: useTLS, display: display}, nil
}

// cannotConnect is the error of a connection that could not be opened, the same text in every
// Engram SDK: "cannot connect to http://127.0.0.1:3300 (connection refused): is the Engram
// server running? ...". UNAVAILABLE, so idempotent calls retry it.
func cannotConnect(address, cause string, err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "cannot connect to " + address + " (" + cause + "): " + startHint, cause: err}
}

// connectCause returns the cause of a failed connection from the message of an UNAVAILABLE
// status that grpc-go made up, or "" when the message is not about opening a connection.
func connectCause(message string) string {
	m := strings.ToLower(message)
	if !strings.Contains(m, "error while dialing") && !strings.Contains(m, "name resolver error") &&
		!strings.Contains(m, "produced zero addresses") && !strings.Contains(m, "connection error") {
		return ""
	}
	switch {
	case strings.Contains(m, "connection refused"):
		return "connection refused"
	case strings.Contains(m, "name resolver error"), strings.Contains(m, "produced zero addresses"),
		strings.Contains(m, "no such host"), strings.Contains(m, "lookup "):
		return "DNS lookup failed"
	case strings.Contains(m, "network is unreachable"):
		return "network unreachable"
	case strings.Contains(m, "no route to host"), strings.Contains(m, "host is unreachable"):
		return "host unreachable"
	case strings.Contains(m, "i/o timeout"), strings.Contains(m, "timed out"), strings.Contains(m, "deadline exceeded"):
		return "connection timed out"
	}
	// "connection error: desc = "transport: Error while dialing: <why>"": keep <why>.
	if i := strings.LastIndex(message, ": "); i >= 0 {
		return strings.Trim(message[i+2:], "\" ")
	}
	return message
}

// callError converts an error of a call into an *Error (see toError); a connection that could
// not be opened, or did not open before the deadline, becomes UNAVAILABLE naming the address.
func (c *Client) callError(ctx context.Context, err error, fromServer bool) error {
	out := toError(ctx, err, fromServer)
	var e *Error
	if fromServer || !errors.As(out, &e) || e.FromServer {
		return out
	}
	msg := err.Error()
	if s, ok := status.FromError(err); ok {
		msg = s.Message()
	}
	switch e.Code {
	case CodeUnavailable:
		if cause := connectCause(msg); cause != "" {
			return cannotConnect(c.addr.display, cause, err)
		}
	case CodeDeadlineExceeded:
		// grpc-go: the deadline passed while the connection was still being opened.
		if strings.Contains(msg, "while waiting for connections to become ready") {
			return cannotConnect(c.addr.display, "connection timed out", err)
		}
	}
	return out
}
