package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/testutil"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on the shipped units
// (with ExecStart pointing at the freshly built binary).
func TestSystemdUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze not found: install systemd (apt-get install systemd; .ci/run does)")
	}
	dir := t.TempDir()
	bin := testutil.Binary(t)
	for _, name := range []string{"storaged.service", "storaged.socket"} {
		b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/storaged"), []byte(bin))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("systemd-analyze", "verify", filepath.Join(dir, "storaged.service"), filepath.Join(dir, "storaged.socket"))
	out, err := cmd.CombinedOutput()
	var problems []string
	for _, line := range strings.Split(string(out), "\n") {
		// Lines about other units (the host's own) are not ours to fix.
		if strings.Contains(line, "storaged.") {
			problems = append(problems, line)
		}
	}
	if err != nil || len(problems) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, strings.Join(problems, "\n"))
	}
}

// notifySocket listens for sd_notify datagrams, as systemd does.
func notifySocket(t *testing.T) (path string, msgs func() string) {
	path = filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var mu sync.Mutex
	var got strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got.Write(buf[:n])
			got.WriteByte('\n')
			mu.Unlock()
		}
	}()
	return path, func() string { mu.Lock(); defer mu.Unlock(); return got.String() }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// TestSocketActivationAndNotify hands the daemon a listening socket the
// way systemd does (fd 3, LISTEN_FDS, LISTEN_PID) and checks READY=1,
// WATCHDOG=1 and STOPPING=1 on NOTIFY_SOCKET. The socket file is
// systemd's, so the daemon leaves it in place.
func TestSocketActivationAndNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "activated.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	notify, msgs := notifySocket(t)
	// LISTEN_PID must be the daemon's own pid: a shell learns it and execs.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" serve`, testutil.Binary(t))
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "NOTIFY_SOCKET="+notify, "WATCHDOG_USEC=200000",
		"STORAGED_SOCKET=/nonexistent/ignored.sock", "STORAGED_LOG_LEVEL=warn")
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }() // it has exited by then, unless the test failed
	waitFor(t, "READY=1", func() bool { return strings.Contains(msgs(), "READY=1") })
	res, err := unixClient(sock).Get("http://storaged/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz over the activated socket: %v %v", res, err)
	}
	res.Body.Close()
	waitFor(t, "WATCHDOG=1", func() bool { return strings.Contains(msgs(), "WATCHDOG=1") })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	// The datagram was sent before the exit; our reader may not have it yet.
	waitFor(t, "STOPPING=1", func() bool { return strings.Contains(msgs(), "STOPPING=1") })
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the daemon removed systemd's socket: %v", err)
	}
}

// TestReliabilityPeerCredentials: only allowed uids may talk to the daemon; a second
// local user (nobody) reaching the socket file is cut off. Also checks
// the socket's group and mode.
func TestReliabilityPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as a second local user (CI runs as root)")
	}
	dir, err := os.MkdirTemp("", "storaged-peer-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "p.sock")
	d := testutil.StartDaemonOn(t, sock, "STORAGED_SOCKET_MODE=0666", "STORAGED_SOCKET_GROUP=65534", "STORAGED_ALLOWED_UIDS=0")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Gid != 65534 || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket gid %d mode %v", st.Gid, fi.Mode().Perm())
	}
	health, err := d.Client.Get("http://storaged/healthz")
	if err != nil || health.StatusCode != 200 {
		t.Fatalf("allowed uid refused: %v %v", health, err)
	}
	health.Body.Close()
	// nobody may open the file (mode 0666) but not talk to the daemon.
	// The probe is this test binary, copied where nobody may run it.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	probeBin := filepath.Join(dir, "probe")
	if err := os.WriteFile(probeBin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	probe := exec.Command(probeBin, "-test.run=^TestPeerProbe$", "-test.v")
	probe.Env = append(os.Environ(), "STORAGED_PEER_PROBE="+sock)
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := probe.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PROBE: refused") {
		t.Fatalf("a peer outside the allowlist was served: %v\n%s", err, out)
	}
}

// TestPeerProbe is run by TestReliabilityPeerCredentials as another user.
func TestPeerProbe(t *testing.T) {
	sock := os.Getenv("STORAGED_PEER_PROBE")
	if sock == "" {
		t.Skip("helper for TestReliabilityPeerCredentials")
	}
	res, err := unixClient(sock).Get("http://storaged/healthz")
	if err == nil {
		res.Body.Close()
		t.Fatalf("PROBE: served with %d", res.StatusCode)
	}
	t.Log("PROBE: refused:", err)
	os.Stdout.WriteString("PROBE: refused\n")
}

// TestTraceparentInLogs: a request's W3C traceparent appears in the
// daemon's log line for it.
func TestTraceparentInLogs(t *testing.T) {
	var logs syncBuffer
	sock := filepath.Join(t.TempDir(), "t.sock")
	cmd := exec.Command(testutil.Binary(t))
	cmd.Env = append(os.Environ(), "STORAGED_SOCKET="+sock, "STORAGED_LOG_LEVEL=debug")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }() // killed: its exit status says so and nothing more
	c := unixClient(sock)
	waitFor(t, "the daemon", func() bool {
		r, err := c.Get("http://storaged/healthz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest("GET", "http://storaged/v1/repos/plans/missing", nil)
	req.Header.Set("traceparent", tp)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	waitFor(t, "the request's log line", func() bool { return strings.Contains(logs.String(), tp) })
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, tp) && !(strings.Contains(line, `"route":"findById"`) && strings.Contains(line, `"status":404`)) {
			t.Fatalf("traceparent on the wrong line: %s", line)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestOTLPExport: with OTEL_EXPORTER_OTLP_ENDPOINT set, the daemon posts
// its spans to that endpoint (here a local stand-in collector).
func TestOTLPExport(t *testing.T) {
	got := make(chan string, 10)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path
		w.WriteHeader(200)
	}))
	defer collector.Close()
	d := testutil.StartDaemon(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+collector.URL, "OTEL_BSP_SCHEDULE_DELAY=50")
	res, err := d.Client.Get("http://storaged/v1/repos/plans/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	select {
	case p := <-got:
		if p != "/v1/traces" {
			t.Fatalf("exported to %s", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no spans reached the OTLP endpoint")
	}
}

// TestMakeInstall installs into a DESTDIR and finds the binary and units.
func TestMakeInstall(t *testing.T) {
	dest := t.TempDir()
	cmd := exec.Command("make", "-s", "install", "DESTDIR="+dest, "PREFIX=/usr")
	cmd.Dir = testutil.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/bin/storaged", "etc/systemd/system/storaged.service", "etc/systemd/system/storaged.socket", "etc/storaged/storaged.env.example"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %s", f)
		}
	}
}
