package testutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/storaged once per test process and returns its path,
// or returns STORAGED_TEST_BIN when set: make test-go builds bin/storaged
// first and names it there, so that the test run does not build the
// daemon a second time beside the race-instrumented packages.
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("STORAGED_TEST_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "storaged-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "storaged")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/storaged")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Daemon is a storaged process started for a test.
type Daemon struct {
	Socket string
	Cmd    *exec.Cmd
	Client *http.Client
	// Log is what the daemon wrote on stderr so far (its JSON log lines).
	Log    *LogBuffer
	exited chan error
}

// Logs is what the daemon wrote on stderr so far.
func (d *Daemon) Logs() string { return d.Log.String() }

// LogBuffer collects what a daemon writes, for a test to read while the
// daemon runs.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartDaemonLogged is StartDaemon; every daemon keeps its log in Log.
func StartDaemonLogged(t testing.TB, env ...string) *Daemon {
	t.Helper()
	return StartDaemon(t, env...)
}

// StartDaemon runs the storaged binary with env (KEY=VALUE) on a fresh
// socket and waits until it answers /healthz. It is killed at cleanup.
func StartDaemon(t testing.TB, env ...string) *Daemon {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "storaged.sock")
	return StartDaemonOn(t, sock, env...)
}

// StartDaemonOn is StartDaemon on a given socket path.
func StartDaemonOn(t testing.TB, sock string, env ...string) *Daemon {
	t.Helper()
	return StartDaemonShell(t, sock, "", env...)
}

// StartDaemonShell is StartDaemonOn with shell commands run first in
// /bin/sh, which then execs the daemon (same pid): "ulimit -n 64" or
// "umask 000" set what the daemon inherits.
func StartDaemonShell(t testing.TB, sock, shell string, env ...string) *Daemon {
	t.Helper()
	cmd := exec.Command(Binary(t))
	if shell != "" {
		cmd = exec.Command("/bin/sh", "-c", shell+` && exec "$0" serve`, Binary(t))
	}
	cmd.Env = append(os.Environ(), append([]string{"STORAGED_SOCKET=" + sock, "STORAGED_LOG_LEVEL=warn"}, env...)...)
	cmd.Stdout = nil // the "serving on" line; readiness is checked on the socket
	d := &Daemon{Socket: sock, Cmd: cmd, Log: &LogBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = io.MultiWriter(os.Stderr, d.Log)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- cmd.Wait() }()
	d.Client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.exited //nolint:errcheck // killed: its exit status says so and nothing more
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := d.Client.Get("http://storaged/healthz")
		if err == nil {
			res.Body.Close()
			return d
		}
		select {
		case err := <-d.exited:
			t.Fatalf("storaged exited before serving: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("storaged did not answer on %s: %v", sock, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Wait waits for the process to exit and returns its error.
func (d *Daemon) Wait(timeout time.Duration) error {
	select {
	case err := <-d.exited:
		d.exited <- err // keep it for cleanup
		return err
	case <-time.After(timeout):
		return fmt.Errorf("storaged still running after %v", timeout)
	}
}
