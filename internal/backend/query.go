package backend

import (
	"bytes"
	"errors"
	"io"
	"math"

	json "github.com/goccy/go-json"
)

// SortKey orders by one path. Desc reverses the whole type order of DESIGN
// §2 for that key; the final id tie-break is always ascending.
type SortKey struct {
	Path Path
	Desc bool
}

// Query is a validated findMany request. Limit 0 means no limit.
type Query struct {
	Filter Filter
	Sort   []SortKey
	Limit  int
	Offset int
	// After, Page and Fields are find's options of issue 18, which the
	// HTTP layer applies (FindPage, Project); adapters ignore them.
	After  string
	Page   bool
	Fields []Path
}

const (
	// MaxLimit bounds one page. Larger pages are a mistake more often
	// than a need, and they hold a reader for a long time.
	MaxLimit = 100_000
	// MaxOffset bounds offset (the databases take a 32-bit one).
	MaxOffset = math.MaxInt32
	maxSort   = 16
)

// ParseQuery parses the body of POST /v1/repos/{c}/find.
func ParseQuery(raw []byte) (Query, error) {
	var body struct {
		Filter json.RawMessage `json:"filter"`
		Sort   json.RawMessage `json:"sort"`
		Limit  json.RawMessage `json:"limit"`
		Offset json.RawMessage `json:"offset"`
		After  *string         `json:"after"`
		Page   bool            `json:"page"`
		Fields json.RawMessage `json:"fields"`
	}
	q := Query{Filter: MatchAll}
	if err := decodeBody(raw, &body, "filter, sort, limit, offset, after, page, fields"); err != nil {
		return q, err
	}
	if body.After != nil {
		q.After, q.Page = *body.After, true
		if q.After == "" {
			return q, Errorf(CodeInvalidArgument, "after must be a cursor from a previous page's next")
		}
	}
	q.Page = q.Page || body.Page
	var err error
	if q.Filter, err = ParseFilter(body.Filter); err != nil {
		return q, err
	}
	if q.Sort, err = ParseSort(body.Sort); err != nil {
		return q, err
	}
	if q.Limit, err = parseInt("limit", body.Limit, 1, MaxLimit); err != nil {
		return q, err
	}
	if q.Offset, err = parseInt("offset", body.Offset, 0, MaxOffset); err != nil {
		return q, err
	}
	if q.After != "" && q.Offset != 0 {
		return q, Errorf(CodeInvalidArgument, "after and offset cannot be used together")
	}
	if q.Fields, err = ParseFieldsJSON(body.Fields); err != nil {
		return q, err
	}
	return q, nil
}

// ParseCountFilter parses the body of POST /v1/repos/{c}/count: {filter}.
func ParseCountFilter(raw []byte) (Filter, error) {
	var body struct {
		Filter json.RawMessage `json:"filter"`
	}
	if err := decodeBody(raw, &body, "filter"); err != nil {
		return nil, err
	}
	return ParseFilter(body.Filter)
}

// decodeBody decodes a find or count body into v. A key v does not
// declare is refused, as is anything after the object: a misspelt
// "filters" must not silently count or return everything. An empty body
// leaves v as it is.
func decodeBody(raw []byte, v any, keys string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	if raw[0] != '{' {
		return Errorf(CodeInvalidArgument, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeInvalidArgument, "request body is not valid JSON or has a key other than %s", keys)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(CodeInvalidArgument, "request body has data after the JSON object")
	}
	return nil
}

// ParseSort parses {"a.b": "asc", "c": "desc"} keeping key order, which a
// decoded Go map would lose.
func ParseSort(raw []byte) ([]SortKey, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, Errorf(CodeInvalidArgument, `sort must be an object like {"field": "asc"}`)
	}
	var keys []SortKey
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, Errorf(CodeInvalidArgument, "sort is not valid JSON")
		}
		name, _ := kt.(string)
		path, err := ParsePath(name)
		if err != nil {
			return nil, err
		}
		vt, err := dec.Token()
		if err != nil {
			return nil, Errorf(CodeInvalidArgument, "sort is not valid JSON")
		}
		dir, _ := vt.(string)
		if dir != "asc" && dir != "desc" {
			return nil, Errorf(CodeInvalidArgument, "sort %q: direction must be \"asc\" or \"desc\"", path)
		}
		if seen[name] {
			return nil, Errorf(CodeInvalidArgument, "sort %q appears twice", path)
		}
		seen[name] = true
		keys = append(keys, SortKey{Path: path, Desc: dir == "desc"})
		if len(keys) > maxSort {
			return nil, Errorf(CodeInvalidArgument, "sort has more than %d keys", maxSort)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, Errorf(CodeInvalidArgument, "sort is not valid JSON")
	}
	return keys, nil
}

// parseInt reads an optional JSON integer within [lo, hi]; absent or null
// gives 0.
func parseInt(name string, raw json.RawMessage, lo, hi int) (int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, Errorf(CodeInvalidArgument, "%s must be an integer", name)
	}
	return IntInRange(name, f, lo, hi)
}

// IntInRange checks that a JSON number is an integer within [lo, hi].
func IntInRange(name string, f float64, lo, hi int) (int, error) {
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, Errorf(CodeInvalidArgument, "%s must be an integer, got %v", name, f)
	}
	if f < float64(lo) || f > float64(hi) {
		return 0, Errorf(CodeInvalidArgument, "%s must be between %d and %d, got %v", name, lo, hi, f)
	}
	return int(f), nil
}
