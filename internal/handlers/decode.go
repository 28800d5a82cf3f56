package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	stdjson "encoding/json"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// MaxDepth bounds the nesting of request JSON. Real documents are far
// shallower; the bound keeps a hostile body from costing stack and keeps
// every database's own JSON depth limit out of reach.
const MaxDepth = 100

// checkBody rejects what no decoder should see: invalid UTF-8, nesting
// deeper than MaxDepth, and \u escapes of half a UTF-16 surrogate pair
// (which name no character: decoders turn them into U+FFFD without a
// word, and PostgreSQL refuses them). It scans once, skipping string
// contents but for their escapes.
func checkBody(b []byte) error {
	if !utf8.Valid(b) {
		return backend.Errorf(backend.CodeInvalidArgument, "request body is not valid UTF-8")
	}
	depth, inStr := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			if c == '"' {
				inStr = false
			} else if c == '\\' && i+1 < len(b) {
				i++
				if b[i] == 'u' {
					n, err := checkUnicodeEscape(b, i-1)
					if err != nil {
						return err
					}
					i += n - 2
				}
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			if depth > MaxDepth {
				return backend.Errorf(backend.CodeInvalidArgument, "request body is nested deeper than %d levels", MaxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// checkUnicodeEscape checks the \uXXXX escape at b[i:] and returns its
// length: 12 for a surrogate pair, else 6 (or less when the escape is
// malformed, which the decoder then reports). Half a pair is refused.
func checkUnicodeEscape(b []byte, i int) (int, error) {
	r, ok := hex4(b, i+2)
	if !ok {
		return 2, nil
	}
	switch {
	case utf16.IsSurrogate(rune(r)) && r < 0xdc00:
		if lo, ok := hex4(b, i+8); ok && i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' && lo >= 0xdc00 && lo <= 0xdfff {
			return 12, nil
		}
		fallthrough
	case utf16.IsSurrogate(rune(r)):
		return 0, backend.Errorf(backend.CodeInvalidArgument,
			"request body has a lone UTF-16 surrogate escape (%s) in a string: it names no character; send the pair, or the character itself", b[i:i+6])
	}
	return 6, nil
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (uint16, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[i:i+4]), 16, 16)
	return uint16(n), err == nil
}

// decodeObject decodes a JSON object body into a document.
func decodeObject(b []byte, what string) (map[string]any, error) {
	if err := checkBody(b); err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "%s must be a JSON object", what)
	}
	var doc map[string]any
	unmarshal := json.Unmarshal
	if len(b) >= largeBody {
		unmarshal = stdjson.Unmarshal
	}
	if err := unmarshal(b, &doc); err != nil {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "%s is not valid JSON", what)
	}
	return doc, nil
}

// largeBody is the size from which a record is decoded by encoding/json:
// goccy/go-json, twice as fast, first copies its whole input into a
// buffer that its pool then keeps, which for a body of many megabytes
// costs more than the time saved. Both decode every document the same
// way (checkBody has refused what they might differ on).
const largeBody = 64 << 10

