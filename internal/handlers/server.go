// Package handlers serves the HTTP API v1 of DESIGN §4 with fasthttp and
// fasthttp/router: it decodes and validates requests, calls the ports and
// maps their errors to statuses through one table (statusOf).
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
)

// Config wires a Server.
type Config struct {
	Repository backend.RepositoryBackend
	Jobs       *queue.Service
	Logger     *slog.Logger
	Metrics    *Metrics
	Info       Info
	// TxIdleTimeout rolls back a transaction nobody used for this long.
	TxIdleTimeout time.Duration
	// RequestTimeout bounds each backend call (a long poll gets its wait
	// on top).
	RequestTimeout time.Duration
	// MaxBodyBytes is also the fasthttp server's limit; see NewFastHTTP.
	MaxBodyBytes int
	// Tracer, if set, records a span per request, continuing the trace of
	// the client's traceparent.
	Tracer trace.Tracer
	// MetricsQueues is how many queues /metrics shows at most (the most
	// recently used); 0 is DefaultMetricsQueues.
	MetricsQueues int
}

// Info is what GET /v1/info shows.
type Info struct {
	Version           string `json:"version"`
	RepositoryBackend string `json:"repositoryBackend"`
	JobQueueBackend   string `json:"jobQueueBackend"`
	StartedAt         string `json:"startedAt"`
	// TransactionalJobs: Storaged-Tx works on enqueue, ack and fail, the
	// job queue being in the transaction's database (DESIGN §4).
	TransactionalJobs bool `json:"transactionalJobs"`
	// JobCapabilities: what the job queue backend honours exactly; what
	// it lacks is refused with 400 (see backend.JobCapabilities).
	JobCapabilities backend.JobCapabilities `json:"jobCapabilities"`
}

// Server holds the handlers' dependencies.
type Server struct {
	repo    backend.RepositoryBackend
	jobs    *queue.Service
	log     *slog.Logger
	metrics *Metrics
	info    Info
	txs     *txManager
	timeout time.Duration
	queues  *activeQueues // the queues /metrics shows
	tracer  trace.Tracer
}

// New builds a Server; Close ends its open transactions.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TxIdleTimeout <= 0 {
		cfg.TxIdleTimeout = 30 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Server{
		repo: cfg.Repository, jobs: cfg.Jobs, log: cfg.Logger, metrics: cfg.Metrics, info: cfg.Info,
		txs:     newTxManager(cfg.TxIdleTimeout, cfg.Logger),
		timeout: cfg.RequestTimeout, tracer: cfg.Tracer,
		queues: newActiveQueues(cfg.MetricsQueues),
	}
	s.info.TransactionalJobs = cfg.Jobs.SharesDatabase(cfg.Repository)
	s.info.JobCapabilities = backend.CapabilitiesOf(cfg.Jobs.Store())
	// The queue service counts enqueues through the metrics' observer;
	// they land on this server's active queues.
	cfg.Metrics.active.Store(s.queues)
	return s
}

// StopPolls answers every waiting long poll now; call it when shutting
// down, before draining (other requests in flight finish normally).
func (s *Server) StopPolls() { s.jobs.StopPolls() }

// Close answers every waiting long poll, rolls back every open
// transaction and refuses new ones. Call it before draining: a write
// waiting behind a transaction (the SQLite writer, the memory writer
// lock, a row lock) then gets its answer instead of holding the drain.
func (s *Server) Close() {
	s.jobs.StopPolls()
	s.txs.closeAll()
}

// Limits bound what connections may hold. A zero field takes its value
// from DefaultLimits.
type Limits struct {
	// MaxBodyBytes: a larger request body is answered 413.
	MaxBodyBytes int
	// MaxConnections: a connection past it is answered 503 and closed at
	// once, so that the daemon stays under its file-descriptor limit.
	MaxConnections int
	// ReadTimeout bounds reading one request, head and body, from its
	// first byte (from the connect, for a connection's first request): a
	// half-sent request cannot hold a connection. A long poll is a
	// handler running, not a read, so it is not cut by this.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response to a peer that does not
	// read it.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for this
	// long; clients keep connections open between calls, so it is long.
	IdleTimeout time.Duration
}

