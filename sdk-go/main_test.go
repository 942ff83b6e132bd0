package engram_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The server that TestMain starts for the integration tests and the examples.
var (
	// serverAddr is the "host:port" of the server; empty when ENGRAM_SKIP_INTEGRATION is set.
	serverAddr string
	// rootKey is the server's root (admin) API key.
	rootKey string
	// current is the running test (set by needServer).
	current *testing.T
)

// TestMain starts a real engram-server per docs/design/contracts.md (a fresh data directory,
// a random encryption key, a free port, --grpc-port 0, a root API key), runs the tests and
// examples against it, and stops it with SIGTERM. The binary is $ENGRAM_SERVER_BIN or
// ../.venv/bin/engram-server. ENGRAM_SKIP_INTEGRATION=1 runs without a server (the tests that
// need one are skipped; run the unit tests alone with -run '^TestUnit').
func TestMain(m *testing.M) {
	// The server gets SIGTERM when the thread that started it exits (Pdeathsig): keep that
	// thread for the whole run.
	runtime.LockOSThread()
	if os.Getenv("ENGRAM_SKIP_INTEGRATION") != "" {
		os.Exit(m.Run())
	}
	stop, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "engram-server:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// testServer is one engram-server process of the tests, over a data directory that outlives
// its restarts.
type testServer struct {
	dir     string // the temporary directory: data/ and server.log
	port    int
	key     string // the root API key
	encKey  string // ENGRAM_ENCRYPTION_KEY
	args    []string
	cmd     *exec.Cmd
	exited  chan error
	logFile *os.File
}

// newTestServer prepares a server on a free port with a fresh data directory, a random
// encryption key and a random root key; extra are more `serve` arguments. Start it with start.
func newTestServer(extra ...string) (*testServer, error) {
	dir, err := os.MkdirTemp("", "engram-go-test-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &testServer{
		dir: dir, port: port, key: "engram-go-test-" + randomHex(16), encKey: randomHex(32), args: extra,
	}, nil
}

// addr is the server's "host:port".
func (s *testServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *testServer) logPath() string { return filepath.Join(s.dir, "server.log") }

// start starts the server (again, on the same port and data directory) and waits until
// GET /health answers 200, at most 60 s.
func (s *testServer) start() error {
	bin := os.Getenv("ENGRAM_SERVER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../.venv/bin/engram-server")
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%v (build it with 'make setup' at the repository root, or set ENGRAM_SERVER_BIN)", err)
	}
	logFile, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := append([]string{"serve",
		"--host", "127.0.0.1", "--port", strconv.Itoa(s.port), "--grpc-port", "0",
		"--data-dir", filepath.Join(s.dir, "data"), "--api-key", s.key}, s.args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "ENGRAM_ENCRYPTION_KEY="+s.encKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server dies with the test binary, even when a timeout kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	s.cmd, s.logFile, s.exited = cmd, logFile, make(chan error, 1)
	go func() { s.exited <- cmd.Wait() }()
	fail := func(err error) error {
		s.stop(syscall.SIGKILL)
		log, _ := os.ReadFile(s.logPath())
		return fmt.Errorf("%v; server log:\n%s", err, log)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-s.exited:
			s.exited <- err
			return fail(fmt.Errorf("exited before serving: %v", err))
		default:
		}
		if res, err := http.Get("http://" + s.addr() + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("no healthy answer from %s within 60 s", s.addr()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends sig (SIGTERM: a graceful stop; SIGKILL: a crash) and waits for the server to
// exit, killing it after 10 s. The data directory stays: start can run it again.
func (s *testServer) stop(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.logFile.Close()
	s.cmd = nil
}

// close stops the server and removes its directory (unless ENGRAM_KEEP_SERVER_LOG is set).
func (s *testServer) close() {
	s.stop(syscall.SIGTERM)
	if os.Getenv("ENGRAM_KEEP_SERVER_LOG") == "" {
		os.RemoveAll(s.dir)
	} else {
		fmt.Fprintln(os.Stderr, "server log:", s.logPath())
	}
}

func startServer() (stop func(), err error) {
	srv, err := newTestServer()
	if err != nil {
		return nil, err
	}
	if err := srv.start(); err != nil {
		os.RemoveAll(srv.dir)
		return nil, err
	}
	serverAddr, rootKey = srv.addr(), srv.key
	// The README quick start (Example) reads the server from the environment.
	os.Setenv("ENGRAM_URL", "http://"+serverAddr)
	os.Setenv("ENGRAM_API_KEY", rootKey)
	return srv.close, nil
}

// needServer skips t when no server runs (ENGRAM_SKIP_INTEGRATION).
// It also records t as the running test, for must.
func needServer(t *testing.T) {
	t.Helper()
	current = t
	if serverAddr == "" {
		t.Skip("no engram-server (ENGRAM_SKIP_INTEGRATION is set)")
	}
}
