package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// listen takes a socket from systemd (LISTEN_FDS) or creates one,
// replacing a stale socket file but never any other kind of file. It
// returns the path clients dial, which the watchdog dials too.
func (m *Main) listen() (net.Listener, string, error) {
	if lns, err := activation.Listeners(); err == nil && len(lns) > 0 {
		if len(lns) != 1 || lns[0] == nil {
			return nil, "", fmt.Errorf("socket activation passed %d sockets; storaged takes exactly one stream socket", len(lns))
		}
		m.log.Info("using the socket passed by systemd")
		return lns[0], lns[0].Addr().String(), nil
	}
	path := m.cfg.Socket
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, "", fmt.Errorf("STORAGED_SOCKET: %s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, "", fmt.Errorf("STORAGED_SOCKET: another daemon is serving on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, "", fmt.Errorf("STORAGED_SOCKET: removing stale socket %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // G301: the socket's directory must be searchable by the clients that the socket's own mode and group admit
		return nil, "", fmt.Errorf("STORAGED_SOCKET: %w", err)
	}
	ln, err := bindSocket(path, m.cfg.SocketMode, m.cfg.SocketGroup)
	if err != nil {
		return nil, "", err
	}
	m.ownsSocket = true
	return ln, path, nil
}

// umaskMu serialises our changes of the process-wide umask.
var umaskMu sync.Mutex

// afterBind runs between bind(2) and the chmod; tests look at the file
// there.
var afterBind = func(path string) {}

// bindSocket creates a listening Unix socket at path that is never, not
// for a moment, more open than mode. bind(2) creates the file under the
// process umask, and a chmod after it used to leave a window in which
// anyone the umask let through could connect (and keep the connection).
// So the socket is bound under umask 0777, which leaves it no permission
// at all, given its group, and only then opened up to mode. The umask is
// the process's: a file another goroutine created in that instant would
// come out more closed, never more open. (Binding elsewhere and renaming
// into place would leave the kernel's name for the socket, which ss and
// lsof show, pointing at the old path.)
func bindSocket(path string, mode os.FileMode, gid int) (*net.UnixListener, error) {
	umaskMu.Lock()
	old := syscall.Umask(0o777)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	umaskMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("STORAGED_SOCKET: %w", err)
	}
	// Close removes the file itself, after draining.
	ln.SetUnlinkOnClose(false)
	afterBind(path)
	fail := func(env string, err error) (*net.UnixListener, error) {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			return fail("STORAGED_SOCKET_GROUP", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fail("STORAGED_SOCKET_MODE", err)
	}
	return ln, nil
}

// retryListener sits out accept errors that pass, instead of letting
// them end fasthttp's Serve loop (which retries only timeouts) and with
// it every future connection. Running out of file descriptors (EMFILE,
// ENFILE) or kernel memory lasts as long as the connections holding
// them; the read and idle timeouts and the connection cap bound that.
type retryListener struct {
	net.Listener
	log *slog.Logger
}

func (l *retryListener) Accept() (net.Conn, error) {
	var (
		delay    time.Duration
		failures int
		since    time.Time
	)
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if failures > 0 {
				l.log.Warn("accepting again", "failures", failures, "after", time.Since(since).Round(time.Millisecond))
			}
			return c, nil
		}
		if !temporaryAcceptError(err) {
			return nil, err
		}
		if failures == 0 {
			// Once per episode: under EMFILE this repeats every second.
			since = time.Now()
			l.log.Warn("accept failed; retrying until it works (raise LimitNOFILE or lower STORAGED_MAX_CONNECTIONS if this is descriptors)", "err", err)
		}
		failures++
		// net/http's schedule: 5 ms, doubling, at most 1 s.
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		time.Sleep(delay)
	}
}

// temporaryAcceptError reports errors after which accept can work again
// by itself: descriptors or memory freed, an aborted handshake.
func temporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