// decodeStrict decodes an options body into v, refusing unknown fields so
// that a misspelt option is an error rather than silently ignored. An
// empty body leaves v as it is.
func decodeStrict(b []byte, v any) error {
	if err := checkBody(b); err != nil {
		return err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	if b[0] != '{' {
		return backend.Errorf(backend.CodeInvalidArgument, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return backend.Errorf(backend.CodeInvalidArgument, "request body has data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return backend.Errorf(backend.CodeInvalidArgument, "%s must not be %s", te.Field, te.Value)
	}
	msg := err.Error()
	if i := bytes.Index([]byte(msg), []byte("unknown field")); i >= 0 {
		return backend.Errorf(backend.CodeInvalidArgument, "request body has an %s", msg[i:])
	}
	return backend.Errorf(backend.CodeInvalidArgument, "request body is not valid JSON")
}

// pathParam reads and unescapes a route parameter. The router matches the
// raw path, so an id may carry %2F and still be one segment.
func pathParam(raw any) (string, error) {
	s, _ := raw.(string)
	v, err := url.PathUnescape(s)
	if err != nil {
		return "", backend.Errorf(backend.CodeInvalidArgument, "bad percent-encoding in the path")
	}
	return v, nil
}

// optInt checks an optional JSON number for an integer in [lo, hi].
func optInt(name string, v *float64, lo, hi int, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	return backend.IntInRange(name, *v, lo, hi)
}

func optMs(name string, v *float64, lo, hi time.Duration, def time.Duration) (time.Duration, error) {
	if v == nil {
		return def, nil
	}
	n, err := backend.IntInRange(name, *v, int(lo.Milliseconds()), int(hi.Milliseconds()))
	return time.Duration(n) * time.Millisecond, err
}

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
}

// toParams validates one enqueue body (DESIGN §3) into EnqueueParams.
func (e *enqueueBody) toParams() (backend.EnqueueParams, error) {
	var p backend.EnqueueParams
	p.Data = e.Data
	if e.RunAt != nil {
		if e.DelayMs != nil {
			return p, backend.Errorf(backend.CodeInvalidArgument, "give runAt or delayMs, not both")
		}
		t, err := time.Parse(time.RFC3339Nano, *e.RunAt)
		if err != nil {
			return p, backend.Errorf(backend.CodeInvalidArgument, "runAt must be an RFC 3339 time such as 2026-01-02T15:04:05.000Z")
		}
		p.RunAt, p.RunAtGiven = t, true
	}
	var err error
	if p.Delay, err = optMs("delayMs", e.DelayMs, 0, backend.MaxDelay, 0); err != nil {
		return p, err
	}
	if p.Priority, err = optInt("priority", e.Priority, -1<<31, 1<<31-1, 0); err != nil {
		return p, err
	}
	if p.MaxAttempts, err = optInt("maxAttempts", e.MaxAttempts, 1, 1<<31-1, backend.DefaultMaxAttempts); err != nil {
		return p, err
	}
	if e.Backoff != nil {
		if e.Backoff.Type == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, `backoff.type is required ("exponential" or "fixed")`)
		}
		p.Backoff.Type = backend.BackoffType(e.Backoff.Type)
		d, err := optMs("backoff.delayMs", e.Backoff.DelayMs, 0, backend.MaxDelay, backend.DefaultBackoffBase)
		if err != nil {
			return p, err
		}
		c, err := optMs("backoff.maxDelayMs", e.Backoff.MaxDelayMs, 0, backend.MaxDelay, max(backend.DefaultBackoffCap, d))
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
	return p, p.Validate()
}

// DecodeEnqueue decodes the body of POST /v1/queues/{q}/jobs.
func DecodeEnqueue(b []byte) (backend.EnqueueParams, error) {
	var body enqueueBody
	if err := decodeStrict(b, &body); err != nil {
		return backend.EnqueueParams{}, err
	}
	return body.toParams()
}

// DecodeEnqueueBatch decodes the body of POST /v1/queues/{q}/jobs/batch: a
// JSON array of enqueue bodies.
func DecodeEnqueueBatch(b []byte) ([]backend.EnqueueParams, error) {
	if err := checkBody(b); err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "request body must be a JSON array of jobs")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "request body is not valid JSON")
	}
	if len(raws) == 0 || len(raws) > backend.MaxBatch {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "a batch holds 1 to %d jobs", backend.MaxBatch)
	}
	out := make([]backend.EnqueueParams, len(raws))
	for i, raw := range raws {
		p, err := DecodeEnqueue(raw)
		if err != nil {
			be := err.(*backend.Error)
			return nil, backend.Errorf(be.Code, "job %d: %s", i, be.Message)
		}
		out[i] = p
	}
	return out, nil
}

// DecodeDequeue decodes {waitMs, leaseMs}.
func DecodeDequeue(b []byte) (backend.DequeueParams, error) {
	var body struct {
		WaitMs  *float64 `json:"waitMs"`
		LeaseMs *float64 `json:"leaseMs"`
	}
	var p backend.DequeueParams
	if err := decodeStrict(b, &body); err != nil {
		return p, err
	}
	var err error
	if p.Wait, err = optMs("waitMs", body.WaitMs, 0, backend.MaxWait, 0); err != nil {
		return p, err
	}
	if p.Lease, err = optMs("leaseMs", body.LeaseMs, time.Millisecond, backend.MaxLease, backend.DefaultLease); err != nil {
		return p, err
	}
	return p, p.Validate()
}

type leaseBody struct {
	Lease   string        `json:"lease"`
	LeaseMs *float64      `json:"leaseMs"`
	Error   *jobErrorBody `json:"error"`
	Retry   *bool         `json:"retry"`
}

