package handlers

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Metrics are the Prometheus series the daemon exports on /metrics.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.HistogramVec
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
	m.enqueued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storaged_jobs_enqueued_total", Help: "Jobs accepted by enqueue, by queue (dedupe hits included).",
	}, []string{"queue"})
	m.completed = prometheus.NewCounter(prometheus.CounterOpts{Name: "storaged_jobs_completed_total", Help: "Jobs acknowledged."})
	m.failed = prometheus.NewCounter(prometheus.CounterOpts{Name: "storaged_jobs_failed_total", Help: "Fail calls (retried or dead-lettered)."})
	m.reg.MustRegister(m.requests, m.enqueued, m.completed, m.failed,
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

// RegisterMetrics adds the server's own gauges (open transactions).
func (s *Server) RegisterMetrics(m *Metrics) {
	m.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "storaged_open_transactions", Help: "Transactions held open by clients.",
	}, func() float64 { return float64(s.txs.open()) }))
}
