package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/testutil"
)

// TestReliabilityPostgresRestart restarts a private PostgreSQL under load. The daemon
// must recover by itself, answer errors (and a failing /readyz) only while
// the server is down, and lose no write it acknowledged.
func TestReliabilityPostgresRestart(t *testing.T) {
	pg := testutil.StartPGServer(t)
	d := testutil.StartDaemon(t, "REPOSITORY_BACKEND=postgres", "JOBQUEUE_BACKEND=postgres", "POSTGRESQL_URL="+pg.URL())

	var down, up atomic.Int64 // unix ns of the outage window
	var mu sync.Mutex
	var acked []string
	var errsOutside, errsInside, writes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now().UnixNano()
				st, b, err := call(d.Client, "POST", "/v1/repos/restart", fmt.Sprintf(`{"i":%d}`, i))
				end := time.Now().UnixNano()
				if err == nil && st == 201 {
					var r struct{ ID string }
					decode(t, b, &r)
					mu.Lock()
					acked = append(acked, r.ID)
					mu.Unlock()
					writes.Add(1)
					continue
				}
				// An error is expected only if the request overlapped the
				// outage (plus the pool's reconnect time).
				dn, u := down.Load(), up.Load()
				if dn != 0 && end >= dn && (u == 0 || start <= u+int64(3*time.Second)) {
					errsInside.Add(1)
				} else {
					errsOutside.Add(1)
					t.Errorf("error outside the outage: %d %s %v", st, b, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	ready := func() int { st, _, _ := call(d.Client, "GET", "/readyz", ""); return st }
	time.Sleep(500 * time.Millisecond)
	if st := ready(); st != 200 {
		t.Fatalf("readyz before the outage: %d", st)
	}
	down.Store(time.Now().UnixNano())
	pg.Stop()
	time.Sleep(300 * time.Millisecond)
	if st := ready(); st != 503 {
		t.Errorf("readyz during the outage: %d, want 503", st)
	}
	time.Sleep(700 * time.Millisecond)
	pg.Start()
	up.Store(time.Now().UnixNano())
	deadline := time.Now().Add(15 * time.Second)
	for ready() != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not recover after PostgreSQL came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := writes.Load()
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	if writes.Load() == before {
		t.Fatal("no writes succeeded after the recovery")
	}
	for _, id := range acked {
		if st, _, err := call(d.Client, "GET", "/v1/repos/restart/"+id, ""); err != nil || st != 200 {
			t.Fatalf("acknowledged write %s lost: %d %v", id, st, err)
		}
	}
	t.Logf("%d writes acknowledged and kept; %d errors during the outage, %d outside it", len(acked), errsInside.Load(), errsOutside.Load())
}
