package handlers

import (
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
)

// The job routes only translate HTTP to the queue service and back: what
// a call means, validates and answers is the service's (package queue).

func queueName(ctx *fasthttp.RequestCtx) (string, error) {
	return pathParam(ctx.UserValue("queue"))
}

func jobID(ctx *fasthttp.RequestCtx) (string, error) {
	return pathParam(ctx.UserValue("id"))
}

// traceOf is the trace context to keep with a job: the one its enqueue
// options give, else the request's own traceparent header (the caller's
// span, which the client sends with every request), if it is valid; an
// invalid header is ignored, as OpenTelemetry's propagators do.
func traceOf(ctx *fasthttp.RequestCtx, given string) string {
	if given != "" {
		return given
	}
	if tp := string(ctx.Request.Header.Peek("traceparent")); backend.ValidTraceparent(tp) {
		return tp
	}
	return ""
}

// events answers GET /v1/queues/{q}/events?after=&waitMs=&limit=: the
// queue's events after the cursor (from now without one), waiting up to
// waitMs for the first.
func (s *Server) events(ctx *fasthttp.RequestCtx) error {
	name, err := queueName(ctx)
	if err != nil {
		return err
	}
	args := ctx.QueryArgs()
	var p queue.EventsParams
	p.After = string(args.Peek("after"))
	if args.Has("after") && p.After == "" {
		return backend.Errorf(backend.CodeInvalidArgument, "after must not be empty (leave it out to read from now)")
	}
	if v := args.Peek("waitMs"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || time.Duration(n)*time.Millisecond > backend.MaxWait {
			return backend.Errorf(backend.CodeInvalidArgument, "waitMs must be between 0 and %d", backend.MaxWait.Milliseconds())
		}
		p.Wait = time.Duration(n) * time.Millisecond
	}
	if v := args.Peek("limit"); len(v) > 0 {
		if p.Limit, err = strconv.Atoi(string(v)); err != nil || p.Limit < 1 || p.Limit > backend.MaxEventLimit {
			return backend.Errorf(backend.CodeInvalidArgument, "limit must be between 1 and %d", backend.MaxEventLimit)
		}
	}
	c, done := s.pollCtx(ctx, p.Wait)
	defer done()
	page, err := s.jobs.Events(c, name, p)
	if err != nil {
		return err
	}
	return writeValue(ctx, fasthttp.StatusOK, page)
}

// seen marks a queue as used, for the queue series of /metrics.
func (s *Server) seen(queue string) *queueActivity { return s.queues.use(queue) }

func (s *Server) enqueue(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	p, err := DecodeEnqueue(ctx.PostBody())
	if err != nil {
		return err
	}
	p.Traceparent = traceOf(ctx, p.Traceparent)
	jobs, done, err := s.jobsIn(ctx)
	if err != nil {
		return err
	}
	defer done()
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	res, err := jobs.Enqueue(c, queue, []backend.EnqueueParams{p})
	if err != nil {
		return err
	}
	s.seen(queue)
	body := `{"id":"` + res[0].ID + `"`
	if res[0].Deduplicated {
		body += `,"deduplicated":true`
	}
	writeJSON(ctx, fasthttp.StatusCreated, []byte(body+"}"))
	return nil
}

func (s *Server) enqueueMany(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	ps, err := DecodeEnqueueBatch(ctx.PostBody())
	if err != nil {
		return err
	}
	for i := range ps {
		ps[i].Traceparent = traceOf(ctx, ps[i].Traceparent)
	}
	jobs, done, err := s.jobsIn(ctx)
	if err != nil {
		return err
	}
	defer done()
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	res, err := jobs.Enqueue(c, queue, ps)
	if err != nil {
		return err
	}
	s.seen(queue)
	out := struct {
		IDs []string `json:"ids"`
		// Deduplicated, present when a job was, says which (issue 16).
		Deduplicated []bool `json:"deduplicated,omitempty"`
	}{IDs: make([]string, len(res))}
	for i, r := range res {
		out.IDs[i] = r.ID
		if r.Deduplicated && out.Deduplicated == nil {
			out.Deduplicated = make([]bool, len(res))
		}
		if out.Deduplicated != nil {
			out.Deduplicated[i] = r.Deduplicated
		}
	}
	return writeValue(ctx, fasthttp.StatusCreated, out)
}

func (s *Server) dequeue(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	p, many, err := DecodeDequeue(ctx.PostBody())
	if err != nil {
		return err
	}
	c, done := s.pollCtx(ctx, p.Wait)
	defer done()
	jobs, err := s.jobs.Dequeue(c, queue, p)
	if err != nil {
		return err
	}
	s.seen(queue)
	if len(jobs) > 0 && clientGone(ctx.Conn()) {
		// The answer cannot be delivered: hand the claims back at once
		// rather than let the jobs sit out their leases with an attempt
		// spent.
		s.jobs.ReleaseUndelivered(jobs)
		jobs = nil
	}
	switch {
	case len(jobs) == 0:
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	case many:
		writeJSON(ctx, fasthttp.StatusOK, backend.AppendJobsJSON(make([]byte, 0, 512*len(jobs)), jobs))
		return nil
	}
	writeJSON(ctx, fasthttp.StatusOK, backend.AppendJobJSON(make([]byte, 0, 512), jobs[0]))
	return nil
}

