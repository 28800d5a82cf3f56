package handlers

import (
	"bytes"
	"errors"
	"io"
	"math"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// The decoders of the job routes read JSON into the service's params: they
// check shapes and types (an integer where one is due, no unknown keys)
// and leave every rule about values to the queue service, which applies
// each once.

type backoffBody struct {
	Type       string   `json:"type"`
	DelayMs    *float64 `json:"delayMs"`
	MaxDelayMs *float64 `json:"maxDelayMs"`
}

type enqueueBody struct {
	Data        json.RawMessage `json:"data"`
	RunAt       *string         `json:"runAt"`
	DelayMs     *float64        `json:"delayMs"`
	Priority    *float64        `json:"priority"`
	MaxAttempts *float64        `json:"maxAttempts"`
	Backoff     *backoffBody    `json:"backoff"`
	Key         *string         `json:"key"`
	Unique      *uniqueBody     `json:"unique"`
	TimeoutMs   *float64        `json:"timeoutMs"`
	Traceparent *string         `json:"traceparent"`
}

// uniqueBody is enqueue's unique option (issue 16).
type uniqueBody struct {
	Key      *string  `json:"key"`
	States   []string `json:"states"`
	PeriodMs *float64 `json:"periodMs"`
	Mode     *string  `json:"mode"`
}

func (u *uniqueBody) toParams() (*backend.Unique, error) {
	out := &backend.Unique{}
	if u.Key == nil || *u.Key == "" {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "unique.key is required")
	}
	out.Key = *u.Key
	if u.States != nil && len(u.States) == 0 {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "unique.states must not be empty (leave it out for pending and processing)")
	}
	for _, s := range u.States {
		out.States = append(out.States, backend.JobStatus(s))
	}
	var err error
	if out.Period, err = ms("unique.periodMs", u.PeriodMs); err != nil {
		return nil, err
	}
	if u.Mode != nil {
		if *u.Mode == "" {
			return nil, backend.Errorf(backend.CodeInvalidArgument, `unique.mode must be "keep", "replace" or "debounce"`)
		}
		out.Mode = backend.UniqueMode(*u.Mode)
	}
	return out, nil
}

// wide is the range a JSON number may have before the service's own rules
// judge it: what fits the Go types without overflow.
const wide = math.MaxInt64 / int(time.Millisecond)

func ms(name string, v *float64) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	n, err := backend.IntInRange(name, *v, -wide, wide)
	return time.Duration(n) * time.Millisecond, err
}

func integer(name string, v *float64) (int, error) {
	if v == nil {
		return 0, nil
	}
	return backend.IntInRange(name, *v, math.MinInt64>>1, math.MaxInt64>>1)
}

func (e *enqueueBody) toParams() (backend.EnqueueParams, error) {
	var p backend.EnqueueParams
	p.Data = e.Data
	if e.RunAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *e.RunAt)
		if err != nil {
			return p, backend.Errorf(backend.CodeInvalidArgument, "runAt must be an RFC 3339 time such as 2026-01-02T15:04:05.000Z")
		}
		p.RunAt, p.RunAtGiven = t, true
	}
	var err error
	if p.Delay, err = ms("delayMs", e.DelayMs); err != nil {
		return p, err
	}
	if e.RunAt != nil && e.DelayMs != nil {
		return p, backend.Errorf(backend.CodeInvalidArgument, "give runAt or delayMs, not both")
	}
	if p.Priority, err = integer("priority", e.Priority); err != nil {
		return p, err
	}
	if p.MaxAttempts, err = integer("maxAttempts", e.MaxAttempts); err != nil {
		return p, err
	}
	if e.MaxAttempts != nil && p.MaxAttempts == 0 {
		// Zero means "the default" in EnqueueParams; on the wire it is a
		// number out of range.
		return p, backend.ErrMaxAttempts
	}
	if e.Backoff != nil {
		if e.Backoff.Type == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, `backoff.type is required ("exponential" or "fixed")`)
		}
		p.Backoff.Type = backend.BackoffType(e.Backoff.Type)
		d, err := ms("backoff.delayMs", e.Backoff.DelayMs)
		if err != nil {
			return p, err
		}
		if e.Backoff.DelayMs == nil {
			d = backend.DefaultBackoffBase
		}
		c, err := ms("backoff.maxDelayMs", e.Backoff.MaxDelayMs)
		if err != nil {
			return p, err
		}
		p.Backoff.DelayMs, p.Backoff.MaxDelayMs = d.Milliseconds(), c.Milliseconds()
	}
	if e.Key != nil {
		if *e.Key == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, "key must not be empty")
		}
		p.Key = *e.Key
	}
	if e.Unique != nil {
		if e.Key != nil {
			return p, backend.Errorf(backend.CodeInvalidArgument, "give key or unique, not both")
		}
		if p.Unique, err = e.Unique.toParams(); err != nil {
			return p, err
		}
	}
	if p.Timeout, err = ms("timeoutMs", e.TimeoutMs); err != nil {
		return p, err
	}
	if e.TimeoutMs != nil && p.Timeout == 0 {
		// Zero means "none" in EnqueueParams; on the wire it is out of range.
		return p, backend.Errorf(backend.CodeInvalidArgument, "timeoutMs must be between 1 and %d", backend.MaxJobTimeout.Milliseconds())
	}
	if e.Traceparent != nil {
		if *e.Traceparent == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, "traceparent must not be empty (leave it out for none)")
		}
		p.Traceparent = *e.Traceparent
	}
	return p, nil
}

