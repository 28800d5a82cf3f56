package handlers_test

import (
	"io"
	"log/slog"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/handlers"
)

// FuzzRequest sends arbitrary methods, paths and bodies through the whole
// router: the answer is never a 5xx, and every error carries the DESIGN
// body. Seeds: testdata/fuzz/FuzzRequest.
func FuzzRequest(f *testing.F) {
	f.Add("POST", "/v1/repos/c", []byte(`{"a":1}`))
	f.Add("POST", "/v1/repos/c/find", []byte(`{"filter":{"a":{"$gt":1}}}`))
	f.Add("POST", "/v1/queues/q/jobs", []byte(`{"data":1,"delayMs":5}`))
	f.Add("POST", "/v1/queues/q/dequeue", []byte(`{"leaseMs":10}`))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		// A fresh daemon per input: a transaction one input begins must
		// not hold the writer for the next, and long polls answer at once.
		api := handlers.New(handlers.Config{Repository: memory.NewRepositoryBackend(), Jobs: queue.New(queue.Config{Store: memory.NewJobStore()}), Logger: log})
		defer api.Close()
		api.StopPolls()
		h := api.Handler()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		ctx.Request.SetBody(body)
		h(&ctx)
		status := ctx.Response.StatusCode()
		if status >= 500 {
			t.Fatalf("%s %q %q: status %d %s", method, path, body, status, ctx.Response.Body())
		}
		if status >= 400 {
			var e struct {
				Error struct {
					Code    backend.Code `json:"code"`
					Message string       `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(ctx.Response.Body(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%d without the error body: %q", status, ctx.Response.Body())
			}
		}
	})
}

// FuzzDecodeEnqueue: request decoding accepts only what validates.
func FuzzDecodeEnqueue(f *testing.F) {
	f.Add([]byte(`{"data":{"x":1},"priority":3,"maxAttempts":2,"backoff":{"type":"fixed","delayMs":10},"key":"k"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := handlers.DecodeEnqueue(body)
		if err == nil {
			err = p.Validate() // what the queue service applies next
		}
		if err != nil {
			if backend.ErrorCode(err) != backend.CodeInvalidArgument {
				t.Fatalf("code %s", backend.ErrorCode(err))
			}
			return
		}
		if p.MaxAttempts < 1 || p.Delay < 0 || (p.Backoff.Type != backend.BackoffFixed && p.Backoff.Type != backend.BackoffExponential) {
			t.Fatalf("accepted invalid params %+v", p)
		}
		if !json.Valid(p.Data) {
			t.Fatalf("accepted invalid data %q", p.Data)
		}
	})
}

// FuzzDecodeSettings: the settings decoder accepts only what validates.
// Seeds: testdata/fuzz/FuzzDecodeSettings.
func FuzzDecodeSettings(f *testing.F) {
	f.Add([]byte(`{"paused":true,"concurrency":3,"rateLimit":{"max":10,"durationMs":1000}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := handlers.DecodeSettings(body)
		if err == nil {
			err = s.Validate()
			if err != nil {
				t.Fatalf("decoded settings %+v do not validate: %v", s, err)
			}
			return
		}
		if backend.ErrorCode(err) != backend.CodeInvalidArgument {
			t.Fatalf("code %s", backend.ErrorCode(err))
		}
	})
}

// FuzzDecodeSchedule: a schedule body either decodes into a spec the
// service accepts or refuses, or is refused itself, always with
// invalid_argument. Seeds: testdata/fuzz/FuzzDecodeSchedule.
func FuzzDecodeSchedule(f *testing.F) {
	f.Add([]byte(`{"cron":"*/5 * * * *","tz":"Europe/Paris","data":{"x":1},"overlap":"skip","backfillMs":60000}`))
	svc := queue.New(queue.Config{Store: memory.NewJobStore()})
	f.Fuzz(func(t *testing.T, body []byte) {
		sp, err := handlers.DecodeSchedule(body)
		if err == nil {
			_, err = svc.PutSchedule(t.Context(), "q", "s", sp)
		}
		if err != nil && backend.ErrorCode(err) != backend.CodeInvalidArgument {
			t.Fatalf("code %s: %v", backend.ErrorCode(err), err)
		}
	})
}