type jobErrorBody struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack"`
}

const maxErrorText = 64 << 10

func decodeLease(b []byte) (leaseBody, error) {
	var body leaseBody
	if err := decodeStrict(b, &body); err != nil {
		return body, err
	}
	if body.Lease == "" {
		return body, backend.Errorf(backend.CodeInvalidArgument, "lease is required: send the lease token the dequeue answer carried")
	}
	return body, nil
}

// DecodeFail decodes {lease, error: {name, message, stack}, retry}.
func DecodeFail(id string, b []byte) (backend.FailParams, error) {
	body, err := decodeLease(b)
	if err != nil {
		return backend.FailParams{}, err
	}
	if body.LeaseMs != nil {
		return backend.FailParams{}, backend.Errorf(backend.CodeInvalidArgument, "leaseMs does not apply to fail")
	}
	p := backend.FailParams{ID: id, Lease: body.Lease, Retry: true}
	if body.Retry != nil {
		p.Retry = *body.Retry
	}
	if body.Error != nil {
		p.Error = backend.JobError{Name: body.Error.Name, Message: body.Error.Message, Stack: body.Error.Stack}
	}
	if p.Error.Name == "" {
		p.Error.Name = "Error"
	}
	if len(p.Error.Message)+len(p.Error.Stack)+len(p.Error.Name) > maxErrorText {
		return p, backend.Errorf(backend.CodeInvalidArgument, "error name, message and stack together exceed %d bytes", maxErrorText)
	}
	return p, nil
}

// DecodeHeartbeat decodes {lease, leaseMs}.
func DecodeHeartbeat(id string, b []byte) (backend.HeartbeatParams, error) {
	body, err := decodeLease(b)
	if err != nil {
		return backend.HeartbeatParams{}, err
	}
	if body.Error != nil || body.Retry != nil {
		return backend.HeartbeatParams{}, backend.Errorf(backend.CodeInvalidArgument, "heartbeat takes lease and leaseMs only")
	}
	ext, err := optMs("leaseMs", body.LeaseMs, time.Millisecond, backend.MaxLease, 0)
	return backend.HeartbeatParams{ID: id, Lease: body.Lease, Extend: ext}, err
}

// DecodeAck decodes {lease}.
func DecodeAck(b []byte) (string, error) {
	body, err := decodeLease(b)
	if err != nil {
		return "", err
	}
	if body.Error != nil || body.Retry != nil || body.LeaseMs != nil {
		return "", backend.Errorf(backend.CodeInvalidArgument, "ack takes lease only")
	}
	return body.Lease, nil
}

// DecodeIndex decodes {fields: ["a.b", ...], unique}.
func DecodeIndex(name string, b []byte) (backend.IndexSpec, error) {
	var body struct {
		Fields []string `json:"fields"`
		Unique bool     `json:"unique"`
	}
	spec := backend.IndexSpec{Name: name}
	if err := backend.ValidateName("index", name); err != nil {
		return spec, err
	}
	if err := decodeStrict(b, &body); err != nil {
		return spec, err
	}
	if len(body.Fields) == 0 || len(body.Fields) > 8 {
		return spec, backend.Errorf(backend.CodeInvalidArgument, "fields must list 1 to 8 field paths")
	}
	seen := map[string]bool{}
	for _, f := range body.Fields {
		p, err := backend.ParsePath(f)
		if err != nil {
			return spec, err
		}
		if seen[f] {
			return spec, backend.Errorf(backend.CodeInvalidArgument, "field %q is listed twice", f)
		}
		seen[f] = true
		spec.Fields = append(spec.Fields, p)
	}
	spec.Unique = body.Unique
	return spec, nil
}

func pageParams(limit, offset []byte) (backend.ListParams, error) {
	var p backend.ListParams
	for _, q := range []struct {
		name string
		raw  []byte
		dst  *int
	}{{"limit", limit, &p.Limit}, {"offset", offset, &p.Offset}} {
		if len(q.raw) == 0 {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(string(q.raw), "%d", &n); err != nil || fmt.Sprint(n) != string(q.raw) {
			return p, backend.Errorf(backend.CodeInvalidArgument, "%s must be an integer", q.name)
		}
		*q.dst = n
	}
	return p, p.Validate()
}