// DecodeEnqueue decodes the body of POST /v1/queues/{q}/jobs.
func DecodeEnqueue(b []byte) (backend.EnqueueParams, error) {
	var body enqueueBody
	if err := decodeStrict(b, &body); err != nil {
		return backend.EnqueueParams{}, err
	}
	return body.toParams()
}

// decodeArray splits a JSON array body into its raw items.
func decodeArray(b []byte, what string) ([]json.RawMessage, error) {
	if err := checkBody(b); err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "request body must be a JSON array of %s", what)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "request body is not valid JSON")
	}
	return raws, nil
}

// eachItem decodes every item of a batch with decode, naming the item of
// any error.
func eachItem[T any](raws []json.RawMessage, decode func([]byte) (T, error)) ([]T, error) {
	out := make([]T, len(raws))
	for i, raw := range raws {
		v, err := decode(raw)
		if err != nil {
			be := backend.AsError(err)
			return nil, backend.Errorf(be.Code, "item %d: %s", i, be.Message)
		}
		out[i] = v
	}
	return out, nil
}

// DecodeEnqueueBatch decodes the body of POST /v1/queues/{q}/jobs/batch: a
// JSON array of enqueue bodies, in one pass (one check of the body and one
// decoder, instead of a split into items and a check and a decoder for
// each: a quarter of the daemon's time in an enqueueMany of 1 000 jobs).
// A body that does not decode, or holds an item that is not an object, is
// decoded again item by item, so that the error names the item as before.
func DecodeEnqueueBatch(b []byte) ([]backend.EnqueueParams, error) {
	if err := checkBody(b); err != nil {
		return nil, err
	}
	if items, ok := decodeObjects[enqueueBody](b); ok {
		out := make([]backend.EnqueueParams, len(items))
		for i, item := range items {
			p, err := item.toParams()
			if err != nil {
				be := backend.AsError(err)
				return nil, backend.Errorf(be.Code, "item %d: %s", i, be.Message)
			}
			out[i] = p
		}
		return out, nil
	}
	raws, err := decodeArray(b, "jobs")
	if err != nil {
		return nil, err
	}
	return eachItem(raws, DecodeEnqueue)
}

// decodeObjects decodes a checked JSON array of objects strictly (no
// unknown keys, nothing after the array); ok is false for anything else,
// a null item included, which the caller's item-by-item path then names.
func decodeObjects[T any](b []byte) (items []*T, ok bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&items); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false
	}
	for _, item := range items {
		if item == nil {
			return nil, false
		}
	}
	return items, true
}

// DecodeDequeue decodes {waitMs, leaseMs, max}; many tells whether max was
// given (the answer is then an array).
func DecodeDequeue(b []byte) (p backend.DequeueParams, many bool, err error) {
	var body struct {
		WaitMs  *float64 `json:"waitMs"`
		LeaseMs *float64 `json:"leaseMs"`
		Max     *float64 `json:"max"`
	}
	if err := decodeStrict(b, &body); err != nil {
		return p, false, err
	}
	if p.Wait, err = ms("waitMs", body.WaitMs); err != nil {
		return p, false, err
	}
	if p.Lease, err = ms("leaseMs", body.LeaseMs); err != nil {
		return p, false, err
	}
	if body.LeaseMs != nil && p.Lease == 0 {
		return p, false, backend.ErrLeaseMs
	}
	if p.Max, err = integer("max", body.Max); err != nil {
		return p, false, err
	}
	if body.Max != nil && p.Max == 0 {
		return p, false, backend.ErrMax
	}
	return p, body.Max != nil, nil
}

type jobErrorBody struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack"`
}

// settleBody is every settle call's item: {id, lease} and the extras of
// fail and heartbeat. The id comes from the path on single-job routes.
type settleBody struct {
	ID       *string         `json:"id"`
	Lease    string          `json:"lease"`
	LeaseMs  *float64        `json:"leaseMs"`
	Error    *jobErrorBody   `json:"error"`
	Retry    *bool           `json:"retry"`
	Result   json.RawMessage `json:"result"`
	Progress json.RawMessage `json:"progress"`
}

// decodeSettle decodes one item of call; id is the path's (single-job
// routes, where the body carries no id) or "" (batches, where it must).
func decodeSettle(call, id string, b []byte) (settleBody, error) {
	var body settleBody
	if err := decodeStrict(b, &body); err != nil {
		return body, err
	}
	return body, body.check(call, id)
}

