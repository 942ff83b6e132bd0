package engram

// Unit tests of the server address (its forms and default) and of the error of a server that
// cannot be reached. No engram-server: the failures are made against ports nothing listens on.

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

const wantHint = "is the Engram server running? Start it with `make serve` or `engram-server serve`"

// closedPort returns a port of 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestUnitAddressForms(t *testing.T) {
	for _, in := range []string{"h:3300", "h:3300/", "http://h:3300", "http://h:3300/", "HTTP://h:3300", " http://h:3300 ", "grpc://h:3300", "grpc://h:3300/", "h"} {
		ep, err := parseAddr(in)
		if err != nil || ep != (endpoint{target: "h:3300", display: "http://h:3300"}) {
			t.Errorf("parseAddr(%q) = %+v, %v; want h:3300 plaintext", in, ep, err)
		}
	}
	for _, tc := range []struct{ in, target, display string }{
		{"https://h:3300/", "h:3300", "https://h:3300"},
		{"grpcs://h:3300", "h:3300", "https://h:3300"},
		{"https://engram.example.com", "engram.example.com:443", "https://engram.example.com:443"},
		{"https://[::1]", "[::1]:443", "https://[::1]:443"},
	} {
		ep, err := parseAddr(tc.in)
		if err != nil || !ep.tls || ep.target != tc.target || ep.display != tc.display {
			t.Errorf("parseAddr(%q) = %+v, %v; want TLS %s", tc.in, ep, err, tc.target)
		}
	}
	for _, in := range []string{"[::1]:3300", "http://[::1]:3300", "http://[::1]:3300/", "grpc://[::1]:3300", "[::1]"} {
		ep, err := parseAddr(in)
		if err != nil || ep != (endpoint{target: "[::1]:3300", display: "http://[::1]:3300"}) {
			t.Errorf("parseAddr(%q) = %+v, %v; want [::1]:3300", in, ep, err)
		}
	}
	for _, in := range []string{"dns:///engram.internal:3300", "unix:///run/engram.sock", "unix:run/engram.sock", "passthrough:///bufnet"} {
		ep, err := parseAddr(in)
		if err != nil || ep != (endpoint{target: in, display: in}) {
			t.Errorf("parseAddr(%q) = %+v, %v; want the gRPC target as given", in, ep, err)
		}
	}
	for _, in := range []string{"ftp://h:1", "http://h:port", "http://", "http://h:99999", "http://h:3300/v1", "::1"} {
		if ep, err := parseAddr(in); CodeOf(err) != CodeInvalidArgument {
			t.Errorf("parseAddr(%q) = %+v, %v; want INVALID_ARGUMENT", in, ep, err)
		}
	}
	if _, err := NewClient(context.Background(), "ftp://h:1"); !IsInvalidArgument(err) {
		t.Errorf("NewClient(ftp://): %v", err)
	}
}

func TestUnitDefaultAddress(t *testing.T) {
	t.Setenv("ENGRAM_URL", "") // no environment variable is needed (nor read)
	for _, in := range []string{"", "  "} {
		ep, err := parseAddr(in)
		if err != nil || ep != (endpoint{target: "127.0.0.1:3300", display: "http://127.0.0.1:3300"}) {
			t.Errorf("parseAddr(%q) = %+v, %v; want the default", in, ep, err)
		}
	}
	c, err := NewClient(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Address() != DefaultAddress || DefaultAddress != "http://127.0.0.1:3300" || c.Conn().Target() != "127.0.0.1:3300" {
		t.Errorf("default address %q, target %q", c.Address(), c.Conn().Target())
	}
}

func TestUnitClosedPort(t *testing.T) {
	port := strconv.Itoa(closedPort(t))
	want := "cannot connect to http://127.0.0.1:" + port + " (connection refused): " + wantHint
	for _, addr := range []string{"127.0.0.1:" + port, "http://127.0.0.1:" + port + "/", "grpc://127.0.0.1:" + port} {
		c, err := NewClient(context.Background(), addr, WithRetry(RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Health(context.Background())
		t.Logf("refused: %v", err)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeUnavailable || e.FromServer || e.Message != want || !IsUnavailable(err) {
			t.Errorf("%s: Health = %#v; want UNAVAILABLE %q", addr, err, want)
		}
		// Streams too.
		for _, err := range c.Export(context.Background(), "a", nil) {
			if CodeOf(err) != CodeUnavailable || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Export = %v", addr, err)
			}
			break
		}
		c.Close()
	}

	// NewClient waits for the connection when ctx has a deadline, and names the cause.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := NewClient(ctx, "127.0.0.1:"+port)
	if CodeOf(err) != CodeUnavailable || !strings.Contains(err.Error(), want) {
		t.Errorf("NewClient with a deadline: %v; want %q", err, want)
	}
}

func TestUnitClosedIPv6Port(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	c, err := NewClient(context.Background(), "[::1]:"+port, WithRetry(RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Health(context.Background())
	if want := "cannot connect to http://[::1]:" + port + " (connection refused): "; !strings.Contains(err.Error(), want) {
		t.Errorf("Health = %v; want %q", err, want)
	}
}

func TestUnitUnresolvableHost(t *testing.T) {
	c, err := NewClient(context.Background(), "engram-host.invalid:3300", WithRetry(RetryPolicy{MaxAttempts: 1}), WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Health(context.Background())
	if want := "engram: UNAVAILABLE: cannot connect to http://engram-host.invalid:3300 (DNS lookup failed): "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Health = %v; want %q", err, want)
	}
}

func TestUnitConnectCause(t *testing.T) {
	for msg, want := range map[string]string{
		`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`: "connection refused",
		"name resolver error: produced zero addresses":                                                                 "DNS lookup failed",
		`connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.1:3300: i/o timeout"`:               "connection timed out",
		`connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.1:3300: connect: no route to host"`: "host unreachable",
		"the server is draining": "",
		"transport is closing":   "",
	} {
		if got := connectCause(msg); got != want {
			t.Errorf("connectCause(%q) = %q; want %q", msg, got, want)
		}
	}
}
