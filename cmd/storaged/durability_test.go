package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/testutil"
)

type ackLog struct {
	mu      sync.Mutex
	records []string
	jobs    []string // enqueued and acknowledged by the daemon (201)
	done    []string // dequeued and acknowledged (204)
	// sent are the jobs an ack was sent for, answered or not: with
	// retention 0 one whose answer the kill cut may be gone.
	sent []string
}

func (l *ackLog) add(dst *[]string, id string) {
	l.mu.Lock()
	*dst = append(*dst, id)
	l.mu.Unlock()
}

func call(c *http.Client, method, path, body string) (int, []byte, error) {
	req, _ := http.NewRequest(method, "http://storaged"+path, strings.NewReader(body))
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// mustCall is call for a step the test builds on: an error or a status
// other than 2xx fails the test.
func mustCall(t testing.TB, c *http.Client, method, path, body string) []byte {
	t.Helper()
	st, b, err := call(c, method, path, body)
	if err != nil || st < 200 || st > 299 {
		t.Fatalf("%s %s: %d %s %v", method, path, st, b, err)
	}
	return b
}

// decode reads an answer's JSON into v. A body that is not that JSON
// fails the test (with Errorf: any goroutine may call it) and returns false.
func decode(t testing.TB, b []byte, v any) bool {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Errorf("not the JSON expected: %v: %.300s", err, b)
		return false
	}
	return true
}

// killed waits for a daemon killed with SIGKILL to exit; still running is
// a failure.
func killed(t testing.TB, d *testutil.Daemon) {
	t.Helper()
	var exit *exec.ExitError
	if err := d.Wait(10 * time.Second); !errors.As(err, &exit) {
		t.Fatalf("after kill -9: %v", err)
	}
}

// load writes, enqueues and works jobs until stop closes; it keeps only
// what the daemon acknowledged.
func load(t testing.TB, d *testutil.Daemon, log *ackLog, stop chan struct{}, wg *sync.WaitGroup, worker int) {
	defer wg.Done()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		st, b, err := call(d.Client, "POST", "/v1/repos/durable", fmt.Sprintf(`{"w":%d,"i":%d}`, worker, i))
		if err == nil && st == 201 {
			var rec struct{ ID string }
			if decode(t, b, &rec) {
				log.add(&log.records, rec.ID)
			}
		}
		st, b, err = call(d.Client, "POST", "/v1/queues/durable/jobs", fmt.Sprintf(`{"data":{"w":%d,"i":%d}}`, worker, i))
		if err == nil && st == 201 {
			var r struct{ ID string }
			if decode(t, b, &r) {
				log.add(&log.jobs, r.ID)
			}
		}
		if worker%2 == 0 {
			st, b, err = call(d.Client, "POST", "/v1/queues/durable/dequeue", `{"leaseMs":500}`)
			if err == nil && st == 200 {
				var j struct{ ID, Lease string }
				decode(t, b, &j)
				log.add(&log.sent, j.ID)
				if st, _, err := call(d.Client, "POST", "/v1/jobs/"+j.ID+"/ack", `{"lease":"`+j.Lease+`"}`); err == nil && st == 204 {
					log.add(&log.done, j.ID)
				}
			}
			continue
		}
		// Batches (DESIGN §3a): a kill may come between the claim and the
		// ack, or in the middle of either; only items acknowledged one by
		// one in the answer count as done.
		st, b, err = call(d.Client, "POST", "/v1/queues/durable/dequeue", `{"leaseMs":500,"max":20}`)
		if err == nil && st == 200 {
			var jobs []struct{ ID, Lease string }
			decode(t, b, &jobs)
			items := make([]string, len(jobs))
			for k, j := range jobs {
				items[k] = `{"id":"` + j.ID + `","lease":"` + j.Lease + `"}`
				log.add(&log.sent, j.ID)
			}
			st, b, err := call(d.Client, "POST", "/v1/jobs/ack", "["+strings.Join(items, ",")+"]")
			var outcomes []*struct{ Code string }
			if err == nil && st == 200 && json.Unmarshal(b, &outcomes) == nil && len(outcomes) == len(jobs) {
				for k, o := range outcomes {
					if o == nil {
						log.add(&log.done, jobs[k].ID)
					}
				}
			}
		}
	}
}

