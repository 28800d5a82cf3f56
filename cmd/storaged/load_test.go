package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/testutil"
)

// loadSeconds is how long TestReliabilityLoad runs per backend: short in make test,
// longer under make test-reliability (STORAGED_LOAD_SECONDS).
func loadSeconds() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("STORAGED_LOAD_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 3 * time.Second
}

func rssMiB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// TestReliabilityLoad runs 64 clients over a mixed workload (reads, writes, filtered
// finds, enqueue, dequeue+ack) for a bounded time on SQLite and
// PostgreSQL: no errors, p99 reported, RSS growth bounded.
func TestReliabilityLoad(t *testing.T) {
	for _, b := range durableBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			d := testutil.StartDaemon(t, b.env...)
			var ids []string
			for i := 0; i < 500; i++ {
				_, body, err := call(d.Client, "POST", "/v1/repos/load", fmt.Sprintf(`{"status":"s%d","n":%d}`, i%20, i))
				if err != nil {
					t.Fatal(err)
				}
				var r struct{ ID string }
				decode(t, body, &r)
				ids = append(ids, r.ID)
			}
			mustCall(t, d.Client, "PUT", "/v1/repos/load/indexes/by_status", `{"fields":["status"]}`)
			run := func(dur time.Duration) (ops int, lat []time.Duration, errs []string) {
				var mu sync.Mutex
				var wg sync.WaitGroup
				end := time.Now().Add(dur)
				for w := 0; w < 64; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(w), 1)) //nolint:gosec // G115: w is a worker number, small and positive
						var mine []time.Duration
						var bad []string
						for time.Now().Before(end) {
							id := ids[rng.IntN(len(ids))]
							start := time.Now()
							var st int
							var body []byte
							var err error
							want := 200
							switch r := rng.IntN(100); {
							case r < 40:
								st, body, err = call(d.Client, "GET", "/v1/repos/load/"+id, "")
							case r < 55:
								st, body, err = call(d.Client, "POST", "/v1/repos/load", `{"status":"new","n":1}`)
								want = 201
							case r < 70:
								st, body, err = call(d.Client, "PATCH", "/v1/repos/load/"+id, fmt.Sprintf(`{"n":%d}`, rng.IntN(1000)))
							case r < 80:
								st, body, err = call(d.Client, "POST", "/v1/repos/load/find", fmt.Sprintf(`{"filter":{"status":"s%d"},"limit":10}`, rng.IntN(20)))
							case r < 90:
								st, body, err = call(d.Client, "POST", "/v1/queues/load/jobs", `{"data":{"x":1}}`)
								want = 201
							default:
								st, body, err = call(d.Client, "POST", "/v1/queues/load/dequeue", `{}`)
								if err == nil && st == 200 {
									var j struct{ ID, Lease string }
									decode(t, body, &j)
									st, body, err = call(d.Client, "POST", "/v1/jobs/"+j.ID+"/ack", `{"lease":"`+j.Lease+`"}`)
									want = 204
								} else if st == 204 {
									want = 204
								}
							}
							mine = append(mine, time.Since(start))
							if err != nil || st != want {
								bad = append(bad, fmt.Sprintf("%d %s %v", st, body, err))
							}
						}
						mu.Lock()
						lat = append(lat, mine...)
						errs = append(errs, bad...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				return len(lat), lat, errs
			}
			run(time.Second) // warm up: pools, caches, heap
			warm := rssMiB(d.Cmd.Process.Pid)
			ops, lat, errs := run(loadSeconds())
			after := rssMiB(d.Cmd.Process.Pid)
			if len(errs) > 0 {
				t.Fatalf("%d errors under load, first: %s", len(errs), errs[0])
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
			t.Logf("%s: %d ops in %v by 64 clients (%.0f/s), p50 %v, p99 %v, RSS %.1f → %.1f MiB, 0 errors",
				b.name, ops, loadSeconds(), float64(ops)/loadSeconds().Seconds(), p(0.5), p(0.99), warm, after)
			if after > warm+64 {
				t.Fatalf("RSS grew from %.1f to %.1f MiB under a steady load", warm, after)
			}
		})
	}
}
