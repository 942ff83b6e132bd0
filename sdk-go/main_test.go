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

func startServer() (stop func(), err error) {
	bin := os.Getenv("ENGRAM_SERVER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../.venv/bin/engram-server")
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%v (build it with 'make setup' at the repository root, or set ENGRAM_SERVER_BIN)", err)
	}
	dir, err := os.MkdirTemp("", "engram-go-test-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rootKey = "engram-go-test-" + randomHex(16)
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve",
		"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--grpc-port", "0",
		"--data-dir", filepath.Join(dir, "data"), "--api-key", rootKey)
	cmd.Env = append(os.Environ(), "ENGRAM_ENCRYPTION_KEY="+randomHex(32))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server dies with the test binary, even when a timeout kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if os.Getenv("ENGRAM_KEEP_SERVER_LOG") == "" {
			os.RemoveAll(dir)
		} else {
			fmt.Fprintln(os.Stderr, "server log:", logPath)
		}
	}
	fail := func(err error) (func(), error) {
		stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%v; server log:\n%s", err, log)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return fail(fmt.Errorf("exited before serving: %v", err))
		default:
		}
		if res, err := http.Get("http://" + addr + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("no healthy answer from %s within 60 s", addr))
		}
		time.Sleep(200 * time.Millisecond)
	}
	serverAddr = addr
	// The README quick start (Example) reads the server from the environment.
	os.Setenv("ENGRAM_URL", "http://"+addr)
	os.Setenv("ENGRAM_API_KEY", rootKey)
	return stop, nil
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