// DefaultLimits are the defaults of the STORAGED_* variables.
var DefaultLimits = Limits{
	MaxBodyBytes:   16 << 20,
	MaxConnections: 4096,
	ReadTimeout:    30 * time.Second,
	WriteTimeout:   30 * time.Second,
	IdleTimeout:    5 * time.Minute,
}

// NewFastHTTP returns a fasthttp server for h with storaged's limits.
func NewFastHTTP(h fasthttp.RequestHandler, l Limits, log *slog.Logger) *fasthttp.Server {
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultLimits.MaxBodyBytes
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultLimits.MaxConnections
	}
	return &fasthttp.Server{
		Handler:                       h,
		Name:                          "storaged",
		MaxRequestBodySize:            l.MaxBodyBytes,
		ErrorHandler:                  serverError(log),
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		DisableHeaderNamesNormalizing: false,
		// Each connection holds one fasthttp worker for its lifetime, so
		// the worker limit is the connection cap; past it fasthttp
		// answers 503 and closes. (MaxConnsPerIP does not apply: a Unix
		// socket peer has no IP.)
		Concurrency:     l.MaxConnections,
		ReadTimeout:     pick(l.ReadTimeout, DefaultLimits.ReadTimeout),
		WriteTimeout:    pick(l.WriteTimeout, DefaultLimits.WriteTimeout),
		IdleTimeout:     pick(l.IdleTimeout, DefaultLimits.IdleTimeout),
		CloseOnShutdown: true,
		Logger:          fasthttpLogger{log},
	}
}

// fasthttpLogger sends fasthttp's own messages (mostly clients that sent
// garbage or hung up) to the debug level.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}

// ctx is the context of one backend call.
func (s *Server) ctx(extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout+extra)
}

// spanKey holds the context of the request's span in the fasthttp
// context, so that the calls a handler makes continue its trace.
const spanKey = "storaged.span"

// callCtx is the context of one call of a handler: under the request's
// span (if tracing), bounded by the request timeout plus extra (a long
// poll's wait).
func (s *Server) callCtx(ctx *fasthttp.RequestCtx, extra time.Duration) (context.Context, context.CancelFunc) {
	parent := context.Background()
	if c, ok := ctx.UserValue(spanKey).(context.Context); ok {
		parent = c
	}
	return context.WithTimeout(parent, s.timeout+extra)
}

