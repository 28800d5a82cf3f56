package backend

import (
	"bytes"
	"strings"

	json "github.com/goccy/go-json"
)

// Path is a validated field path: 1–16 segments of [A-Za-z0-9_$-]. Paths
// reach into nested objects only; a segment never indexes an array.
type Path []string

func (p Path) String() string { return strings.Join(p, ".") }

const (
	maxPathSegments = 16
	maxPathLength   = 1024
	maxFilterNodes  = 1000
	maxFilterDepth  = 32
	maxInValues     = 1000
)

// ParsePath validates a dotted path such as "a.b.c".
func ParsePath(s string) (Path, error) {
	if s == "" {
		return nil, Errorf(CodeInvalidArgument, "field path must not be empty")
	}
	if len(s) > maxPathLength {
		return nil, Errorf(CodeInvalidArgument, "field path is longer than %d bytes", maxPathLength)
	}
	segs := strings.Split(s, ".")
	if len(segs) > maxPathSegments {
		return nil, Errorf(CodeInvalidArgument, "field path %q has %d segments, at most %d allowed", truncate(s), len(segs), maxPathSegments)
	}
	for _, seg := range segs {
		if seg == "" {
			return nil, Errorf(CodeInvalidArgument, "field path %q has an empty segment", truncate(s))
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c == '-') {
				return nil, Errorf(CodeInvalidArgument, "field path %q: segments may contain only letters, digits, _ $ -", truncate(s))
			}
		}
	}
	return Path(segs), nil
}

// Op is a leaf operator of the filter AST. The parser rewrites $ne, $nin
// and {$exists: false} as Not of Eq, In and Exists, so adapters implement
// only these.
type Op int

// The operators; each comment says what Cond.Value or Cond.Values hold.
const (
	OpEq         Op = iota // Value scalar; nil matches null or missing
	OpGt                   // Value float64 or string, same JSON type only
	OpGte                  //
	OpLt                   //
	OpLte                  //
	OpIn                   // Values: scalars; nil among them matches null or missing
	OpExists               // path present, null included
	OpContains             // field is an array holding an element equal to Value
	OpStartsWith           // field is a string with prefix Value
)

// Filter is a node of the filter AST: *And, *Or, *Not or *Cond.
// Scalars in the AST are nil, bool, float64 or string.
type Filter interface{ filterNode() }

type (
	// And matches what all its children match; an empty And matches everything.
	And struct{ Children []Filter }
	// Or matches what any of its children matches; never empty after parsing.
	Or struct{ Children []Filter }
	// Not matches what its child does not.
	Not struct{ Child Filter }
	// Cond is a leaf: Op applied to the value at Path.
	Cond struct {
		Path   Path
		Op     Op
		Value  any
		Values []any
	}
)

func (*And) filterNode()  {}
func (*Or) filterNode()   {}
func (*Not) filterNode()  {}
func (*Cond) filterNode() {}

// MatchAll is the filter of an absent or empty filter object.
var MatchAll Filter = &And{}

// ParseFilter parses a JSON filter object (DESIGN §2). Absent, null or {}
// match everything. Anything it cannot give an exact meaning is
// CodeInvalidArgument.
func ParseFilter(raw []byte) (Filter, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return MatchAll, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, Errorf(CodeInvalidArgument, "filter is not valid JSON")
	}
	return FilterFromValue(v)
}

// FilterFromValue parses an already decoded filter (map[string]any).
func FilterFromValue(v any) (Filter, error) {
	if v == nil {
		return MatchAll, nil
	}
	p := &filterParser{}
	return p.object(v, 0)
}

// filterParser counts conditions: each operator on a field is one (an
// equality too), and so is an empty filter object, which matches
// everything. $and, $or, $not and the objects holding conditions are
// free: every one of them holds at least one condition, and nesting is
// bounded, so the tree stays within maxFilterDepth × maxFilterNodes.
type filterParser struct{ conditions int }

func (p *filterParser) condition() error {
	p.conditions++
	if p.conditions > maxFilterNodes {
		return Errorf(CodeInvalidArgument, "filter has more than %d conditions", maxFilterNodes)
	}
	return nil
}

