package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// MaxDepth bounds the nesting of request JSON. Real documents are far
// shallower; the bound keeps a hostile body from costing stack and keeps
// every database's own JSON depth limit out of reach.
const MaxDepth = 100

// checkBody rejects what no decoder should see: invalid UTF-8 and nesting
// deeper than MaxDepth. It scans once, skipping string contents.
func checkBody(b []byte) error {
	if !utf8.Valid(b) {
		return backend.Errorf(backend.CodeInvalidArgument, "request body is not valid UTF-8")
	}
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
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
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "%s is not valid JSON", what)
	}
	return doc, nil
}

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
	// More() is false before a stray ']' or '}': only EOF means nothing
	// follows.
	if _, err := dec.Token(); err != io.EOF {
		return backend.Errorf(backend.CodeInvalidArgument, "request body has data after the JSON object")
	}
	return nil
}

// noOptions accepts the body of a route that takes no options: none, or
// {}. Anything else would be an option silently ignored.
func noOptions(b []byte) error {
	return decodeStrict(b, &struct{}{})
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
