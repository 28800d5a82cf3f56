package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
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
	// More() is false before a stray ']' or '}': only EOF means nothing
	// follows.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
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
