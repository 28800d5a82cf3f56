package handlers

import (
	"bytes"
	"context"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

// Flow control routes (issue 16): GET/PUT /v1/queues/{q}/settings,
// POST /v1/queues/{q}/pause and /resume.

type rateLimitBody struct {
	Max        *float64 `json:"max"`
	DurationMs *float64 `json:"durationMs"`
}

type settingsBody struct {
	Paused      *bool          `json:"paused"`
	Concurrency *float64       `json:"concurrency"`
	RateLimit   *rateLimitBody `json:"rateLimit"`
}

// DecodeSettings decodes the body of PUT /v1/queues/{q}/settings: every
// setting left out (or null) is "no limit" and not paused, since a PUT
// replaces the settings.
func DecodeSettings(b []byte) (backend.QueueSettings, error) {
	var s backend.QueueSettings
	if len(bytes.TrimSpace(b)) == 0 {
		return s, backend.Errorf(backend.CodeInvalidArgument, `the body must be the settings: {"paused": bool, "concurrency": int|null, "rateLimit": {"max": int, "durationMs": int}|null}`)
	}
	var body settingsBody
	if err := decodeStrict(b, &body); err != nil {
		return s, err
	}
	if body.Paused != nil {
		s.Paused = *body.Paused
	}
	if body.Concurrency != nil {
		n, err := backend.IntInRange("concurrency", *body.Concurrency, 1, backend.MaxConcurrency)
		if err != nil {
			return s, err
		}
		s.Concurrency = &n
	}
	if r := body.RateLimit; r != nil {
		if r.Max == nil || r.DurationMs == nil {
			return s, backend.Errorf(backend.CodeInvalidArgument, "rateLimit needs max and durationMs")
		}
		m, err := backend.IntInRange("rateLimit.max", *r.Max, 1, backend.MaxRateMax)
		if err != nil {
			return s, err
		}
		d, err := backend.IntInRange("rateLimit.durationMs", *r.DurationMs, 1, int(backend.MaxRateWindow.Milliseconds()))
		if err != nil {
			return s, err
		}
		s.RateLimit = &backend.RateLimit{Max: m, DurationMs: int64(d)}
	}
	return s, nil
}

var settingsReq = queueAnd(DecodeSettings)

func (s *Server) getSettings(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, queueOnly, s.jobs.Settings, fasthttp.StatusOK)
}

func (s *Server) putSettings(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, settingsReq, func(c context.Context, in inPath[backend.QueueSettings]) (backend.QueueSettings, error) {
		set, err := s.jobs.Configure(c, in.name, in.body)
		if err != nil {
			return set, err
		}
		s.seen(in.name)
		return set, nil
	}, fasthttp.StatusOK)
}

func (s *Server) pauseQueue(paused bool) handlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		call := s.jobs.Resume
		if paused {
			call = s.jobs.Pause
		}
		return serve(s, ctx, queueNoBody, noResult(call), fasthttp.StatusNoContent)
	}
}
