package backend

import (
	"bytes"
	"math"
	"slices"
	"strings"

	json "github.com/goccy/go-json"
)

// This file is the update half of a PATCH: a shallow merge (DESIGN §2) or
// update operators ($set, $unset, $inc, $push, $pull, $addToSet) on
// dotted paths, as MongoDB names them. ApplyUpdate is the reference
// semantics; the SQL adapters compile the same operators to one statement
// and are held to this by the shared update vectors and the differential
// test.

// UpdateKind is one update operator.
type UpdateKind int

// The operators; each comment says what the operand holds.
const (
	UpdSet      UpdateKind = iota // Value: any JSON value
	UpdUnset                      // no operand
	UpdInc                        // Value: a finite float64
	UpdPush                       // Values: the elements appended, in order
	UpdPull                       // Value: a scalar; every equal element goes
	UpdAddToSet                   // Values: distinct scalars, each appended unless present
)

var updateNames = map[string]UpdateKind{
	"$set": UpdSet, "$unset": UpdUnset, "$inc": UpdInc,
	"$push": UpdPush, "$pull": UpdPull, "$addToSet": UpdAddToSet,
}

func (k UpdateKind) String() string {
	for name, v := range updateNames {
		if v == k {
			return name
		}
	}
	return "?"
}

// Creates reports whether the operator creates its field (and the objects
// on the way to it) when the field is missing.
func (k UpdateKind) Creates() bool { return k != UpdUnset && k != UpdPull }

// UpdateOp is one operator on one path.
type UpdateOp struct {
	Kind   UpdateKind
	Path   Path
	Value  any
	Values []any
}

// Update is a validated PATCH body: Merge for a plain object, Ops for one
// whose keys are operators. Ops never overlap (no path is a prefix of
// another), so they commute; they are sorted by path.
type Update struct {
	Merge map[string]any
	Ops   []UpdateOp
}

// MaxUpdatePaths bounds the paths one update names.
const MaxUpdatePaths = 256

// IsOperatorUpdate reports whether a PATCH body uses update operators.
func IsOperatorUpdate(body map[string]any) bool {
	for k := range body {
		if strings.HasPrefix(k, "$") {
			return true
		}
	}
	return false
}

// ParseUpdateJSON parses a PATCH body (the fuzz target's entry).
func ParseUpdateJSON(raw []byte) (Update, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return Update{}, Errorf(CodeInvalidArgument, "update must be a JSON object")
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		return Update{}, Errorf(CodeInvalidArgument, "update is not valid JSON")
	}
	return ParseUpdate(body)
}

// ParseUpdate validates a decoded PATCH body.
func ParseUpdate(body map[string]any) (Update, error) {
	if body == nil {
		return Update{}, Errorf(CodeInvalidArgument, "update must be a JSON object")
	}
	if !IsOperatorUpdate(body) {
		if err := CheckPatch(body); err != nil {
			return Update{}, err
		}
		return Update{Merge: body}, nil
	}
	var u Update
	for _, name := range sortedKeys(body) {
		kind, ok := updateNames[name]
		if !ok {
			if !strings.HasPrefix(name, "$") {
				return Update{}, Errorf(CodeInvalidArgument, "update mixes operators with the plain field %q; use $set", truncate(name))
			}
			return Update{}, Errorf(CodeInvalidArgument, "unknown update operator %q (known: $set, $unset, $inc, $push, $pull, $addToSet)", truncate(name))
		}
		fields, ok := body[name].(map[string]any)
		if !ok {
			return Update{}, Errorf(CodeInvalidArgument, "%s takes an object of field paths", name)
		}
		if len(fields) == 0 {
			return Update{}, Errorf(CodeInvalidArgument, "%s names no field", name)
		}
		for _, ps := range sortedKeys(fields) {
			op, err := parseUpdateOp(kind, ps, fields[ps])
			if err != nil {
				return Update{}, err
			}
			u.Ops = append(u.Ops, op)
			if len(u.Ops) > MaxUpdatePaths {
				return Update{}, Errorf(CodeInvalidArgument, "update names more than %d paths", MaxUpdatePaths)
			}
		}
	}
	slices.SortFunc(u.Ops, func(a, b UpdateOp) int { return slices.Compare(a.Path, b.Path) })
	for i := range u.Ops {
		for j := i + 1; j < len(u.Ops); j++ {
			if overlaps(u.Ops[i].Path, u.Ops[j].Path) {
				return Update{}, Errorf(CodeInvalidArgument, "update paths %q and %q overlap", u.Ops[i].Path, u.Ops[j].Path)
			}
		}
	}
	return u, nil
}

func overlaps(a, b Path) bool {
	n := min(len(a), len(b))
	return slices.Equal(a[:n], b[:n])
}