// object parses {k: v, ...}: an implicit AND of its entries.
func (p *filterParser) object(v any, depth int) (Filter, error) {
	if depth > maxFilterDepth {
		return nil, Errorf(CodeInvalidArgument, "filter is nested deeper than %d levels", maxFilterDepth)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, Errorf(CodeInvalidArgument, "a filter must be a JSON object, got %s", jsonType(v))
	}
	if len(m) == 0 {
		if err := p.condition(); err != nil {
			return nil, err
		}
	}
	var out []Filter
	for _, k := range sortedKeys(m) {
		val := m[k]
		if strings.HasPrefix(k, "$") {
			f, err := p.combinator(k, val, depth)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
			continue
		}
		path, err := ParsePath(k)
		if err != nil {
			return nil, err
		}
		f, err := p.field(path, val)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return &And{Children: out}, nil
}

func (p *filterParser) combinator(op string, val any, depth int) (Filter, error) {
	switch op {
	case "$and", "$or":
		arr, ok := val.([]any)
		if !ok || len(arr) == 0 {
			return nil, Errorf(CodeInvalidArgument, "%s takes a non-empty array of filters", op)
		}
		children := make([]Filter, 0, len(arr))
		for _, c := range arr {
			f, err := p.object(c, depth+1)
			if err != nil {
				return nil, err
			}
			children = append(children, f)
		}
		if op == "$and" {
			return &And{Children: children}, nil
		}
		return &Or{Children: children}, nil
	case "$not":
		f, err := p.object(val, depth+1)
		if err != nil {
			return nil, err
		}
		return &Not{Child: f}, nil
	}
	return nil, Errorf(CodeInvalidArgument, "unknown top-level operator %q (use $and, $or, $not, or a field path)", truncate(op))
}

// field parses the value of a field entry: a scalar (equality) or an
// operator object whose keys all start with $.
func (p *filterParser) field(path Path, val any) (Filter, error) {
	m, isObj := val.(map[string]any)
	if !isObj {
		if !isScalar(val) {
			return nil, Errorf(CodeInvalidArgument, "field %q: equality needs a string, number, boolean or null, got %s", path, jsonType(val))
		}
		if err := p.condition(); err != nil {
			return nil, err
		}
		return &Cond{Path: path, Op: OpEq, Value: val}, nil
	}
	if len(m) == 0 {
		return nil, Errorf(CodeInvalidArgument, "field %q: empty operator object", path)
	}
	var out []Filter
	for _, op := range sortedKeys(m) {
		if !strings.HasPrefix(op, "$") {
			return nil, Errorf(CodeInvalidArgument, "field %q: equality with an object is not supported; operators start with $", path)
		}
		if err := p.condition(); err != nil {
			return nil, err
		}
		f, err := operator(path, op, m[op])
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return &And{Children: out}, nil
}

func operator(path Path, op string, arg any) (Filter, error) {
	bad := func(want string) error {
		return Errorf(CodeInvalidArgument, "field %q: %s takes %s, got %s", path, op, want, jsonType(arg))
	}
	switch op {
	case "$eq", "$ne":
		if !isScalar(arg) {
			return nil, bad("a string, number, boolean or null")
		}
		c := &Cond{Path: path, Op: OpEq, Value: arg}
		if op == "$ne" {
			return &Not{Child: c}, nil
		}
		return c, nil
	case "$gt", "$gte", "$lt", "$lte":
		switch arg.(type) {
		case float64, string:
		default:
			return nil, bad("a number or a string")
		}
		ops := map[string]Op{"$gt": OpGt, "$gte": OpGte, "$lt": OpLt, "$lte": OpLte}
		return &Cond{Path: path, Op: ops[op], Value: arg}, nil
	case "$in", "$nin":
		arr, ok := arg.([]any)
		if !ok {
			return nil, bad("an array")
		}
		if len(arr) > maxInValues {
			return nil, Errorf(CodeInvalidArgument, "field %q: %s takes at most %d values", path, op, maxInValues)
		}
		for _, e := range arr {
			if !isScalar(e) {
				return nil, Errorf(CodeInvalidArgument, "field %q: %s values must be strings, numbers, booleans or null, got %s", path, op, jsonType(e))
			}
		}
		c := &Cond{Path: path, Op: OpIn, Values: arr}
		if op == "$nin" {
			return &Not{Child: c}, nil
		}
		return c, nil
	case "$exists":
		b, ok := arg.(bool)
		if !ok {
			return nil, bad("true or false")
		}
		c := &Cond{Path: path, Op: OpExists}
		if !b {
			return &Not{Child: c}, nil
		}
		return c, nil
	case "$contains":
		if !isScalar(arg) {
			return nil, bad("a string, number, boolean or null")
		}
		return &Cond{Path: path, Op: OpContains, Value: arg}, nil
	case "$startsWith":
		if _, ok := arg.(string); !ok {
			return nil, bad("a string")
		}
		return &Cond{Path: path, Op: OpStartsWith, Value: arg}, nil
	}
	return nil, Errorf(CodeInvalidArgument, "field %q: unknown operator %q", path, truncate(op))
}

func isScalar(v any) bool {
	switch v.(type) {
	case nil, bool, float64, string:
		return true
	}
	return false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "an unsupported value"
}
