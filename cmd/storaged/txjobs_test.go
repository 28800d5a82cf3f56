package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/testutil"
)

// inTx sends one request bound to transaction tx (Storaged-Tx).
func inTx(t *testing.T, c *http.Client, tx, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := newReq(method, path, body)
	req.Header.Set("Storaged-Tx", tx)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return res.StatusCode, []byte(readAll(res))
}

func begin(t *testing.T, d *testutil.Daemon) string {
	t.Helper()
	st, b, err := call(d.Client, "POST", "/v1/tx", "")
	if err != nil || st != 201 {
		t.Fatalf("begin: %d %s %v", st, b, err)
	}
	var tx struct{ ID string }
	decode(t, b, &tx)
	return tx.ID
}

func transactionalJobs(t *testing.T, d *testutil.Daemon) bool {
	t.Helper()
	_, b, err := call(d.Client, "GET", "/v1/info", "")
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ TransactionalJobs bool }
	decode(t, b, &info)
	return info.TransactionalJobs
}

// TestTxJobsAcrossDaemons: two daemons on one PostgreSQL. A job enqueued
// in an open transaction on one is invisible to a dequeue on the other,
// and a long poll already waiting there gets it when the transaction
// commits (LISTEN/NOTIFY carries the wake-up between daemons).
func TestTxJobsAcrossDaemons(t *testing.T) {
	url := testutil.PostgresDB(t)
	env := []string{"REPOSITORY_BACKEND=postgres", "JOBQUEUE_BACKEND=postgres", "POSTGRESQL_URL=" + url}
	a, b := testutil.StartDaemon(t, env...), testutil.StartDaemon(t, env...)
	if !transactionalJobs(t, a) {
		t.Fatal("GET /v1/info: transactionalJobs false with records and jobs on one PostgreSQL database")
	}

	type answer struct {
		status int
		body   []byte
		at     time.Time
	}
	polled := make(chan answer, 1)
	go func() {
		st, body, err := call(b.Client, "POST", "/v1/queues/orders-mail/dequeue", `{"waitMs":20000}`)
		if err != nil {
			t.Error(err)
		}
		polled <- answer{st, body, time.Now()}
	}()

	tx := begin(t, a)
	if st, body := inTx(t, a.Client, tx, "POST", "/v1/repos/orders", `{"id":"o1","total":5}`); st != 201 {
		t.Fatalf("create in tx: %d %s", st, body)
	}
	st, body := inTx(t, a.Client, tx, "POST", "/v1/queues/orders-mail/jobs", `{"data":{"order":"o1"}}`)
	if st != 201 {
		t.Fatalf("enqueue in tx: %d %s", st, body)
	}
	var job struct{ ID string }
	decode(t, body, &job)

	// Before commit: nothing to see from the other daemon, and the waiting
	// poll is still waiting.
	time.Sleep(300 * time.Millisecond)
	if st, body, _ := call(b.Client, "POST", "/v1/queues/orders-mail/dequeue", `{}`); st != 204 {
		t.Fatalf("dequeue on the other daemon before commit: %d %s", st, body)
	}
	select {
	case a := <-polled:
		t.Fatalf("the waiting long poll answered before commit: %d %s", a.status, a.body)
	default:
	}

	committed := time.Now()
	if st, body, _ := call(a.Client, "POST", "/v1/tx/"+tx+"/commit", ""); st != 204 {
		t.Fatalf("commit: %d %s", st, body)
	}
	got := <-polled
	if got.status != 200 || !strings.Contains(string(got.body), job.ID) {
		t.Fatalf("the waiting long poll on the other daemon after commit: %d %s (want job %s)", got.status, got.body, job.ID)
	}
	t.Logf("long poll on the other daemon answered %v after commit", got.at.Sub(committed).Round(time.Microsecond))
	if st, body, _ := call(b.Client, "GET", "/v1/repos/orders/o1", ""); st != 200 {
		t.Fatalf("the record committed with the job: %d %s", st, body)
	}
}

