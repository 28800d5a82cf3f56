package handlers

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/storaged/storaged/internal/backend"
)

// Metrics are the Prometheus series the daemon exports on /metrics.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.HistogramVec
	backend   *prometheus.HistogramVec
	enqueued  *prometheus.CounterVec
	completed prometheus.Counter
	failed    prometheus.Counter
}

// NewMetrics registers storaged's series and the Go runtime's.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "storaged_http_request_duration_seconds",
		Help:    "Time to serve an API request, by route and status.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5, 30},
	}, []string{"route", "status"})
	m.backend = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "storaged_backend_operation_duration_seconds",
		Help:    "Time spent in the backend for one operation, by port and operation.",
		Buckets: []float64{.00002, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5, 30},
	}, []string{"port", "op"})
	m.enqueued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storaged_jobs_enqueued_total", Help: "Jobs accepted by enqueue, by queue (dedupe hits included).",
	}, []string{"queue"})
	m.completed = prometheus.NewCounter(prometheus.CounterOpts{Name: "storaged_jobs_completed_total", Help: "Jobs acknowledged."})
	m.failed = prometheus.NewCounter(prometheus.CounterOpts{Name: "storaged_jobs_failed_total", Help: "Fail calls (retried or dead-lettered)."})
	m.reg.MustRegister(m.requests, m.backend, m.enqueued, m.completed, m.failed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds a collector, such as a gauge of open transactions.
func (m *Metrics) Register(c prometheus.Collector) { m.reg.MustRegister(c) }

// route returns the observer of one route; the series of each status is
// resolved once and cached, so the hot path does no label hashing.
func (m *Metrics) route(name string) func(status int, d time.Duration) {
	var cache [600]atomic.Pointer[prometheus.Observer]
	return func(status int, d time.Duration) {
		if status < 100 || status >= len(cache) {
			return
		}
		o := cache[status].Load()
		if o == nil {
			obs := m.requests.WithLabelValues(name, strconv.Itoa(status))
			o = &obs
			cache[status].Store(o)
		}
		(*o).Observe(d.Seconds())
	}
}

func (m *Metrics) handler() fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

// op returns a function that records the backend time of one operation
// when called: defer s.metrics.op("repository", "create")().
func (m *Metrics) op(port, name string) func() {
	o := m.backend.WithLabelValues(port, name)
	start := time.Now()
	return func() { o.Observe(time.Since(start).Seconds()) }
}

// PoolStater is implemented by backends with a connection pool.
type PoolStater interface {
	// PoolStats reports connections in use, idle, and the pool's bound.
	PoolStats() (inUse, idle, max int)
}

// CacheStater is implemented by the findById read cache.
type CacheStater interface {
	Stats() (hits, misses uint64)
	Live() bool
}

// RegisterMetrics adds the server's gauges: open transactions, pool usage,
// the read cache and queue depth by queue and status.
func (s *Server) RegisterMetrics(m *Metrics) {
	repo := any(s.repo)
	if cs, ok := repo.(CacheStater); ok {
		m.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "storaged_cache_hits_total", Help: "findById calls the read cache answered.",
		}, func() float64 { h, _ := cs.Stats(); return float64(h) }))
		m.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "storaged_cache_misses_total", Help: "findById calls that went to the backend.",
		}, func() float64 { _, n := cs.Stats(); return float64(n) }))
		m.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "storaged_cache_live", Help: "1 while the read cache serves, 0 while its change feed is down.",
		}, func() float64 {
			if cs.Live() {
				return 1
			}
			return 0
		}))
	}
	if u, ok := repo.(interface {
		Unwrap() backend.RepositoryBackend
	}); ok {
		repo = u.Unwrap()
	}
	m.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "storaged_open_transactions", Help: "Transactions held open by clients.",
	}, func() float64 { return float64(s.txs.open()) }))
	for port, b := range map[string]any{"repository": repo, "jobqueue": s.jobs.Store()} {
		ps, ok := b.(PoolStater)
		if !ok {
			continue
		}
		for _, k := range []struct {
			state string
			pick  func(a, b, c int) int
		}{{"in_use", func(a, _, _ int) int { return a }}, {"idle", func(_, b, _ int) int { return b }}, {"max", func(_, _, c int) int { return c }}} {
			m.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "storaged_pool_connections", Help: "Database connections of each backend's pool.",
				ConstLabels: prometheus.Labels{"port": port, "state": k.state},
			}, func() float64 { a, b, c := ps.PoolStats(); return float64(k.pick(a, b, c)) }))
		}
	}
	m.Register(&queueDepth{s: s, desc: prometheus.NewDesc("storaged_queue_jobs",
		"Jobs by queue and status (queues this daemon has served).", []string{"queue", "status"}, nil)})
}

// queueDepth reads the stats of every queue this daemon has seen at each
// scrape, with a short timeout so a slow database cannot stall /metrics.
type queueDepth struct {
	s    *Server
	desc *prometheus.Desc
}

func (q *queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q.s.queues.Range(func(k, _ any) bool {
		sts, err := q.s.jobs.Stats(ctx, k.(string))
		if err != nil {
			return false
		}
		st := sts[0]
		for status, n := range map[string]int64{"pending": st.Pending, "processing": st.Processing, "completed": st.Completed, "failed": st.Failed, "cancelled": st.Cancelled} {
			ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(n), st.Queue, status)
		}
		return true
	})
}
