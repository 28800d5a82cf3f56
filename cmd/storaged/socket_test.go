package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/storaged/storaged/internal/testutil"
)

// TestSocketNeverWiderThanItsMode: even under umask 000, the socket file
// is at no moment more open than STORAGED_SOCKET_MODE: right after
// bind(2), before the daemon chmods it, it already grants nothing beyond
// that mode. It used to be bound under the process umask (0777 here) and
// chmod'ed afterwards, a window in which anyone could connect.
func TestSocketNeverWiderThanItsMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	var seen []os.FileMode
	afterBind = func(path string) {
		if fi, err := os.Lstat(path); err == nil {
			seen = append(seen, fi.Mode().Perm())
		}
	}
	defer func() { afterBind = func(string) {} }()
	cfg := testConfig(t) // STORAGED_SOCKET_MODE=0600
	cfg.SocketGroup = os.Getgid()
	m := NewMain(cfg)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(seen) != 1 || seen[0]&^0o600 != 0 {
		t.Fatalf("modes of the socket just after bind: %v; want none wider than 0600", seen)
	}
	if u := syscall.Umask(0); u != 0 {
		t.Fatalf("the daemon left the umask at %#o", u)
	}
	fi, err := os.Lstat(cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Gid != uint32(os.Getgid()) { //nolint:gosec // G115: a gid is a uint32
		t.Fatalf("socket %v gid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid)
	}
}

// TestSocketModeUnderUmask000: the real binary, started under umask 000,
// ends up with exactly STORAGED_SOCKET_MODE and leaves nothing else
// beside its socket.
func TestSocketModeUnderUmask000(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "m.sock")
	testutil.StartDaemonShell(t, sock, "umask 000", "STORAGED_SOCKET_MODE=0600")
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files beside the socket: %v", entries)
	}
}

// TestWatchdogProvesTheSocket: WATCHDOG=1 is sent only while a request
// through the socket path is answered. With that path taken by a
// listener that never answers (the daemon alive, its backends fine), the
// pings stop; with the real socket back, they resume.
func TestWatchdogProvesTheSocket(t *testing.T) {
	notify, msgs := notifySocket(t)
	sock := filepath.Join(t.TempDir(), "w.sock")
	d := testutil.StartDaemonOn(t, sock, "NOTIFY_SOCKET="+notify, "WATCHDOG_USEC=400000")
	pings := func() int { return strings.Count(msgs(), "WATCHDOG=1") }
	withheld := func() int { return strings.Count(d.Logs(), "withholding the watchdog ping") }
	waitFor(t, "a first WATCHDOG=1", func() bool { return pings() > 0 })

	if err := os.Rename(sock, sock+".away"); err != nil {
		t.Fatal(err)
	}
	deaf, err := net.Listen("unix", sock) // never accepts
	if err != nil {
		t.Fatal(err)
	}
	before, w := pings(), withheld()
	waitFor(t, "three withheld pings", func() bool { return withheld() >= w+3 })
	// One probe may have been answered by the real socket just before the
	// swap; none after it.
	if n := pings(); n > before+1 {
		t.Fatalf("%d WATCHDOG=1 sent while the socket did not answer", n-before)
	}
	if !strings.Contains(d.Logs(), "socket") {
		t.Fatalf("the log does not say the socket is not answering:\n%s", d.Logs())
	}

	deaf.Close()
	if err := os.Rename(sock+".away", sock); err != nil {
		t.Fatal(err)
	}
	n := pings()
	waitFor(t, "WATCHDOG=1 again", func() bool { return pings() > n })
}
