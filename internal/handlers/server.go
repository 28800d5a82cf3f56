// Package handlers serves the HTTP API v1 of DESIGN §4 with fasthttp and
// fasthttp/router: it decodes and validates requests, calls the ports and
// maps their errors to statuses through one table (statusOf).
package handlers

import (
	"context"
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
)

// Config wires a Server.
type Config struct {
	Repository backend.RepositoryBackend
	Jobs       backend.JobQueueBackend
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
}

// Server holds the handlers' dependencies.
type Server struct {
	repo    backend.RepositoryBackend
	jobs    backend.JobQueueBackend
	log     *slog.Logger
	metrics *Metrics
	info    Info
	txs     *txManager
	timeout time.Duration
	// polls is the parent of long-poll dequeues only: shutdown ends it so
	// that waiting workers get their 204 at once, while other requests in
	// flight finish normally.
	polls     context.Context
	stopPolls context.CancelFunc
	queues    *activeQueues // the queues /metrics shows
	tracer    trace.Tracer
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
	polls, stopPolls := context.WithCancel(context.Background())
	return &Server{
		repo: cfg.Repository, jobs: cfg.Jobs, log: cfg.Logger, metrics: cfg.Metrics, info: cfg.Info,
		txs:     newTxManager(cfg.TxIdleTimeout, cfg.Logger),
		timeout: cfg.RequestTimeout, polls: polls, stopPolls: stopPolls, tracer: cfg.Tracer,
		queues: newActiveQueues(cfg.MetricsQueues),
	}
}

// StopPolls answers every waiting long poll now; call it when shutting
// down, before draining.
func (s *Server) StopPolls() { s.stopPolls() }

// Close rolls back every open transaction; call it after draining.
func (s *Server) Close() {
	s.stopPolls()
	s.txs.closeAll()
}

// NewFastHTTP returns a fasthttp server for h with storaged's limits.
func NewFastHTTP(h fasthttp.RequestHandler, maxBody int, log *slog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       h,
		Name:                          "storaged",
		MaxRequestBodySize:            maxBody,
		ErrorHandler:                  serverError(log),
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		DisableHeaderNamesNormalizing: false,
		ReadTimeout:                   0, // clients keep connections open between calls
		IdleTimeout:                   5 * time.Minute,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{log},
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

// Handler returns the routed request handler.
func (s *Server) Handler() fasthttp.RequestHandler {
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = false
	r.HandleOPTIONS = false
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		writeErrorBody(ctx, backend.Errorf(backend.CodeNotFound, "no route for %s %s", ctx.Method(), truncate(ctx.Path())))
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, p any) {
		s.log.Error("panic in handler", "path", string(ctx.Path()), "panic", p)
		writeErrorBody(ctx, backend.Errorf(backend.CodeInternal, "internal error"))
	}

	r.POST("/v1/repos/{collection}", s.route("create", s.create))
	r.GET("/v1/repos/{collection}/{id}", s.route("findById", s.findByID))
	r.POST("/v1/repos/{collection}/find", s.route("findMany", s.findMany))
	r.POST("/v1/repos/{collection}/count", s.route("count", s.count))
	r.PATCH("/v1/repos/{collection}/{id}", s.route("update", s.update))
	r.DELETE("/v1/repos/{collection}/{id}", s.route("delete", s.delete))
	r.PUT("/v1/repos/{collection}/indexes/{name}", s.route("ensureIndex", s.ensureIndex))

	r.POST("/v1/tx", s.route("txBegin", s.txBegin))
	r.POST("/v1/tx/{id}/commit", s.route("txCommit", s.txCommit))
	r.POST("/v1/tx/{id}/rollback", s.route("txRollback", s.txRollback))

	r.POST("/v1/queues/{queue}/jobs", s.route("enqueue", s.enqueue))
	r.POST("/v1/queues/{queue}/jobs/batch", s.route("enqueueMany", s.enqueueMany))
	r.POST("/v1/queues/{queue}/dequeue", s.route("dequeue", s.dequeue))
	r.GET("/v1/queues/{queue}/stats", s.route("stats", s.stats))
	r.GET("/v1/queues/{queue}/failed", s.route("listFailed", s.listFailed))
	r.DELETE("/v1/queues/{queue}/failed", s.route("purgeFailed", s.purgeFailed))
	r.GET("/v1/jobs/{id}", s.route("getJob", s.getJob))
	r.POST("/v1/jobs/{id}/ack", s.route("ack", s.ack))
	r.POST("/v1/jobs/{id}/fail", s.route("fail", s.fail))
	r.POST("/v1/jobs/{id}/heartbeat", s.route("heartbeat", s.heartbeat))
	r.POST("/v1/jobs/{id}/cancel", s.route("cancel", s.cancelJob))
	r.POST("/v1/jobs/{id}/retry", s.route("retry", s.retry))

	r.GET("/healthz", s.route("healthz", s.healthz))
	r.GET("/readyz", s.route("readyz", s.readyz))
	r.GET("/metrics", s.metrics.handler())
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
			_, span = s.tracer.Start(parent, "storaged "+name, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.route", name), attribute.String("http.request.method", string(ctx.Method()))))
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