// TestTxJobsRefusedElsewhere: where the jobs are not in the records'
// database, a transactional job call is 400 naming both backends, and
// neither the record nor the job is written.
func TestTxJobsRefusedElsewhere(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		env   []string
		names []string // what the message must name
	}{
		{"sqlite records, postgres jobs", []string{"REPOSITORY_BACKEND=sqlite", "SQLITE_PATH=" + filepath.Join(dir, "r.db"),
			"JOBQUEUE_BACKEND=postgres", "POSTGRESQL_URL=" + testutil.PostgresDB(t)}, []string{"sqlite", "postgres"}},
		{"postgres records and jobs in two databases", []string{"REPOSITORY_BACKEND=postgres", "REPOSITORY_CONNECTION_STRING=" + testutil.PostgresDB(t),
			"JOBQUEUE_BACKEND=postgres", "JOBQUEUE_CONNECTION_STRING=" + testutil.PostgresDB(t)}, []string{"postgres", "same database"}},
		{"sqlite records and jobs in two files", []string{"REPOSITORY_BACKEND=sqlite", "REPOSITORY_CONNECTION_STRING=" + filepath.Join(dir, "a.db"),
			"JOBQUEUE_BACKEND=sqlite", "JOBQUEUE_CONNECTION_STRING=" + filepath.Join(dir, "b.db")}, []string{"sqlite", "same database"}},
		{"sqlite records, redis jobs", []string{"REPOSITORY_BACKEND=sqlite", "SQLITE_PATH=" + filepath.Join(dir, "x.db"),
			"JOBQUEUE_BACKEND=redis", "REDIS_URL=" + testutil.RedisURL(), "STORAGED_REDIS_PREFIX=" + testutil.RedisPrefix(t)}, []string{"sqlite", "redis"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := testutil.StartDaemon(t, c.env...)
			if transactionalJobs(t, d) {
				t.Fatal("GET /v1/info: transactionalJobs true")
			}
			tx := begin(t, d)
			if st, body := inTx(t, d.Client, tx, "POST", "/v1/repos/orders", `{"id":"o1"}`); st != 201 {
				t.Fatalf("create in tx: %d %s", st, body)
			}
			for _, call := range []struct{ path, body string }{
				{"/v1/queues/mail/jobs", `{"data":1}`},
				{"/v1/queues/mail/jobs/batch", `[{"data":1}]`},
				{"/v1/jobs/some-id/ack", `{"lease":"x"}`},
				{"/v1/jobs/some-id/fail", `{"lease":"x","error":{"message":"m"}}`},
				{"/v1/jobs/ack", `[{"id":"some-id","lease":"x"}]`},
				{"/v1/jobs/fail", `[{"id":"some-id","lease":"x"}]`},
			} {
				st, body := inTx(t, d.Client, tx, "POST", call.path, call.body)
				if st != 400 || !strings.Contains(string(body), "invalid_argument") {
					t.Fatalf("POST %s in a tx: %d %s (want 400 invalid_argument)", call.path, st, body)
				}
				for _, name := range c.names {
					if !strings.Contains(string(body), name) {
						t.Fatalf("POST %s in a tx: the message does not name %q: %s", call.path, name, body)
					}
				}
			}
			// The refusal does not end the transaction; rolling it back
			// leaves nothing, and nothing was enqueued anywhere.
			if st, body, _ := call(d.Client, "POST", "/v1/tx/"+tx+"/rollback", ""); st != 204 {
				t.Fatalf("rollback: %d %s", st, body)
			}
			if st, _, _ := call(d.Client, "GET", "/v1/repos/orders/o1", ""); st != 404 {
				t.Fatalf("record after rollback: %d", st)
			}
			_, body, _ := call(d.Client, "GET", "/v1/queues/mail/stats", "")
			var stats struct{ Pending, Processing, Completed int }
			decode(t, body, &stats)
			if stats.Pending+stats.Processing+stats.Completed != 0 {
				t.Fatalf("a refused transactional enqueue wrote a job: %s", body)
			}
		})
	}
}

// TestTxJobsKill9BeforeCommit: the daemon is killed between a
// transactional enqueue and its commit; after restart neither the record
// nor the job exists, on SQLite and on PostgreSQL.
func TestTxJobsKill9BeforeCommit(t *testing.T) {
	dir := t.TempDir()
	for _, b := range []durable{
		{"sqlite", []string{"REPOSITORY_BACKEND=sqlite", "JOBQUEUE_BACKEND=sqlite", "SQLITE_PATH=" + filepath.Join(dir, "k.db")}},
		{"postgres", []string{"REPOSITORY_BACKEND=postgres", "JOBQUEUE_BACKEND=postgres", "POSTGRESQL_URL=" + testutil.PostgresDB(t)}},
	} {
		t.Run(b.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "d.sock")
			d := testutil.StartDaemonOn(t, sock, b.env...)
			// One committed pair first, so the restart has something to keep.
			tx := begin(t, d)
			inTx(t, d.Client, tx, "POST", "/v1/repos/orders", `{"id":"kept"}`)
			inTx(t, d.Client, tx, "POST", "/v1/queues/mail/jobs", `{"data":"kept"}`)
			if st, body, _ := call(d.Client, "POST", "/v1/tx/"+tx+"/commit", ""); st != 204 {
				t.Fatalf("commit: %d %s", st, body)
			}
			tx = begin(t, d)
			if st, body := inTx(t, d.Client, tx, "POST", "/v1/repos/orders", `{"id":"lost"}`); st != 201 {
				t.Fatalf("create in tx: %d %s", st, body)
			}
			if st, body := inTx(t, d.Client, tx, "POST", "/v1/queues/mail/jobs", `{"data":"lost","key":"lost"}`); st != 201 {
				t.Fatalf("enqueue in tx: %d %s", st, body)
			}
			if err := d.Cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed(t, d)

			d = testutil.StartDaemonOn(t, sock, b.env...)
			if st, _, _ := call(d.Client, "GET", "/v1/repos/orders/lost", ""); st != 404 {
				t.Fatalf("the uncommitted record survived kill -9: %d", st)
			}
			if st, _, _ := call(d.Client, "GET", "/v1/repos/orders/kept", ""); st != 200 {
				t.Fatalf("the committed record was lost: %d", st)
			}
			var data []string
			for {
				st, body, err := call(d.Client, "POST", "/v1/queues/mail/dequeue", `{}`)
				if err != nil {
					t.Fatal(err)
				}
				if st == 204 {
					break
				}
				var j struct {
					ID, Lease string
					Data      string
				}
				decode(t, body, &j)
				data = append(data, j.Data)
				mustCall(t, d.Client, "POST", "/v1/jobs/"+j.ID+"/ack", `{"lease":"`+j.Lease+`"}`)
			}
			if len(data) != 1 || data[0] != "kept" {
				t.Fatalf("jobs after kill -9 and restart: %q (want only the committed one)", data)
			}
			// The uncommitted job's dedupe key was never taken.
			st, body, _ := call(d.Client, "POST", "/v1/queues/mail/jobs", `{"data":"again","key":"lost"}`)
			if st != 201 {
				t.Fatalf("enqueue with the rolled-back key: %d %s", st, body)
			}
		})
	}
}