// Handler returns the routed request handler.
func (s *Server) Handler() fasthttp.RequestHandler {
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = false
	r.HandleOPTIONS = false
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		// The path as sent: routes match it unresolved (dot segments are
		// ordinary segments), and ctx.Path() would show it resolved.
		writeErrorBody(ctx, backend.Errorf(backend.CodeNotFound, "no route for %s %s", ctx.Method(), truncate(ctx.URI().PathOriginal())))
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, p any) {
		s.log.Error("panic in handler", "path", string(ctx.Path()), "panic", p)
		writeErrorBody(ctx, backend.Errorf(backend.CodeInternal, "internal error"))
	}

	r.GET("/v1/repos", s.route("listCollections", noTx(s.listCollections)))
	r.POST("/v1/repos/{collection}", s.route("create", s.create))
	r.GET("/v1/repos/{collection}/{id}", s.route("findById", s.findByID))
	r.POST("/v1/repos/{collection}/find", s.route("findMany", s.findMany))
	r.POST("/v1/repos/{collection}/count", s.route("count", s.count))
	r.PATCH("/v1/repos/{collection}/{id}", s.route("update", s.update))
	r.DELETE("/v1/repos/{collection}/{id}", s.route("delete", s.delete))
	r.PUT("/v1/repos/{collection}/indexes/{name}", s.route("ensureIndex", s.ensureIndex))
	s.repoRoutesV2(r)

	r.POST("/v1/tx", s.route("txBegin", s.txBegin))
	r.POST("/v1/tx/{id}/commit", s.route("txCommit", s.txCommit))
	r.POST("/v1/tx/{id}/rollback", s.route("txRollback", s.txRollback))

	r.POST("/v1/queues/{queue}/jobs", s.route("enqueue", s.enqueue))
	r.POST("/v1/queues/{queue}/jobs/batch", s.route("enqueueMany", s.enqueueMany))
	r.GET("/v1/queues", s.route("listQueues", noTx(s.listQueues)))
	r.POST("/v1/queues/{queue}/jobs/find", s.route("findJobs", noTx(s.findJobs)))
	r.POST("/v1/queues/{queue}/jobs/retry", s.route("bulkRetry", noTx(s.bulk(queue.BulkRetry))))
	r.POST("/v1/queues/{queue}/jobs/cancel", s.route("bulkCancel", noTx(s.bulk(queue.BulkCancel))))
	r.POST("/v1/queues/{queue}/jobs/delete", s.route("bulkDelete", noTx(s.bulk(queue.BulkDelete))))
	r.POST("/v1/queues/{queue}/dequeue", s.route("dequeue", noTx(s.dequeue)))
	r.GET("/v1/queues/{queue}/stats", s.route("stats", noTx(s.stats)))
	r.GET("/v1/queues/{queue}/events", s.route("events", noTx(s.events)))
	r.GET("/v1/queues/{queue}/failed", s.route("listFailed", noTx(s.listFailed)))
	r.DELETE("/v1/queues/{queue}/failed", s.route("purgeFailed", noTx(s.purgeFailed)))
	r.GET("/v1/queues/{queue}/settings", s.route("getQueueSettings", noTx(s.getSettings)))
	r.PUT("/v1/queues/{queue}/settings", s.route("setQueueSettings", noTx(s.putSettings)))
	r.POST("/v1/queues/{queue}/pause", s.route("pauseQueue", noTx(s.pauseQueue(true))))
	r.POST("/v1/queues/{queue}/resume", s.route("resumeQueue", noTx(s.pauseQueue(false))))
	r.GET("/v1/queues/{queue}/schedules", s.route("listSchedules", noTx(s.listSchedules)))
	r.PUT("/v1/queues/{queue}/schedules/{name}", s.route("putSchedule", noTx(s.putSchedule)))
	r.GET("/v1/queues/{queue}/schedules/{name}", s.route("getSchedule", noTx(s.getSchedule)))
	r.DELETE("/v1/queues/{queue}/schedules/{name}", s.route("deleteSchedule", noTx(s.deleteSchedule)))
	r.GET("/v1/jobs/{id}", s.route("getJob", noTx(s.getJob)))
	r.PATCH("/v1/jobs/{id}", s.route("updateJob", noTx(s.patchJob)))
	r.POST("/v1/jobs/{id}/ack", s.route("ack", settleOne(s, "ack", refOf, jobCalls.Ack)))
	r.POST("/v1/jobs/{id}/fail", s.route("fail", settleOne(s, "fail", failOf, jobCalls.Fail)))
	r.POST("/v1/jobs/{id}/heartbeat", s.route("heartbeat", noTx(settleOne(s, "heartbeat", heartbeatOf, direct(s.jobs.Heartbeat)))))
	r.POST("/v1/jobs/{id}/progress", s.route("progress", noTx(settleOne(s, "progress", progressOf, direct(s.jobs.Progress)))))
	r.POST("/v1/jobs/{id}/wait", s.route("wait", noTx(s.wait)))
	r.POST("/v1/jobs/{id}/release", s.route("release", noTx(settleOne(s, "release", refOf, direct(s.jobs.Release)))))
	r.POST("/v1/jobs/{id}/cancel", s.route("cancel", noTx(s.byID(s.jobs.Cancel))))
	r.POST("/v1/jobs/{id}/retry", s.route("retry", noTx(s.byID(s.jobs.Retry))))
	r.POST("/v1/jobs/ack", s.route("ackMany", settleMany(s, "ack", refOf, jobCalls.Ack)))
	r.POST("/v1/jobs/fail", s.route("failMany", settleMany(s, "fail", failOf, jobCalls.Fail)))
	r.POST("/v1/jobs/heartbeat", s.route("heartbeatMany", noTx(settleMany(s, "heartbeat", heartbeatOf, direct(s.jobs.Heartbeat)))))
	r.POST("/v1/jobs/progress", s.route("progressMany", noTx(settleMany(s, "progress", progressOf, direct(s.jobs.Progress)))))
	r.POST("/v1/jobs/release", s.route("releaseMany", noTx(settleMany(s, "release", refOf, direct(s.jobs.Release)))))

	r.GET("/healthz", s.route("healthz", s.healthz))
	r.GET("/readyz", s.route("readyz", s.readyz))
	r.GET("/metrics", s.metrics.handler())
	// Go's profiler, for operators chasing where the daemon's time goes
	// (`go tool pprof unix:/run/storaged/storaged.sock` does not exist, so:
	// curl --unix-socket ... localhost/debug/pprof/profile?seconds=10 > cpu.out).
	// It reveals nothing a peer allowed on the socket could not read anyway.
	r.GET("/debug/pprof/{name?}", pprofHandler)
	r.GET("/v1/info", s.route("info", s.infoHandler))
	return r.Handler
}

