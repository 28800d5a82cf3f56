package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/testutil"
)

// rawGet sends one HTTP/1.1 request on c and reads the answer's status.
func rawGet(c net.Conn, path string) (int, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: storaged\r\n\r\n", path); err != nil {
		return 0, err
	}
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, err
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, err
}

// answersOnNewConnection polls until a fresh connection gets 200 from
// /healthz, or fails the test after a generous deadline.
func answersOnNewConnection(t *testing.T, sock, what string) {
	t.Helper()
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err == nil {
			var st int
			if err = c.SetDeadline(time.Now().Add(5 * time.Second)); err == nil {
				st, err = rawGet(c, "/healthz")
			}
			c.Close()
			if err == nil && st == 200 {
				return
			}
			if err == nil {
				err = fmt.Errorf("status %d", st)
			}
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: the daemon does not answer on a new connection: %v", what, last)
}

func openFDs(t *testing.T, pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestReliabilityEMFILERecovers: with a low file-descriptor limit, idle connections
// use up the daemon's descriptors and accept fails with EMFILE; once they
// close, the daemon accepts and answers again, on every backend (their
// pools need descriptors too). It used to stop accepting for good.
func TestReliabilityEMFILERecovers(t *testing.T) {
	limit := 64
	if reliability() {
		limit = 4096
	}
	dir := t.TempDir()
	backends := []durable{{"memory", nil}}
	backends = append(backends, durableBackends(t)...)
	backends = append(backends, durable{"redis", []string{"JOBQUEUE_BACKEND=redis", "REDIS_URL=" + testutil.RedisURL(), "STORAGED_REDIS_PREFIX=" + testutil.RedisPrefix(t)}})
	for i, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			sock := filepath.Join(dir, fmt.Sprintf("emfile%d.sock", i))
			// The cap is set far above the limit so that descriptors, not
			// the cap, run out.
			env := append([]string{"STORAGED_MAX_CONNECTIONS=100000"}, b.env...)
			d := testutil.StartDaemonShell(t, sock, fmt.Sprintf("ulimit -n %d", limit), env...)
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for len(conns) < limit+50 {
				c, err := net.Dial("unix", sock)
				if err != nil {
					t.Fatalf("dial %d: %v", len(conns), err)
				}
				conns = append(conns, c)
			}
			waitFor(t, "the daemon to run out of descriptors", func() bool { return openFDs(t, d.Cmd.Process.Pid) >= limit })
			waitFor(t, "the daemon to log the accept failure", func() bool {
				return strings.Contains(d.Logs(), "too many open files")
			})
			released := time.Now()
			for _, c := range conns {
				c.Close()
			}
			conns = nil
			answersOnNewConnection(t, sock, "after the descriptors came back")
			recovered := time.Since(released)
			st, body, err := call(d.Client, "POST", "/v1/repos/emfile", `{"n":1}`)
			if err != nil || st != 201 {
				t.Fatalf("create after recovery: %d %s %v", st, body, err)
			}
			st, body, err = call(d.Client, "POST", "/v1/queues/emfile/jobs", `{"data":{"n":1}}`)
			if err != nil || st != 201 {
				t.Fatalf("enqueue after recovery: %d %s %v", st, body, err)
			}
			st, body, err = call(d.Client, "POST", "/v1/queues/emfile/dequeue", `{}`)
			if err != nil || st != 200 {
				t.Fatalf("dequeue after recovery: %d %s %v", st, body, err)
			}
			t.Logf("%s: %d descriptors exhausted by %d idle connections; answering again %v after they closed", b.name, limit, limit+50, recovered.Round(time.Millisecond))
		})
	}
}

// TestAcceptRetriesTemporaryErrors: the listener wrapper sits out errors
// that pass (descriptors, buffers) and hands on the others.
func TestAcceptRetriesTemporaryErrors(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	enfile := &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.ENFILE)}
	permanent := errors.New("listener broke")
	cases := []struct {
		name    string
		errs    []error
		wantErr error
	}{
		{"EMFILE then a connection", []error{emfile, emfile, nil}, nil},
		{"ENFILE then a connection", []error{enfile, nil}, nil},
		{"a permanent error is returned", []error{emfile, permanent}, permanent},
		{"a closed listener is returned", []error{net.ErrClosed}, net.ErrClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs syncBuffer
			ln := &retryListener{Listener: &scriptedListener{errs: c.errs}, log: testLogger(&logs)}
			conn, err := ln.Accept()
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil || conn == nil {
				t.Fatalf("accept: %v", err)
			}
			conn.Close()
			if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), "accepting again") {
				t.Fatalf("the failure and the recovery are not both logged:\n%s", logs.String())
			}
		})
	}
}

// scriptedListener returns errs in turn (nil: a connection).
type scriptedListener struct {
	net.Listener
	errs []error
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	err := l.errs[0]
	l.errs = l.errs[1:]
	if err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

// readUntilClosed reads c until the daemon closes it; it fails the test
// if that does not happen within a generous deadline.
func readUntilClosed(t *testing.T, c net.Conn, what string) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the daemon kept the connection open (got %q)", what, b)
	}
	return string(b)
}

