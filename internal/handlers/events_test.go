package handlers_test

import (
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/handlers"
)

// TestJobOptionsAndEvents: the wire of issue 17's rest — timeoutMs and
// traceparent on enqueue (the request's traceparent header when the
// body has none), and GET /v1/queues/{q}/events with its refusals.
func TestJobOptionsAndEvents(t *testing.T) {
	d := start(t, time.Minute)
	head := d.do(t, "GET", "/v1/queues/ev/events", "").want(t, 200).json(t)
	if evs := head["events"].([]any); len(evs) != 0 || head["next"] == "" {
		t.Fatalf("the first read: %v", head)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const hdr = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	a := d.do(t, "POST", "/v1/queues/ev/jobs", `{"data":1,"timeoutMs":1500,"traceparent":"`+tp+`"}`, "traceparent", hdr).want(t, 201).json(t)["id"]
	b := d.do(t, "POST", "/v1/queues/ev/jobs", `{"data":2}`, "traceparent", hdr).want(t, 201).json(t)["id"]
	c := d.do(t, "POST", "/v1/queues/ev/jobs", `{"data":3}`, "traceparent", "garbage").want(t, 201).json(t)["id"]
	d.do(t, "POST", "/v1/queues/ev/jobs/batch", `[{"data":4,"timeoutMs":9},{"data":5}]`, "traceparent", hdr).want(t, 201)
	for _, w := range []struct {
		id      any
		timeout any
		trace   any
	}{{a, 1500.0, tp}, {b, nil, hdr}, {c, nil, nil}} {
		j := d.do(t, "GET", "/v1/jobs/"+w.id.(string), "").want(t, 200).json(t)
		if j["timeoutMs"] != w.timeout || j["traceparent"] != w.trace {
			t.Fatalf("job %v: timeoutMs %v, traceparent %v; want %v, %v", w.id, j["timeoutMs"], j["traceparent"], w.timeout, w.trace)
		}
	}
	claimed := d.do(t, "POST", "/v1/queues/ev/dequeue", `{}`).want(t, 200).json(t)
	if claimed["id"] != a || claimed["timeoutMs"] != 1500.0 || claimed["traceparent"] != tp {
		t.Fatalf("the claim answered %v", claimed)
	}
	for _, bad := range []string{`{"timeoutMs":0}`, `{"timeoutMs":-1}`, `{"timeoutMs":1.5}`, `{"timeoutMs":2147483648}`,
		`{"traceparent":""}`, `{"traceparent":"00-abc"}`, `{"traceparent":5}`} {
		d.do(t, "POST", "/v1/queues/ev/jobs", bad).wantError(t, 400, backend.CodeInvalidArgument)
	}

	page := d.do(t, "GET", "/v1/queues/ev/events?after="+url.QueryEscape(head["next"].(string))+"&limit=3", "").want(t, 200).json(t)
	evs := page["events"].([]any)
	if len(evs) != 3 {
		t.Fatalf("limit 3: %v", page)
	}
	// a started (its enqueue is compacted away), so b comes first.
	if e := evs[0].(map[string]any); e["type"] != "enqueued" || e["jobId"] != b || e["at"] == nil || e["cursor"] == "" {
		t.Fatalf("first event %v", e)
	}
	rest := d.do(t, "GET", "/v1/queues/ev/events?after="+url.QueryEscape(page["next"].(string)), "").want(t, 200).json(t)["events"].([]any)
	if len(rest) != 2 || rest[1].(map[string]any)["type"] != "started" || rest[1].(map[string]any)["jobId"] != a {
		t.Fatalf("the rest: %v", rest)
	}
	for _, bad := range []string{"?after=", "?after=%21%21", "?waitMs=-1", "?waitMs=60001", "?waitMs=x", "?limit=0", "?limit=1001"} {
		d.do(t, "GET", "/v1/queues/ev/events"+bad, "").wantError(t, 400, backend.CodeInvalidArgument)
	}
	d.do(t, "GET", "/v1/queues/b%2Fad/events", "").wantError(t, 400, backend.CodeInvalidArgument)
	tx := d.do(t, "POST", "/v1/tx", "").want(t, 201).json(t)["id"].(string)
	d.do(t, "GET", "/v1/queues/ev/events", "", handlers.TxHeader, tx).wantError(t, 400, backend.CodeInvalidArgument)

	// A long poll answers at the first event.
	next := rest[1].(map[string]any)["cursor"].(string)
	got := make(chan resp, 1)
	go func() { got <- d.do(t, "GET", "/v1/queues/ev/events?waitMs=20000&after="+url.QueryEscape(next), "") }()
	time.Sleep(50 * time.Millisecond)
	d.do(t, "POST", "/v1/jobs/"+a.(string)+"/ack", `{"lease":"`+claimed["lease"].(string)+`","result":"done"}`).want(t, 204)
	e := (<-got).want(t, 200).json(t)["events"].([]any)[0].(map[string]any)
	if e["type"] != "completed" || e["jobId"] != a || e["result"] != "done" || e["attempt"] != 1.0 {
		t.Fatalf("the long poll answered %v", e)
	}
}

// TestSpansLinkTheEnqueuersTrace: the traceparent of the request that
// enqueued a job (header, no body field) is stored with it, and the
// daemon's claim and ack spans link to it.
func TestSpansLinkTheEnqueuersTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(t.Context()) }() // an in-memory exporter: nothing to flush, nothing to report
	jobs := queue.New(queue.Config{Store: memory.NewJobStore(), Tracer: tp.Tracer("storaged")})
	api := handlers.New(handlers.Config{Repository: memory.NewRepositoryBackend(), Jobs: jobs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: tp.Tracer("storaged")})
	defer api.Close()
	h := api.Handler()
	call := func(method, path, body, traceparent string) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		ctx.Request.SetBodyString(body)
		if traceparent != "" {
			ctx.Request.Header.Set("traceparent", traceparent)
		}
		h(&ctx)
		return &ctx
	}
	const enqueuer = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	call("POST", "/v1/queues/t/jobs", `{"data":1}`, enqueuer)
	// The worker's requests belong to another trace.
	const worker = "00-11111111111111111111111111111111-2222222222222222-01"
	res := call("POST", "/v1/queues/t/dequeue", `{}`, worker)
	body := string(res.Response.Body())
	id := between(body, `"id":"`, `"`)
	lease := between(body, `"lease":"`, `"`)
	call("POST", "/v1/jobs/"+id+"/ack", `{"lease":"`+lease+`"}`, worker)
	found := map[string]bool{}
	for _, s := range exp.GetSpans() {
		if s.Name != "queue dequeue" && s.Name != "queue acknowledge" {
			continue
		}
		if s.SpanContext.TraceID().String() != "11111111111111111111111111111111" {
			t.Fatalf("span %q is not in the worker's trace", s.Name)
		}
		for _, l := range s.Links {
			if l.SpanContext.TraceID().String() == "4bf92f3577b34da6a3ce929d0e0e4736" && l.SpanContext.SpanID().String() == "00f067aa0ba902b7" {
				found[s.Name] = true
			}
		}
	}
	if !found["queue dequeue"] || !found["queue acknowledge"] {
		t.Fatalf("links to the enqueuer's span: %v", found)
	}
}

func between(s, from, to string) string {
	_, after, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(after, to)
	return v
}
