package engram

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// blockedPort returns a port of 127.0.0.1 whose listener never accepts and whose accept queue is
// full (backlog 0): the kernel drops further SYNs, so a connection hangs until it times out.
func blockedPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	for range 3 { // fill the queue
		c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(c) })
		_ = syscall.Connect(c, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	}
	return port
}

func TestUnitConnectTimeout(t *testing.T) {
	port := strconv.Itoa(blockedPort(t))
	c, err := NewClient(context.Background(), "127.0.0.1:"+port, WithTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Health(context.Background())
	want := "cannot connect to http://127.0.0.1:" + port + " (connection timed out): " + wantHint
	if CodeOf(err) != CodeUnavailable || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("Health = %v; want UNAVAILABLE %q", err, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := NewClient(ctx, "127.0.0.1:"+port); CodeOf(err) != CodeUnavailable || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("NewClient with a deadline: %v; want %q", err, want)
	}
}
