package handlers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/handlers"
)

// serveJobs serves the API with the given job queue backend (records on
// memory) on a Unix socket and returns a client for it.
func serveJobs(t *testing.T, store backend.JobStore) *daemon {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := handlers.NewMetrics()
	jobs := queue.New(queue.Config{Store: store, Logger: log, Observer: metrics.QueueObserver()})
	api := handlers.New(handlers.Config{Repository: memory.NewRepositoryBackend(), Jobs: jobs, Logger: log, Metrics: metrics})
	api.RegisterMetrics(metrics)
	srv := handlers.NewFastHTTP(api.Handler(), handlers.Limits{MaxBodyBytes: 1 << 20}, log)
	go func() { _ = srv.Serve(ln) }() // it returns when Shutdown closes ln
	t.Cleanup(func() {
		api.StopPolls()
		_ = srv.Shutdown() // its error would be a listener already closed
		api.Close()
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	return &daemon{sock: sock, client: &http.Client{Transport: tr}}
}

// series counts the lines of a metric family in a Prometheus text answer.
func series(body, name string) int {
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			n++
		}
	}
	return n
}

// TestReliabilityMetricsQueueCardinality: 20 000 queue names used once each must
// not make /metrics (and each scrape's queries) grow with them: only the
// most recently used queues, at most the cap (1000 by default), appear.
// Every name used to stay, and each scrape queried all of them. make test
// uses three times the cap (20 000 requests take half a minute under the
// race detector); make test-reliability the full 20 000.
func TestReliabilityMetricsQueueCardinality(t *testing.T) {
	d := serveJobs(t, memory.NewJobStore())
	queues := 3 * handlers.DefaultMetricsQueues
	if os.Getenv("STORAGED_RELIABILITY") != "" {
		queues = 20_000
	}
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < queues; i += workers {
				res, err := d.client.Post(fmt.Sprintf("http://storaged/v1/queues/q%05d/jobs", i), "application/json", strings.NewReader(`{"data":1}`))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, res.Body) // the status is the answer
				res.Body.Close()
				if res.StatusCode != 201 {
					errs <- fmt.Errorf("enqueue: %d", res.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The last one used is among those shown.
	d.do(t, "POST", "/v1/queues/latest/jobs", `{"data":1}`).want(t, 201)

	body := string(d.do(t, "GET", "/metrics", "").want(t, 200).body)
	const limit = handlers.DefaultMetricsQueues
	depth, enqueued := series(body, "storaged_queue_jobs"), series(body, "storaged_jobs_enqueued_total")
	t.Logf("%d queues used: /metrics is %d bytes, %d queue-depth series, %d enqueue counters", queues+1, len(body), depth, enqueued)
	if depth > 5*limit || enqueued > limit {
		t.Fatalf("/metrics shows %d queue-depth series and %d enqueue counters for %d queues: more than %d queues", depth, enqueued, queues, limit)
	}
	if len(body) > 64<<10+limit*1024 {
		t.Fatalf("/metrics is %d bytes", len(body))
	}
	if !strings.Contains(body, `storaged_queue_jobs{queue="latest",status="pending"} 1`) || !strings.Contains(body, `storaged_jobs_enqueued_total{queue="latest"} 1`) {
		t.Fatal("the queue used last is not shown")
	}
	if !strings.Contains(body, "storaged_metrics_scrape_truncated 0") {
		t.Fatal("a complete scrape is not marked as such (storaged_metrics_scrape_truncated 0)")
	}
}

// slowStats is a job store whose stats of queues named slow* never come
// back before the caller gives up, as on a database that stalls.
type slowStats struct{ backend.JobStore }

func (s slowStats) Stats(ctx context.Context, queues []string) ([]backend.QueueStats, error) {
	for _, q := range queues {
		if strings.HasPrefix(q, "slow") {
			<-ctx.Done()
			return nil, backend.Errorf(backend.CodeUnavailable, "timed out")
		}
	}
	return s.JobStore.Stats(ctx, queues)
}

// TestMetricsScrapeTruncated: a scrape whose queue depths cannot be read in
// time answers the rest and says so, rather than stopping silently.
func TestMetricsScrapeTruncated(t *testing.T) {
	d := serveJobs(t, slowStats{memory.NewJobStore()})
	for _, q := range []string{"fast1", "slow1", "fast2"} {
		d.do(t, "POST", "/v1/queues/"+q+"/jobs", `{"data":1}`).want(t, 201)
	}
	body := string(d.do(t, "GET", "/metrics", "").want(t, 200).body)
	if !strings.Contains(body, "storaged_metrics_scrape_truncated 1") {
		t.Fatalf("a scrape that could not read every queue is not marked truncated:\n%s", grep(body, "storaged_"))
	}
	if !strings.Contains(body, `storaged_jobs_enqueued_total{queue="fast2"} 1`) {
		t.Fatalf("the scrape lost the series it could answer:\n%s", grep(body, "storaged_"))
	}
}

// grouped is a job store that counts its Stats calls: a scrape must ask
// once for every queue shown.
type grouped struct {
	backend.JobStore
	mu           sync.Mutex
	calls, asked int
}

func (g *grouped) Stats(ctx context.Context, queues []string) ([]backend.QueueStats, error) {
	g.mu.Lock()
	g.calls++
	g.asked += len(queues)
	g.mu.Unlock()
	return g.JobStore.Stats(ctx, queues)
}

// TestMetricsGroupedStats: a scrape asks the store once for the depth of
// every queue shown.
func TestMetricsGroupedStats(t *testing.T) {
	g := &grouped{JobStore: memory.NewJobStore()}
	d := serveJobs(t, g)
	for i := range 5 {
		d.do(t, "POST", fmt.Sprintf("/v1/queues/g%d/jobs", i), `{"data":1}`).want(t, 201)
	}
	body := string(d.do(t, "GET", "/metrics", "").want(t, 200).body)
	g.mu.Lock()
	calls, asked := g.calls, g.asked
	g.mu.Unlock()
	if calls != 1 || asked != 5 {
		t.Fatalf("a scrape made %d stats calls for %d queues", calls, asked)
	}
	if series(body, "storaged_queue_jobs") != 25 || !strings.Contains(body, "storaged_metrics_scrape_truncated 0") {
		t.Fatalf("scrape:\n%s", grep(body, "storaged_"))
	}
}

func grep(body, prefix string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
