package handlers

import (
	"bytes"

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

func (s *Server) putSchedule(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	name, err := scheduleName(ctx)
	if err != nil {
		return err
	}
	sp, err := DecodeSchedule(ctx.PostBody())
	if err != nil {
		return err
	}
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	sc, err := s.jobs.PutSchedule(c, queue, name, sp)
	if err != nil {
		return err
	}
	s.seen(queue)
	return writeValue(ctx, fasthttp.StatusOK, sc)
}

func (s *Server) getSchedule(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	name, err := scheduleName(ctx)
	if err != nil {
		return err
	}
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	sc, err := s.jobs.GetSchedule(c, queue, name)
	if err != nil {
		return err
	}
	if sc == nil {
		return backend.Errorf(backend.CodeNotFound, "queue %q has no schedule %q", queue, name)
	}
	return writeValue(ctx, fasthttp.StatusOK, sc)
}

func (s *Server) listSchedules(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	list, err := s.jobs.Schedules(c, queue)
	if err != nil {
		return err
	}
	return writeValue(ctx, fasthttp.StatusOK, list)
}

func (s *Server) deleteSchedule(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	name, err := scheduleName(ctx)
	if err != nil {
		return err
	}
	if err := noBody(ctx); err != nil {
		return err
	}
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	if err := s.jobs.DeleteSchedule(c, queue, name); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}
