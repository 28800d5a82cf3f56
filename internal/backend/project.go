package backend

import (
	"bytes"
	"strings"

	json "github.com/goccy/go-json"
)

// Projections (issue 18): find and get may ask for some fields only. The
// daemon cuts the records it read down to them before answering; the id
// is always kept.

// MaxFields bounds the paths of one projection.
const MaxFields = 64

// ParseFieldsJSON reads "fields": an array of paths; absent or null means
// whole records.
func ParseFieldsJSON(raw []byte) ([]Path, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var names []string
	if err := json.Unmarshal(raw, &names); err != nil {
		return nil, Errorf(CodeInvalidArgument, `fields must be an array of field paths like ["a", "b.c"]`)
	}
	return ParseFields(names)
}

// ParseFields validates the paths of a projection.
func ParseFields(names []string) ([]Path, error) {
	if len(names) == 0 {
		return nil, Errorf(CodeInvalidArgument, "fields must name at least one field (leave it out for whole records)")
	}
	if len(names) > MaxFields {
		return nil, Errorf(CodeInvalidArgument, "fields names more than %d paths", MaxFields)
	}
	out := make([]Path, len(names))
	for i, n := range names {
		p, err := ParsePath(n)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// ParseFieldsParam reads ?fields=a,b.c.
func ParseFieldsParam(s string) ([]Path, error) {
	if s == "" {
		return nil, nil
	}
	return ParseFields(strings.Split(s, ","))
}

// Project keeps the id and the given paths of rec (those it has), nested
// as they were. No fields means the whole record.
func Project(rec Record, fields []Path) (Record, error) {
	if len(fields) == 0 || rec == nil {
		return rec, nil
	}
	doc, err := Decode(rec)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"id": doc["id"]}
	for _, p := range fields {
		v, ok := lookup(doc, p)
		if !ok {
			continue
		}
		m := out
		for _, seg := range p[:len(p)-1] {
			child, ok := m[seg].(map[string]any)
			if !ok {
				child = map[string]any{}
				m[seg] = child
			}
			m = child
		}
		// A path inside one already kept whole adds nothing.
		if _, whole := m[p[len(p)-1]]; !whole || len(p) == 1 {
			m[p[len(p)-1]] = v
		}
	}
	return Encode(out)
}
