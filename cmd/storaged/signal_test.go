package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/testutil"
)

// TestReliabilitySIGTERM: the real binary finishes a request in flight (a long poll
// is answered at once), exits 0 and removes its socket.
func TestReliabilitySIGTERM(t *testing.T) {
	d := testutil.StartDaemon(t)
	res, err := d.Client.Post("http://storaged/v1/repos/plans", "application/json", strings.NewReader(`{"name":"x"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("create: %v %v", res, err)
	}
	res.Body.Close()
	poll := make(chan *http.Response, 1)
	go func() {
		r, err := d.Client.Post("http://storaged/v1/queues/q/dequeue", "application/json", strings.NewReader(`{"waitMs":30000}`)) //nolint:bodyclose // closed below, where the answer is read
		if err != nil {
			t.Error(err)
		}
		poll <- r
	}()
	time.Sleep(200 * time.Millisecond)
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-poll:
		if r != nil {
			_, _ = io.Copy(io.Discard, r.Body) // the status is the answer
			r.Body.Close()
			if r.StatusCode != 204 {
				t.Fatalf("long poll answered %d on shutdown", r.StatusCode)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll held the shutdown")
	}
	if err := d.Wait(10 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after SIGTERM: %v", err)
	}
}

// TestSIGHUPKeepsServing: SIGHUP is the reload signal of a systemd
// service (nginx, PostgreSQL); storaged has nothing to reload, so it says
// so in its log and goes on serving: a waiting long poll stays waiting
// and gets the job enqueued after the signal.
func TestSIGHUPKeepsServing(t *testing.T) {
	d := testutil.StartDaemon(t)
	poll := make(chan string, 1)
	go func() {
		st, body, err := call(d.Client, "POST", "/v1/queues/hup/dequeue", `{"waitMs":60000}`)
		poll <- fmt.Sprintf("%d %s %v", st, body, err)
	}()
	if err := d.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGHUP log line", func() bool { return strings.Contains(d.Logs(), "SIGHUP") })
	if st, _, err := call(d.Client, "GET", "/healthz", ""); err != nil || st != 200 {
		t.Fatalf("healthz after SIGHUP: %d %v", st, err)
	}
	if st, _, err := call(d.Client, "POST", "/v1/queues/hup/jobs", `{"data":{"n":1}}`); err != nil || st != 201 {
		t.Fatalf("enqueue after SIGHUP: %d %v", st, err)
	}
	select {
	case got := <-poll:
		if !strings.HasPrefix(got, "200 ") {
			t.Fatalf("the long poll waiting across SIGHUP got %s", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll did not get the job enqueued after SIGHUP")
	}
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(30 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestReliabilitySIGTERMRollsBackTransactionsFirst: a write waiting behind an open
// transaction (the SQLite writer, the memory writer lock, a PostgreSQL
// row lock) is answered soon after SIGTERM, because shutdown rolls the
// transaction back before draining; the daemon then exits cleanly. It
// used to wait for the request timeout while the drain waited for it.
// The waiting write is a plain one, or one in a second transaction (on
// memory and SQLite the second begin itself waits for the writer; on
// PostgreSQL its update waits for the row): an idle transaction is
// rolled back first, whatever order the daemon keeps them in.
func TestReliabilitySIGTERMRollsBackTransactionsFirst(t *testing.T) {
	backends := []durable{{"memory", nil}}
	for _, b := range durableBackends(t) {
		if b.name != "sqlite+redis" {
			backends = append(backends, b)
		}
	}
	for _, b := range backends {
		for _, secondTx := range []bool{false, true} {
			name := b.name + "/plain write"
			if secondTx {
				name = b.name + "/in a second transaction"
			}
			t.Run(name, func(t *testing.T) {
				sigtermWithWaitingWrite(t, b, secondTx)
			})
		}
	}
}

func sigtermWithWaitingWrite(t *testing.T, b durable, secondTx bool) {
	// Long timeouts everywhere, so that only the rollback can release the
	// waiting write in time.
	env := append([]string{"STORAGED_SHUTDOWN_TIMEOUT=5m", "STORAGED_TX_IDLE_TIMEOUT=5m"}, b.env...)
	d := testutil.StartDaemon(t, env...)
	rec := "/v1/repos/" + testutil.Name(t, "held") + "/x"
	st, _, err := call(d.Client, "POST", strings.TrimSuffix(rec, "/x"), `{"id":"x","n":0}`)
	if err != nil || st != 201 {
		t.Fatalf("create: %d %v", st, err)
	}
	begin := func() string {
		st, body, err := call(d.Client, "POST", "/v1/tx", "")
		if err != nil || st != 201 {
			t.Fatalf("begin: %d %s %v", st, body, err)
		}
		return testutil.Doc(t, body)["id"].(string)
	}
	txID := begin()
	req, _ := newReq("PATCH", rec, `{"n":1}`)
	req.Header.Set("Storaged-Tx", txID)
	res, err := d.Client.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("update in the transaction: %v %v", res, err)
	}
	res.Body.Close()

	method, path, header, body := "PATCH", rec, "", `{"n":2}`
	if secondTx && b.name == "postgres" {
		header = "Storaged-Tx: " + begin() + "\r\n"
	} else if secondTx {
		method, path, body = "POST", "/v1/tx", `{}`
	}
	// The waiting request is sent with Expect: 100-continue: the daemon's
	// "100 Continue" proves it has read the request head, so the request
	// is in flight (not an idle connection that shutdown may close) when
	// SIGTERM arrives.
	conn, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: storaged\r\n%sContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", method, path, header, len(body))
	r := bufio.NewReader(conn)
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("no 100 Continue: %q %v", line, err)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	if b.name == "postgres" {
		// Here the wait can be seen: the update waits for the row lock.
		waitForLockWait(t, strings.TrimPrefix(b.env[len(b.env)-1], "POSTGRESQL_URL="))
	}
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Generous, yet well under the 30 s request timeout that used to be
	// the only way out.
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	waiting, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("%s %s waiting behind the transaction got no answer: %v", method, path, err)
	}
	wb, _ := io.ReadAll(waiting.Body)
	waiting.Body.Close()
	if waiting.StatusCode != 200 && waiting.StatusCode != 201 && waiting.StatusCode != 503 {
		t.Fatalf("%s %s waiting behind the transaction got %d %s", method, path, waiting.StatusCode, wb)
	}
	if err := d.Wait(30 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if d.Cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("exit code %d", d.Cmd.ProcessState.ExitCode())
	}
	t.Logf("%s %s waiting behind the transaction got %d %s", method, path, waiting.StatusCode, wb)
}

// waitForLockWait returns once a session of the database at url waits
// for a lock.
func waitForLockWait(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	waitFor(t, "a write waiting for a lock", func() bool {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n > 0
	})
}