// TestReliabilityKill9LosesNothing kills the daemon with SIGKILL under concurrent
// writes, enqueues and acks, restarts it on the same files, and requires
// every acknowledged record and job to be there, and no acknowledged job
// to be delivered again.
func TestReliabilityKill9LosesNothing(t *testing.T) {
	// Each store twice: as configured by default, then with acks that
	// delete their jobs, whose acknowledged jobs must stay gone.
	stores := durableBackends(t)
	for _, d := range durableStores(t, retention0) {
		stores = append(stores, durable{d.name + ", retention 0", d.env})
	}
	for _, bk := range stores {
		drop := slices.Contains(bk.env, retention0)
		t.Run(bk.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "d.sock")
			log := &ackLog{}
			rounds := 3
			if reliability() {
				rounds = 6
			}
			for round := 0; round < rounds; round++ {
				d := testutil.StartDaemonOn(t, sock, bk.env...)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for w := 0; w < 8; w++ {
					wg.Add(1)
					go load(t, d, log, stop, &wg, w)
				}
				time.Sleep(time.Duration(300+100*round) * time.Millisecond)
				if err := d.Cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed(t, d)
				close(stop)
				wg.Wait()
			}
			d := testutil.StartDaemonOn(t, sock, bk.env...)
			if len(log.records) == 0 || len(log.jobs) == 0 || len(log.done) == 0 {
				t.Fatalf("the load did nothing: %d records, %d jobs, %d acks", len(log.records), len(log.jobs), len(log.done))
			}
			for _, id := range log.records {
				if st, _, err := call(d.Client, "GET", "/v1/repos/durable/"+id, ""); err != nil || st != 200 {
					t.Fatalf("acknowledged record %s lost: %d %v", id, st, err)
				}
			}
			acked := map[string]bool{}
			for _, id := range log.done {
				acked[id] = true
				st, b, err := call(d.Client, "GET", "/v1/jobs/"+id, "")
				if drop {
					// Retention 0: the ack deleted it.
					if err != nil || st != 404 {
						t.Fatalf("acknowledged job %s answers %d after restart, want 404", id, st)
					}
					continue
				}
				var j struct{ Status string }
				if err != nil || !decode(t, b, &j) || j.Status != "completed" {
					t.Fatalf("acknowledged job %s is %q after restart", id, j.Status)
				}
			}
			sent := map[string]bool{}
			for _, id := range log.sent {
				sent[id] = true
			}
			for _, id := range log.jobs {
				if sent[id] && drop {
					continue // acknowledged, or its ack's answer lost
				}
				if st, _, err := call(d.Client, "GET", "/v1/jobs/"+id, ""); err != nil || st != 200 {
					t.Fatalf("enqueued job %s lost: %d %v", id, st, err)
				}
			}
			// Drain: every job not yet acknowledged comes back (its lease
			// expires), and no acknowledged one does.
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, b, err := call(d.Client, "POST", "/v1/queues/durable/dequeue", `{"waitMs":1000}`)
				if err != nil {
					t.Fatal(err)
				}
				if st == 204 {
					break
				}
				var j struct{ ID, Lease string }
				decode(t, b, &j)
				if acked[j.ID] {
					t.Fatalf("acknowledged job %s was delivered again", j.ID)
				}
				// An ack lost here brings the job back later, and the drain takes it again.
				_, _, _ = call(d.Client, "POST", "/v1/jobs/"+j.ID+"/ack", `{"lease":"`+j.Lease+`"}`)
				if time.Now().After(deadline) {
					t.Fatal("drain did not finish")
				}
			}
			t.Logf("%s: %d records, %d jobs enqueued, %d acknowledged, %d SIGKILLs, 0 lost, 0 acknowledged jobs run again", bk.name, len(log.records), len(log.jobs), len(log.done), rounds)
		})
	}
}

// reliability reports whether make test-reliability runs us: bigger
// numbers, longer runs.
func reliability() bool { return os.Getenv("STORAGED_RELIABILITY") != "" }

type durable struct {
	name string
	env  []string
}

func durableBackends(t *testing.T) []durable { return durableStores(t) }

// durableStores are the stores that outlive the daemon, each with its own
// file, database or prefix, and extra settings for all.
func durableStores(t *testing.T, extra ...string) []durable {
	dir := t.TempDir()
	with := func(env ...string) []string { return append(env, extra...) }
	return []durable{
		{"sqlite", with("REPOSITORY_BACKEND=sqlite", "JOBQUEUE_BACKEND=sqlite", "SQLITE_PATH="+filepath.Join(dir, "d.db"))},
		{"postgres", with("REPOSITORY_BACKEND=postgres", "JOBQUEUE_BACKEND=postgres", "POSTGRESQL_URL="+testutil.PostgresDB(t))},
		// Records in SQLite, jobs in Redis: killing the daemon must not
		// lose what Redis acknowledged (Redis itself is not killed here).
		{"sqlite+redis", with("REPOSITORY_BACKEND=sqlite", "SQLITE_PATH="+filepath.Join(dir, "r.db"),
			"JOBQUEUE_BACKEND=redis", "REDIS_URL="+testutil.RedisURL(), "STORAGED_REDIS_PREFIX="+testutil.RedisPrefix(t))},
	}
}

// retention0 is the setting that makes acks delete their jobs.
const retention0 = "STORAGED_RETENTION_COMPLETED=0"

func newReq(method, path, body string) (*http.Request, error) {
	return http.NewRequest(method, "http://storaged"+path, strings.NewReader(body))
}

func readAll(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