// TestReliabilityHalfSentRequestsAreClosed: a request that never finishes (headers,
// body, a bare-LF request line, or nothing at all) is answered or closed
// after STORAGED_READ_TIMEOUT instead of holding a connection forever;
// long polls and idle keep-alive connections are not cut by it.
func TestReliabilityHalfSentRequestsAreClosed(t *testing.T) {
	d := testutil.StartDaemon(t, "STORAGED_READ_TIMEOUT=1s", "STORAGED_IDLE_TIMEOUT=10m")
	cases := []struct{ name, sent string }{
		{"nothing", ""},
		{"half a header", "GET /healthz HTTP/1.1\r\nHost: sto"},
		{"header without its blank line", "GET /healthz HTTP/1.1\r\nHost: storaged\r\n"},
		{"half a body", "POST /v1/repos/c HTTP/1.1\r\nHost: storaged\r\nContent-Length: 100\r\n\r\n{\"a\":"},
		{"bare LF line ends", "GET /healthz HTTP/1.1\nHost: storaged\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("unix", d.Socket)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, c.sent); err != nil {
				t.Fatal(err)
			}
			got := readUntilClosed(t, conn, c.name)
			if got != "" && !strings.HasPrefix(got, "HTTP/1.1 4") {
				t.Fatalf("answered %q", got)
			}
		})
	}
	t.Run("a long poll outlasts the read timeout", func(t *testing.T) {
		st, _, err := call(d.Client, "POST", "/v1/queues/halfsent/dequeue", `{"waitMs":2500}`)
		if err != nil || st != 204 {
			t.Fatalf("long poll: %d %v", st, err)
		}
	})
	t.Run("an idle keep-alive connection outlasts the read timeout", func(t *testing.T) {
		conn, err := net.Dial("unix", d.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if st, err := rawGet(conn, "/healthz"); err != nil || st != 200 {
			t.Fatalf("first call: %d %v", st, err)
		}
		time.Sleep(2500 * time.Millisecond) // idle past the 1 s read timeout
		if st, err := rawGet(conn, "/healthz"); err != nil || st != 200 {
			t.Fatalf("second call on the idle connection: %d %v", st, err)
		}
	})
}

// TestIdleConnectionsAreClosed: a keep-alive connection idle longer than
// STORAGED_IDLE_TIMEOUT is closed by the daemon.
func TestIdleConnectionsAreClosed(t *testing.T) {
	d := testutil.StartDaemon(t, "STORAGED_IDLE_TIMEOUT=1s")
	conn, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if st, err := rawGet(conn, "/healthz"); err != nil || st != 200 {
		t.Fatalf("call: %d %v", st, err)
	}
	if got := readUntilClosed(t, conn, "idle connection"); got != "" {
		t.Fatalf("idle connection got %q", got)
	}
}

// TestReliabilityConnectionCap: past STORAGED_MAX_CONNECTIONS a new connection is
// answered 503 and closed while the ones being served keep working; once
// one closes, a new connection is served again.
func TestReliabilityConnectionCap(t *testing.T) {
	const capacity = 4
	d := testutil.StartDaemon(t, fmt.Sprintf("STORAGED_MAX_CONNECTIONS=%d", capacity))
	d.Client.CloseIdleConnections()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// The start-up probe's connection may still count for a moment: a
	// connection refused for that reason is simply dialled again.
	deadline := time.Now().Add(30 * time.Second)
	for len(held) < capacity {
		if time.Now().After(deadline) {
			t.Fatalf("only %d connections served under a cap of %d", len(held), capacity)
		}
		c, err := net.Dial("unix", d.Socket)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := rawGet(c, "/healthz"); err == nil && st == 200 {
			held = append(held, c)
			continue
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	over, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rawGet(over, "/healthz")
	over.Close()
	if err == nil && st != 503 {
		t.Fatalf("connection past the cap answered %d", st)
	}
	for i, c := range held {
		if st, err := rawGet(c, "/healthz"); err != nil || st != 200 {
			t.Fatalf("served connection %d broke at the cap: %d %v", i, st, err)
		}
	}
	held[0].Close()
	held = held[1:]
	answersOnNewConnection(t, d.Socket, "after a connection under the cap closed")
}

// TestPathsAreMatchedAsSent: the daemon routes on the path as sent and
// never resolves dot segments, so /v1/repos/../../healthz is not
// /healthz (and the 404 says which path it was), while "..", an
// ordinary id, reaches its record.
func TestPathsAreMatchedAsSent(t *testing.T) {
	d := testutil.StartDaemon(t)
	conn, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	send := func(method, path, body string) (int, string) {
		t.Helper()
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: storaged\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
		if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(b)
	}
	for _, p := range []string{"/v1/repos/../../healthz", "/v1/repos/./../healthz", "/v1//repos/c/x", "/v1/repos/c/../../../readyz"} {
		st, body := send("GET", p, "")
		if st != 404 || !strings.Contains(body, `"not_found"`) || !strings.Contains(body, p) {
			t.Fatalf("GET %s: %d %s; want a 404 naming the path as sent", p, st, body)
		}
	}
	if st, body := send("POST", "/v1/repos/dots", `{"id":".."}`); st != 201 {
		t.Fatalf("create id '..': %d %s", st, body)
	}
	if st, body := send("GET", "/v1/repos/dots/..", ""); st != 200 || !strings.Contains(body, `"id":".."`) {
		t.Fatalf("GET /v1/repos/dots/..: %d %s", st, body)
	}
}

func testLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