func (s *Server) getJob(ctx *fasthttp.RequestCtx) error {
	id, err := jobID(ctx)
	if err != nil {
		return err
	}
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	job, err := s.jobs.Get(c, id)
	if err != nil {
		return err
	}
	if job == nil {
		return backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	}
	return writeValue(ctx, fasthttp.StatusOK, job)
}

// wait serves POST /v1/jobs/{id}/wait: 200 the job once it is finished,
// 204 if it is still pending or processing after waitMs.
func (s *Server) wait(ctx *fasthttp.RequestCtx) error {
	id, err := jobID(ctx)
	if err != nil {
		return err
	}
	wait, err := DecodeWait(ctx.PostBody())
	if err != nil {
		return err
	}
	c, done := s.pollCtx(ctx, wait)
	defer done()
	job, err := s.jobs.Wait(c, id, wait)
	if err != nil {
		return err
	}
	if job == nil {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	}
	return writeValue(ctx, fasthttp.StatusOK, job)
}

// settleFunc is a settle call of the service or of a transaction's queue
// (jobCalls.Ack, for one).
type settleFunc[T any] func(j jobCalls, ctx context.Context, items []T) ([]error, error)

// settleOne serves POST /v1/jobs/{id}/<call>: one item, 204 or its error.
func settleOne[T any](s *Server, call string, of func(settleBody) (T, error), settle settleFunc[T]) handlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		id, err := jobID(ctx)
		if err != nil {
			return err
		}
		item, err := decodeOne(call, id, ctx.PostBody(), of)
		if err != nil {
			return err
		}
		jobs, done, err := s.jobsIn(ctx)
		if err != nil {
			return err
		}
		defer done()
		c, cancel := s.callCtx(ctx, 0)
		defer cancel()
		outcomes, err := settle(jobs, c, []T{item})
		if err == nil {
			err = outcomes[0]
		}
		if err != nil {
			return err
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	}
}

// settleMany serves POST /v1/jobs/<call> (DESIGN §3a): an array of items,
// 200 with one outcome per item in order, null or the error body's
// {"code", "message"}.
func settleMany[T any](s *Server, call string, of func(settleBody) (T, error), settle settleFunc[T]) handlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		items, err := decodeMany(call, ctx.PostBody(), of)
		if err != nil {
			return err
		}
		jobs, done, err := s.jobsIn(ctx)
		if err != nil {
			return err
		}
		defer done()
		c, cancel := s.callCtx(ctx, 0)
		defer cancel()
		outcomes, err := settle(jobs, c, items)
		if err != nil {
			return err
		}
		out := make([]*errorDetail, len(outcomes))
		for i, o := range outcomes {
			if o != nil {
				out[i] = s.detail(ctx, o)
			}
		}
		return writeValue(ctx, fasthttp.StatusOK, out)
	}
}

// noBody refuses a body on calls that take none, so that a client sending
// options we do not know learns it.
func noBody(ctx *fasthttp.RequestCtx) error {
	_, err := noBodyOf(ctx.PostBody())
	return err
}

// noBodyOf is noBody as a body decoder.
func noBodyOf(b []byte) (none, error) {
	var empty struct{}
	return none{}, decodeStrict(b, &empty)
}

// byID serves the calls on one job that take no body: cancel, retry.
func (s *Server) byID(call func(context.Context, string) error) handlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		return serve(s, ctx, jobNoBody, noResult(call), fasthttp.StatusNoContent)
	}
}

// jobNoBody reads the job id of the path and refuses a body.
func jobNoBody(ctx *fasthttp.RequestCtx) (string, error) {
	id, err := jobID(ctx)
	if err != nil {
		return "", err
	}
	return id, noBody(ctx)
}

func (s *Server) stats(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, queueOnly, func(c context.Context, queue string) (backend.QueueStats, error) {
		st, err := s.jobs.Stats(c, queue)
		if err != nil {
			return backend.QueueStats{}, err
		}
		return st[0], nil
	}, fasthttp.StatusOK)
}

// failedPage reads GET /v1/queues/{q}/failed?limit=&offset=.
func failedPage(ctx *fasthttp.RequestCtx) (inPath[backend.ListParams], error) {
	var in inPath[backend.ListParams]
	var err error
	if in.name, err = queueName(ctx); err != nil {
		return in, err
	}
	args := ctx.QueryArgs()
	in.body, err = pageParams(args.Peek("limit"), args.Peek("offset"))
	return in, err
}

func (s *Server) listFailed(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, failedPage, func(c context.Context, in inPath[backend.ListParams]) ([]*backend.Job, error) {
		return s.jobs.ListFailed(c, in.name, in.body)
	}, fasthttp.StatusOK)
}

// purged is the answer of DELETE /v1/queues/{q}/failed.
type purged struct {
	Purged int `json:"purged"`
}

func (s *Server) purgeFailed(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, queueNoBody, func(c context.Context, queue string) (purged, error) {
		n, err := s.jobs.PurgeFailed(c, queue)
		return purged{n}, err
	}, fasthttp.StatusOK)
}

// writeValue answers with v as JSON.
func writeValue(ctx *fasthttp.RequestCtx, status int, v any) error {
	b, err := backend.Marshal(v)
	if err != nil {
		return err
	}
	writeJSON(ctx, status, b)
	return nil
}
