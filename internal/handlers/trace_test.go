package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/handlers"
)

// TestSpansContinueTheClientsTrace checks, with an in-process exporter,
// that each request makes a server span under the client's traceparent.
func TestSpansContinueTheClientsTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }() // an in-memory exporter: nothing to flush
	api := handlers.New(handlers.Config{Repository: memory.NewRepositoryBackend(), Jobs: queue.New(queue.Config{Store: memory.NewJobStore()}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: tp.Tracer("storaged")})
	defer api.Close()
	h := api.Handler()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/v1/repos/plans/missing")
	ctx.Request.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h(&ctx)
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.Name != "storaged findById" || s.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("span %q trace %s parent %s", s.Name, s.SpanContext.TraceID(), s.Parent.SpanID())
	}
	var status int64
	for _, a := range s.Attributes {
		if a.Key == "http.response.status_code" {
			status = a.Value.AsInt64()
		}
	}
	if status != 404 {
		t.Fatalf("status attribute %d", status)
	}
}