// check applies the rules of one item of call that JSON types cannot say.
func (body *settleBody) check(call, id string) error {
	switch {
	case id == "" && body.ID == nil:
		return backend.Errorf(backend.CodeInvalidArgument, "id is required")
	case id != "" && body.ID != nil:
		return backend.Errorf(backend.CodeInvalidArgument, "the job id is in the path; the body takes no id")
	case id != "":
		body.ID = &id
	}
	extra := ""
	switch {
	case body.LeaseMs != nil && call != "heartbeat" && call != "progress":
		extra = "leaseMs"
	case body.Error != nil && call != "fail":
		extra = "error"
	case body.Retry != nil && call != "fail":
		extra = "retry"
	case body.Result != nil && call != "ack":
		extra = "result"
	case body.Progress != nil && call != "progress":
		extra = "progress"
	}
	if extra != "" {
		return backend.Errorf(backend.CodeInvalidArgument, "%s does not apply to %s", extra, call)
	}
	return nil
}

// decodeSettleBatch decodes the array of a settle-many call in one pass
// (the batch is the hot path of every worker); a body that does not
// decode is decoded again item by item, so that the error names the item.
func decodeSettleBatch(call string, b []byte) ([]settleBody, error) {
	if err := checkBody(b); err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "request body must be a JSON array of claims")
	}
	var items []settleBody
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&items); err != nil || dec.More() {
		raws, err := decodeArray(b, "claims")
		if err != nil {
			return nil, err
		}
		return eachItem(raws, func(x []byte) (settleBody, error) { return decodeSettle(call, "", x) })
	}
	for i := range items {
		if err := items[i].check(call, ""); err != nil {
			return nil, backend.Errorf(backend.CodeInvalidArgument, "item %d: %s", i, backend.AsError(err).Message)
		}
	}
	return items, nil
}

// The settle calls' items, from their decoded bodies.

func refOf(body settleBody) (backend.LeaseRef, error) {
	return backend.LeaseRef{ID: *body.ID, Lease: body.Lease, Result: body.Result}, nil
}

func progressOf(body settleBody) (backend.ProgressParams, error) {
	h, err := heartbeatOf(body)
	return backend.ProgressParams{ID: h.ID, Lease: h.Lease, Extend: h.Extend, Progress: body.Progress}, err
}

func failOf(body settleBody) (backend.FailParams, error) {
	p := backend.FailParams{ID: *body.ID, Lease: body.Lease, Retry: true}
	if body.Retry != nil {
		p.Retry = *body.Retry
	}
	if body.Error != nil {
		p.Error = backend.JobError{Name: body.Error.Name, Message: body.Error.Message, Stack: body.Error.Stack}
	}
	return p, nil
}

func heartbeatOf(body settleBody) (backend.HeartbeatParams, error) {
	ext, err := ms("leaseMs", body.LeaseMs)
	if err != nil {
		return backend.HeartbeatParams{}, err
	}
	if body.LeaseMs != nil && ext == 0 {
		return backend.HeartbeatParams{}, backend.ErrLeaseMs
	}
	return backend.HeartbeatParams{ID: *body.ID, Lease: body.Lease, Extend: ext}, nil
}

// decodeOne decodes the body of POST /v1/jobs/{id}/<call>.
func decodeOne[T any](call, id string, b []byte, of func(settleBody) (T, error)) (T, error) {
	body, err := decodeSettle(call, id, b)
	if err != nil {
		var zero T
		return zero, err
	}
	return of(body)
}

// decodeMany decodes the body of POST /v1/jobs/<call>.
func decodeMany[T any](call string, b []byte, of func(settleBody) (T, error)) ([]T, error) {
	bodies, err := decodeSettleBatch(call, b)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(bodies))
	for i, body := range bodies {
		if out[i], err = of(body); err != nil {
			if len(bodies) > 1 {
				return nil, backend.Errorf(backend.CodeInvalidArgument, "item %d: %s", i, backend.AsError(err).Message)
			}
			return nil, err
		}
	}
	return out, nil
}

// DecodeRef decodes the {lease} of ack and release.
func DecodeRef(call, id string, b []byte) (backend.LeaseRef, error) {
	return decodeOne(call, id, b, refOf)
}

// DecodeFail decodes {lease, error: {name, message, stack}, retry}.
func DecodeFail(id string, b []byte) (backend.FailParams, error) {
	return decodeOne("fail", id, b, failOf)
}

// DecodeHeartbeat decodes {lease, leaseMs}.
func DecodeHeartbeat(id string, b []byte) (backend.HeartbeatParams, error) {
	return decodeOne("heartbeat", id, b, heartbeatOf)
}

// DecodeWait decodes the {waitMs} of POST /v1/jobs/{id}/wait.
func DecodeWait(b []byte) (time.Duration, error) {
	var body struct {
		WaitMs *float64 `json:"waitMs"`
	}
	if err := decodeStrict(b, &body); err != nil {
		return 0, err
	}
	return ms("waitMs", body.WaitMs)
}
