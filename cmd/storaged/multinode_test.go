package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/testutil"
)

// TestTwoDaemonsOneDatabase: two daemons share one PostgreSQL; workers on
// both drain thousands of jobs, each completed exactly once and none left
// behind; and read-modify-write transactions through both daemons on one
// record lose no update.
func TestTwoDaemonsOneDatabase(t *testing.T) {
	url := testutil.PostgresDB(t)
	env := []string{"REPOSITORY_BACKEND=postgres", "JOBQUEUE_BACKEND=postgres", "POSTGRESQL_URL=" + url}
	daemons := []*testutil.Daemon{testutil.StartDaemon(t, env...), testutil.StartDaemon(t, env...)}
	if reliability() {
		daemons = append(daemons, testutil.StartDaemon(t, env...))
	}
	eachJobOnce(t, daemons)
	serializableAcross(t, daemons)
}

// TestTwoDaemonsOneRedis: jobs on one Redis, worked through two daemons.
func TestTwoDaemonsOneRedis(t *testing.T) {
	env := []string{"JOBQUEUE_BACKEND=redis", "REDIS_URL=" + testutil.RedisURL(), "STORAGED_REDIS_PREFIX=" + testutil.RedisPrefix(t)}
	eachJobOnce(t, []*testutil.Daemon{testutil.StartDaemon(t, env...), testutil.StartDaemon(t, env...)})
}

// eachJobOnce enqueues jobs through every daemon and drains them with
// workers on all of them: each job must be completed exactly once.
func eachJobOnce(t *testing.T, daemons []*testutil.Daemon) {
	jobs, workersEach := 3000, 4
	if reliability() {
		jobs = 10000
	}
	var ids []string
	for i := 0; i < jobs; i += 500 {
		var batch []string
		for k := i; k < i+500; k++ {
			batch = append(batch, fmt.Sprintf(`{"data":{"n":%d}}`, k))
		}
		st, b, err := call(daemons[i/500%len(daemons)].Client, "POST", "/v1/queues/multi/jobs/batch", "["+strings.Join(batch, ",")+"]")
		if err != nil || st != 201 {
			t.Fatalf("enqueue: %d %s %v", st, b, err)
		}
		var r struct{ IDs []string }
		json.Unmarshal(b, &r)
		ids = append(ids, r.IDs...)
	}
	var mu sync.Mutex
	delivered := map[string]int{}
	perDaemon := make([]int, len(daemons))
	var wg sync.WaitGroup
	for di, d := range daemons {
		for w := 0; w < workersEach; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					st, b, err := call(d.Client, "POST", "/v1/queues/multi/dequeue", `{"waitMs":500,"leaseMs":30000}`)
					if err != nil {
						t.Error(err)
						return
					}
					if st == 204 {
						return
					}
					var j struct{ ID, Lease string }
					json.Unmarshal(b, &j)
					mu.Lock()
					delivered[j.ID]++
					perDaemon[di]++
					mu.Unlock()
					if st, b, err := call(d.Client, "POST", "/v1/jobs/"+j.ID+"/ack", `{"lease":"`+j.Lease+`"}`); err != nil || st != 204 {
						t.Errorf("ack: %d %s %v", st, b, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, id := range ids {
		if delivered[id] != 1 {
			t.Fatalf("job %s delivered %d times", id, delivered[id])
		}
	}
	_, b, _ := call(daemons[0].Client, "GET", "/v1/queues/multi/stats", "")
	var st struct{ Pending, Processing, Completed int }
	json.Unmarshal(b, &st)
	if st.Completed != jobs || st.Pending != 0 || st.Processing != 0 {
		t.Fatalf("stats after the drain: %s", b)
	}
	for i, n := range perDaemon {
		if n == 0 {
			t.Fatalf("daemon %d did no work: %v", i, perDaemon)
		}
	}
	t.Logf("%d daemons, %d workers each: %d jobs, each completed exactly once, none stuck; per daemon %v", len(daemons), workersEach, jobs, perDaemon)
}

// serializableAcross runs read-modify-write transactions through two
// daemons on one record: none may be lost.
func serializableAcross(t *testing.T, daemons []*testutil.Daemon) {
	// Serializable read-modify-write through both daemons.
	call(daemons[0].Client, "POST", "/v1/repos/counters", `{"id":"c","n":0}`)
	const each = 15
	var twg sync.WaitGroup
	daemons = daemons[:2]
	for _, d := range daemons {
		for w := 0; w < 2; w++ {
			twg.Add(1)
			go func() {
				defer twg.Done()
				for i := 0; i < each; {
					if incrementInTx(t, d) {
						i++
					}
				}
			}()
		}
	}
	twg.Wait()
	_, b, _ := call(daemons[1].Client, "GET", "/v1/repos/counters/c", "")
	var c struct{ N int }
	json.Unmarshal(b, &c)
	if c.N != 2*2*each {
		t.Fatalf("counter = %d after %d serializable increments through two daemons", c.N, 2*2*each)
	}
	t.Logf("%d concurrent read-modify-write transactions through two daemons on one record: counter %d, none lost", 2*2*each, c.N)
}

// incrementInTx reads and increments the counter in a transaction; false
// means a serialization conflict (rolled back, to be retried).
func incrementInTx(t *testing.T, d *testutil.Daemon) bool {
	st, b, err := call(d.Client, "POST", "/v1/tx", "")
	if err != nil || st != 201 {
		t.Fatalf("begin: %d %s %v", st, b, err)
	}
	var tx struct{ ID string }
	json.Unmarshal(b, &tx)
	do := func(method, path, body string) (int, []byte) {
		req, _ := newReq(method, path, body)
		req.Header.Set("Storaged-Tx", tx.ID)
		res, err := d.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		return res.StatusCode, []byte(readAll(res))
	}
	st, b = do("GET", "/v1/repos/counters/c", "")
	if st == 409 {
		call(d.Client, "POST", "/v1/tx/"+tx.ID+"/rollback", "")
		return false
	}
	if st != 200 {
		t.Fatalf("read in tx: %d %s", st, b)
	}
	var c struct{ N int }
	json.Unmarshal(b, &c)
	st, b = do("PATCH", "/v1/repos/counters/c", fmt.Sprintf(`{"n":%d}`, c.N+1))
	if st == 409 {
		call(d.Client, "POST", "/v1/tx/"+tx.ID+"/rollback", "")
		return false
	}
	if st != 200 {
		t.Fatalf("update in tx: %d %s", st, b)
	}
	st, b, _ = call(d.Client, "POST", "/v1/tx/"+tx.ID+"/commit", "")
	if st == 409 {
		return false
	}
	if st != 204 {
		t.Fatalf("commit: %d %s", st, b)
	}
	return true
}
