package handlers

import (
	"bytes"
	"context"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

// Recurring schedule routes (issue 16): PUT/GET/DELETE
// /v1/queues/{q}/schedules/{name}, GET /v1/queues/{q}/schedules.

type scheduleBody struct {
	Cron        *string         `json:"cron"`
	TZ          *string         `json:"tz"`
	EveryMs     *float64        `json:"everyMs"`
	Data        json.RawMessage `json:"data"`
	Priority    *float64        `json:"priority"`
	MaxAttempts *float64        `json:"maxAttempts"`
	Backoff     *backoffBody    `json:"backoff"`
	Overlap     *string         `json:"overlap"`
	BackfillMs  *float64        `json:"backfillMs"`
}

// DecodeSchedule decodes the body of PUT /v1/queues/{q}/schedules/{name}:
// shapes and types here, every rule about values in the queue service.
func DecodeSchedule(b []byte) (backend.ScheduleSpec, error) {
	var sp backend.ScheduleSpec
	if len(bytes.TrimSpace(b)) == 0 {
		return sp, backend.Errorf(backend.CodeInvalidArgument, `the body must be the schedule: {"cron": "*/5 * * * *", "tz": "Europe/Paris"} or {"everyMs": 60000}, with the job's data, priority, maxAttempts, backoff, overlap and backfillMs`)
	}
	var body scheduleBody
	if err := decodeStrict(b, &body); err != nil {
		return sp, err
	}
	if body.Cron != nil {
		if *body.Cron == "" {
			return sp, backend.Errorf(backend.CodeInvalidArgument, "cron must not be empty")
		}
		sp.Cron = *body.Cron
	}
	if body.TZ != nil {
		if *body.TZ == "" {
			return sp, backend.Errorf(backend.CodeInvalidArgument, "tz must not be empty")
		}
		sp.TZ = *body.TZ
	}
	every, err := ms("everyMs", body.EveryMs)
	if err != nil {
		return sp, err
	}
	if body.EveryMs != nil && every == 0 {
		return sp, backend.Errorf(backend.CodeInvalidArgument, "everyMs must be at least 1000")
	}
	sp.EveryMs = every.Milliseconds()
	// The job's fields decode as an enqueue's.
	job, err := (&enqueueBody{Data: body.Data, Priority: body.Priority, MaxAttempts: body.MaxAttempts, Backoff: body.Backoff}).toParams()
	if err != nil {
		return sp, err
	}
	sp.Data, sp.Priority, sp.MaxAttempts, sp.Backoff = job.Data, job.Priority, job.MaxAttempts, job.Backoff
	if body.Overlap != nil {
		if *body.Overlap == "" {
			return sp, backend.Errorf(backend.CodeInvalidArgument, `overlap must be "skip" or "allow"`)
		}
		sp.Overlap = *body.Overlap
	}
	backfill, err := ms("backfillMs", body.BackfillMs)
	if err != nil {
		return sp, err
	}
	sp.BackfillMs = backfill.Milliseconds()
	return sp, nil
}

func scheduleName(ctx *fasthttp.RequestCtx) (string, error) {
	return pathParam(ctx.UserValue("name"))
}

// inSchedule is what a route on one schedule reads: the queue and the
// schedule's name of its path, and what its body says.
type inSchedule[T any] struct {
	queue, name string
	body        T
}

// scheduleAnd reads the queue and the schedule's name of the path, then
// the body with decode.
func scheduleAnd[T any](decode func([]byte) (T, error)) func(*fasthttp.RequestCtx) (inSchedule[T], error) {
	return func(ctx *fasthttp.RequestCtx) (inSchedule[T], error) {
		var in inSchedule[T]
		var err error
		if in.queue, err = queueName(ctx); err != nil {
			return in, err
		}
		if in.name, err = scheduleName(ctx); err != nil {
			return in, err
		}
		in.body, err = decode(ctx.PostBody())
		return in, err
	}
}

// ignored reads no body (GET routes: a body sent is ignored).
func ignored([]byte) (none, error) { return none{}, nil }

var (
	putScheduleReq    = scheduleAnd(DecodeSchedule)
	getScheduleReq    = scheduleAnd(ignored)
	deleteScheduleReq = scheduleAnd(noBodyOf)
)

func (s *Server) putSchedule(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, putScheduleReq, func(c context.Context, in inSchedule[backend.ScheduleSpec]) (backend.Schedule, error) {
		sc, err := s.jobs.PutSchedule(c, in.queue, in.name, in.body)
		if err != nil {
			return sc, err
		}
		s.seen(in.queue)
		return sc, nil
	}, fasthttp.StatusOK)
}

func (s *Server) getSchedule(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, getScheduleReq, func(c context.Context, in inSchedule[none]) (*backend.Schedule, error) {
		sc, err := s.jobs.GetSchedule(c, in.queue, in.name)
		if err == nil && sc == nil {
			err = backend.Errorf(backend.CodeNotFound, "queue %q has no schedule %q", in.queue, in.name)
		}
		return sc, err
	}, fasthttp.StatusOK)
}

func (s *Server) listSchedules(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, queueOnly, s.jobs.Schedules, fasthttp.StatusOK)
}

func (s *Server) deleteSchedule(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, deleteScheduleReq, noResult(func(c context.Context, in inSchedule[none]) error {
		return s.jobs.DeleteSchedule(c, in.queue, in.name)
	}), fasthttp.StatusNoContent)
}
