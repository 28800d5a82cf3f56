package testutil

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/storaged once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
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
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
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
	Log    *LogBuffer // set by StartDaemonLogged
	exited chan error
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
	return startDaemon(t, sock, os.Stderr, env...)
}

// StartDaemonLogged is StartDaemon with the daemon's log (stderr) kept in
// Log as well as shown.
func StartDaemonLogged(t testing.TB, env ...string) *Daemon {
	t.Helper()
	log := &LogBuffer{}
	d := startDaemon(t, filepath.Join(t.TempDir(), "storaged.sock"), io.MultiWriter(os.Stderr, log), env...)
	d.Log = log
	return d
}

// LogBuffer collects what a daemon writes, for a test to read while the
// daemon runs.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func startDaemon(t testing.TB, sock string, stderr io.Writer, env ...string) *Daemon {
	t.Helper()
	cmd := exec.Command(Binary(t))
	cmd.Env = append(os.Environ(), append([]string{"STORAGED_SOCKET=" + sock, "STORAGED_LOG_LEVEL=warn"}, env...)...)
	cmd.Stdout = nil // the "serving on" line; readiness is checked on the socket
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Socket: sock, Cmd: cmd, exited: make(chan error, 1)}
	go func() { d.exited <- cmd.Wait() }()
	d.Client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.exited
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
