package handlers

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync"
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
	completed prometheus.Counter
	failed    prometheus.Counter
	// scheduleLag is how late schedules fire their slots (issue 16).
	scheduleLag prometheus.Histogram
	// active is the server's set of recently used queues, where the queue
	// service's enqueue counts go (see QueueObserver).
	active atomic.Pointer[activeQueues]
	// ops are the backend series by port and operation (see op).
	ops   atomic.Pointer[map[opKey]prometheus.Observer]
	opsMu sync.Mutex
}

// NewMetrics registers storaged's series and the Go runtime's.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.ops.Store(&map[opKey]prometheus.Observer{})
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
	m.completed = prometheus.NewCounter(prometheus.CounterOpts{Name: "storaged_jobs_completed_total", Help: "Jobs acknowledged."})
	m.failed = prometheus.NewCounter(prometheus.CounterOpts{Name: "storaged_jobs_failed_total", Help: "Fail calls (retried or dead-lettered)."})
	m.scheduleLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "storaged_schedule_lag_seconds",
		Help:    "How long after its slot a recurring schedule enqueued the slot's job (this daemon's fires).",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 3600},
	})
	m.reg.MustRegister(m.requests, m.backend, m.completed, m.failed, m.scheduleLag,
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

// op starts timing one backend operation; done records it:
// defer s.metrics.op("repository", "create").done(). A value, and the
// series looked up in a map that is only ever replaced, so that a call
// costs no allocation and no lock (the label hashing of WithLabelValues
// and a closure per call were a tenth of a findById's own work).
func (m *Metrics) op(port, name string) opTimer {
	key := opKey{port, name}
	o, ok := (*m.ops.Load())[key]
	if !ok {
		o = m.newOp(key)
	}
	return opTimer{o: o, start: time.Now()}
}

type opKey struct{ port, name string }

type opTimer struct {
	o     prometheus.Observer
	start time.Time
}

func (t opTimer) done() { t.o.Observe(time.Since(t.start).Seconds()) }

// newOp adds the series of an operation to the map of those seen.
func (m *Metrics) newOp(key opKey) prometheus.Observer {
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	old := *m.ops.Load()
	if o, ok := old[key]; ok {
		return o
	}
	o := m.backend.WithLabelValues(key.port, key.name)
	next := make(map[opKey]prometheus.Observer, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[key] = o
	m.ops.Store(&next)
	return o
}

// PoolStater is implemented by backends with a connection pool.
type PoolStater interface {
	// PoolStats reports connections in use, idle, and the pool's bound.
	PoolStats() (inUse, idle, maxOpen int)
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
	m.Register(&queueMetrics{s: s,
		depth: prometheus.NewDesc("storaged_queue_jobs",
			"Jobs by queue and status, for the queues used most recently (see STORAGED_METRICS_QUEUES).", []string{"queue", "status"}, nil),
		enqueued: prometheus.NewDesc("storaged_jobs_enqueued_total",
			"Jobs accepted by enqueue (dedupe hits included), by queue, for the queues used most recently; a queue's counter goes when the queue leaves the list.", []string{"queue"}, nil),
		tracked: prometheus.NewDesc("storaged_metrics_queues",
			"Queues /metrics shows: those used in the last 15 minutes, at most STORAGED_METRICS_QUEUES.", nil, nil),
		truncated: prometheus.NewDesc("storaged_metrics_scrape_truncated",
			"1 when this scrape ran out of its time budget (or met errors) before it had read the depth of every queue shown.", nil, nil),
	})
}

// The queue series are bounded: every queue name ever used used to stay in
// /metrics, and each scrape queried every one of them, so 20 000 queues
// made 6 MB scrapes that stopped silently at their timeout on PostgreSQL.
// Now /metrics shows the queues used in the last queueIdleAfter, at most
// Config.MetricsQueues of them (the least recently used go first), and a
// scrape reads their depths within queueStatsBudget, saying when it could
// not read them all.
const (
	// DefaultMetricsQueues is how many queues /metrics shows by default.
	DefaultMetricsQueues = 1000
	queueIdleAfter       = 15 * time.Minute
	queueStatsBudget     = 2 * time.Second
)

// activeQueues remembers the queues used recently, with their enqueue
// counts. Using a known queue takes no lock; a new one takes none either
// until the list outgrows its bound by a quarter, when one caller trims it.
type activeQueues struct {
	max      int
	idle     time.Duration
	now      func() time.Time
	m        sync.Map // queue name → *queueActivity
	n        atomic.Int64
	trimming sync.Mutex
}

type queueActivity struct {
	last     atomic.Int64 // Unix nanoseconds of the last use
	enqueued atomic.Uint64
}

func newActiveQueues(most int) *activeQueues {
	if most <= 0 {
		most = DefaultMetricsQueues
	}
	return &activeQueues{max: most, idle: queueIdleAfter, now: time.Now}
}

// use records a use of queue and returns its entry.
func (a *activeQueues) use(queue string) *queueActivity {
	now := a.now().UnixNano()
	if v, ok := a.m.Load(queue); ok {
		q := v.(*queueActivity)
		// Busy queues are used thousands of times a second; a write per
		// second is enough to know they are.
		if now-q.last.Load() > int64(time.Second) {
			q.last.Store(now)
		}
		return q
	}
	q := &queueActivity{}
	q.last.Store(now)
	if v, loaded := a.m.LoadOrStore(queue, q); loaded {
		return v.(*queueActivity)
	}
	if a.n.Add(1) > int64(a.max+a.max/4) {
		a.trim()
	}
	return q
}

type activeQueue struct {
	name string
	q    *queueActivity
	last int64
}

// trim forgets the queues idle too long and then, beyond the bound, the
// least recently used; it returns those it kept, most recent first.
func (a *activeQueues) trim() []activeQueue {
	a.trimming.Lock()
	defer a.trimming.Unlock()
	cutoff := a.now().Add(-a.idle).UnixNano()
	var keep []activeQueue
	a.m.Range(func(k, v any) bool {
		q := v.(*queueActivity)
		if last := q.last.Load(); last < cutoff {
			a.forget(k.(string), q)
		} else {
			keep = append(keep, activeQueue{k.(string), q, last})
		}
		return true
	})
	slices.SortFunc(keep, func(x, y activeQueue) int { return cmp.Compare(y.last, x.last) })
	if len(keep) > a.max {
		for _, e := range keep[a.max:] {
			a.forget(e.name, e.q)
		}
		keep = keep[:a.max]
	}
	return keep
}

func (a *activeQueues) forget(name string, q *queueActivity) {
	if a.m.CompareAndDelete(name, q) {
		a.n.Add(-1)
	}
}

// queueMetrics exports the queue series of the active queues at each
// scrape.
type queueMetrics struct {
	s                                   *Server
	depth, enqueued, tracked, truncated *prometheus.Desc
}

func (q *queueMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.depth
	ch <- q.enqueued
	ch <- q.tracked
	ch <- q.truncated
}

func (q *queueMetrics) Collect(ch chan<- prometheus.Metric) {
	active := q.s.queues.trim()
	names := make([]string, len(active))
	for i, e := range active {
		names[i] = e.name
		ch <- prometheus.MustNewConstMetric(q.enqueued, prometheus.CounterValue, float64(e.q.enqueued.Load()), e.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), queueStatsBudget)
	defer cancel()
	stats, err := q.stats(ctx, names)
	for _, st := range stats {
		for status, n := range map[string]int64{"pending": st.Pending, "processing": st.Processing, "completed": st.Completed, "failed": st.Failed, "cancelled": st.Cancelled} {
			ch <- prometheus.MustNewConstMetric(q.depth, prometheus.GaugeValue, float64(n), st.Queue, status)
		}
	}
	truncated := 0.0
	if len(stats) < len(names) {
		truncated = 1
		q.s.log.Warn("metrics: the scrape read the depth of only some queues", "read", len(stats), "queues", len(names), "err", err)
	}
	ch <- prometheus.MustNewConstMetric(q.tracked, prometheus.GaugeValue, float64(len(names)))
	ch <- prometheus.MustNewConstMetric(q.truncated, prometheus.GaugeValue, truncated)
}

// stats reads the depth of queues in one grouped call of the queue
// service (one query, one pipeline) within ctx; a call that fails or runs
// out of time leaves the depths out, and the scrape says it was truncated.
func (q *queueMetrics) stats(ctx context.Context, queues []string) ([]backend.QueueStats, error) {
	if len(queues) == 0 {
		return nil, nil
	}
	return q.s.jobs.Stats(ctx, queues...)
}