type handlerFunc func(ctx *fasthttp.RequestCtx) error

// route adapts a handler that returns an error, records its metrics and
// logs it: every request at debug level, failures at warn (4xx) or error
// (5xx), with the W3C traceparent the client sent, so that one request can
// be followed from the app into the daemon.
func (s *Server) route(name string, h handlerFunc) fasthttp.RequestHandler {
	obs := s.metrics.route(name)
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		var span trace.Span
		if s.tracer != nil {
			parent := propagation.TraceContext{}.Extract(context.Background(), headerCarrier{ctx})
			var sc context.Context
			sc, span = s.tracer.Start(parent, "storaged "+name, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.route", name), attribute.String("http.request.method", string(ctx.Method()))))
			ctx.SetUserValue(spanKey, sc)
		}
		err := h(ctx)
		if err != nil {
			s.writeError(ctx, err)
		}
		status := ctx.Response.StatusCode()
		d := time.Since(start)
		obs(status, d)
		if span != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, "internal error")
			}
			span.End()
		}
		level := slog.LevelDebug
		if status >= 500 {
			level = slog.LevelError
		} else if status >= 400 && status != 404 {
			level = slog.LevelInfo
		}
		if s.log.Enabled(context.Background(), level) {
			attrs := []slog.Attr{slog.String("route", name), slog.String("method", string(ctx.Method())),
				slog.String("path", truncate(ctx.Path())), slog.Int("status", status), slog.Duration("duration", d)}
			if tp := ctx.Request.Header.Peek("traceparent"); len(tp) > 0 {
				attrs = append(attrs, slog.String("traceparent", truncate(tp)))
			}
			if err != nil {
				attrs = append(attrs, slog.String("error", err.Error()))
				// The driver's words stay here, in the log, never in the answer.
				var be *backend.Error
				if errors.As(err, &be) && be.Cause() != "" {
					attrs = append(attrs, slog.String("cause", be.Cause()))
				}
			}
			s.log.LogAttrs(context.Background(), level, "request", attrs...)
		}
	}
}

// headerCarrier reads W3C trace context from a fasthttp request.
type headerCarrier struct{ ctx *fasthttp.RequestCtx }

func (h headerCarrier) Get(key string) string { return string(h.ctx.Request.Header.Peek(key)) }
func (h headerCarrier) Set(string, string)    {}
func (h headerCarrier) Keys() []string        { return []string{"traceparent", "tracestate"} }

func truncate(b []byte) string {
	if len(b) > 128 {
		return string(b[:128]) + "…"
	}
	return string(b)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// writeRecord answers with a record without copying it: a record is never
// changed once encoded, and a copy of a large one would double what the
// request costs in memory.
func writeRecord(ctx *fasthttp.RequestCtx, status int, rec []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(rec)
}