func parseUpdateOp(kind UpdateKind, ps string, arg any) (UpdateOp, error) {
	p, err := ParsePath(ps)
	if err != nil {
		return UpdateOp{}, err
	}
	if p[0] == "id" {
		return UpdateOp{}, Errorf(CodeInvalidArgument, "id cannot be updated")
	}
	op := UpdateOp{Kind: kind, Path: p}
	switch kind {
	case UpdSet:
		op.Value = arg
	case UpdUnset:
	case UpdInc:
		f, ok := arg.(float64)
		if !ok || math.IsInf(f, 0) || math.IsNaN(f) {
			return UpdateOp{}, Errorf(CodeInvalidArgument, "$inc %q: the amount must be a number, got %s", p, jsonType(arg))
		}
		op.Value = f
	case UpdPull:
		if !isScalar(arg) {
			return UpdateOp{}, Errorf(CodeInvalidArgument, "$pull %q: the value must be a scalar (string, number, boolean or null), got %s", p, jsonType(arg))
		}
		op.Value = arg
	case UpdPush, UpdAddToSet:
		vals := []any{arg}
		if m, ok := arg.(map[string]any); ok {
			each, isEach := m["$each"].([]any)
			if len(m) != 1 || !isEach {
				if hasDollarKey(m) {
					return UpdateOp{}, Errorf(CodeInvalidArgument, "%s %q: the only modifier is {\"$each\": [...]}", kind, p)
				}
			} else {
				vals = each
			}
		}
		if len(vals) > maxInValues {
			return UpdateOp{}, Errorf(CodeInvalidArgument, "%s %q: $each holds more than %d values", kind, p, maxInValues)
		}
		if kind == UpdAddToSet {
			var distinct []any
			for _, v := range vals {
				if !isScalar(v) {
					return UpdateOp{}, Errorf(CodeInvalidArgument, "$addToSet %q: values must be scalars, got %s", p, jsonType(v))
				}
				if !slices.ContainsFunc(distinct, func(d any) bool { return ScalarEqual(d, v) }) {
					distinct = append(distinct, v)
				}
			}
			vals = distinct
		}
		op.Values = vals
	}
	return op, nil
}

func hasDollarKey(m map[string]any) bool {
	for k := range m {
		if strings.HasPrefix(k, "$") {
			return true
		}
	}
	return false
}

// ScalarEqual is type-strict equality of JSON scalars (null included).
func ScalarEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	}
	return false
}

// MergeOps is a shallow merge said with operators: $set of each top-level
// field. The SQL adapters compile a merge this way.
func MergeOps(patch map[string]any) []UpdateOp {
	ops := make([]UpdateOp, 0, len(patch))
	for _, k := range sortedKeys(patch) {
		ops = append(ops, UpdateOp{Kind: UpdSet, Path: Path{k}, Value: patch[k]})
	}
	return ops
}

// OpsOf returns the update as operators.
func (u Update) OpsOf() []UpdateOp {
	if u.Ops != nil {
		return u.Ops
	}
	return MergeOps(u.Merge)
}

// ApplyUpdate returns doc with u applied, leaving doc unchanged, or the
// invalid_argument error the update meets on this record: an operator
// that needs an object on its way meets something else, or $inc, $push,
// $pull or $addToSet find a field of the wrong type.
func ApplyUpdate(doc map[string]any, u Update) (map[string]any, error) {
	if u.Ops == nil {
		return Merge(doc, u.Merge), nil
	}
	out := deepCopy(doc).(map[string]any)
	for _, op := range u.Ops {
		if err := applyOp(out, op); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func applyOp(doc map[string]any, op UpdateOp) error {
	m := doc
	for i, seg := range op.Path[:len(op.Path)-1] {
		next, present := m[seg]
		if !present {
			if !op.Kind.Creates() {
				return nil
			}
			child := map[string]any{}
			m[seg] = child
			m = child
			continue
		}
		child, ok := next.(map[string]any)
		if !ok {
			if !op.Kind.Creates() {
				return nil
			}
			return Errorf(CodeInvalidArgument, "%s %q: %q is %s, not an object", op.Kind, op.Path, op.Path[:i+1], jsonType(next))
		}
		m = child
	}
	last := op.Path[len(op.Path)-1]
	cur, present := m[last]
	wrong := func(want string) error {
		return Errorf(CodeInvalidArgument, "%s %q: the field is %s, not %s", op.Kind, op.Path, jsonType(cur), want)
	}
	switch op.Kind {
	case UpdSet:
		m[last] = deepCopy(op.Value)
	case UpdUnset:
		delete(m, last)
	case UpdInc:
		inc := op.Value.(float64)
		if !present {
			m[last] = inc
			return nil
		}
		n, ok := cur.(float64)
		if !ok {
			return wrong("a number")
		}
		if s := n + inc; !math.IsInf(s, 0) {
			m[last] = s
			return nil
		}
		return Errorf(CodeInvalidArgument, "$inc %q: the result is out of range", op.Path)
	case UpdPush, UpdAddToSet:
		arr, ok := cur.([]any)
		if present && !ok {
			return wrong("an array")
		}
		res := slices.Clone(arr)
		for _, v := range op.Values {
			if op.Kind == UpdAddToSet && slices.ContainsFunc(res, func(e any) bool { return ScalarEqual(e, v) }) {
				continue
			}
			res = append(res, deepCopy(v))
		}
		if res == nil {
			res = []any{}
		}
		m[last] = res
	case UpdPull:
		if !present {
			return nil
		}
		arr, ok := cur.([]any)
		if !ok {
			return wrong("an array")
		}
		res := []any{}
		for _, e := range arr {
			if !ScalarEqual(e, op.Value) {
				res = append(res, e)
			}
		}
		m[last] = res
	}
	return nil
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
