package memory

import (
	"strings"

	"github.com/storaged/storaged/internal/backend"
)

// This file is the reference semantics of DESIGN §2 in plain Go: the
// memory adapter uses it, and the SQL adapters are checked against it by
// the shared vectors and the differential tests.

// Lookup follows path through nested objects. An array, scalar or absent
// key on the way means missing.
func Lookup(doc map[string]any, path backend.Path) (any, bool) {
	var cur any = doc
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Match reports whether doc satisfies f.
func Match(f backend.Filter, doc map[string]any) bool {
	switch n := f.(type) {
	case *backend.And:
		for _, c := range n.Children {
			if !Match(c, doc) {
				return false
			}
		}
		return true
	case *backend.Or:
		for _, c := range n.Children {
			if Match(c, doc) {
				return true
			}
		}
		return false
	case *backend.Not:
		return !Match(n.Child, doc)
	case *backend.Cond:
		v, ok := Lookup(doc, n.Path)
		return matchCond(n, v, ok)
	}
	return false
}

func matchCond(c *backend.Cond, v any, present bool) bool {
	switch c.Op {
	case backend.OpEq:
		return eqMatch(c.Value, v, present)
	case backend.OpIn:
		for _, want := range c.Values {
			if eqMatch(want, v, present) {
				return true
			}
		}
		return false
	case backend.OpExists:
		return present
	case backend.OpContains:
		arr, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range arr {
			if c.Value == nil && e == nil || c.Value != nil && scalarEqual(c.Value, e) {
				return true
			}
		}
		return false
	case backend.OpStartsWith:
		s, ok := v.(string)
		return ok && strings.HasPrefix(s, c.Value.(string))
	case backend.OpGt, backend.OpGte, backend.OpLt, backend.OpLte:
		cmp, ok := sameTypeCompare(v, c.Value)
		if !ok {
			return false
		}
		switch c.Op {
		case backend.OpGt:
			return cmp > 0
		case backend.OpGte:
			return cmp >= 0
		case backend.OpLt:
			return cmp < 0
		default:
			return cmp <= 0
		}
	}
	return false
}

// eqMatch is equality with a scalar; want == nil matches null or missing.
func eqMatch(want, v any, present bool) bool {
	if want == nil {
		return !present || v == nil
	}
	return present && scalarEqual(want, v)
}

func scalarEqual(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

// sameTypeCompare compares two numbers or two strings; ok is false across
// types. Go compares strings bytewise, and UTF-8 byte order is code-point
// order, which is what DESIGN §2 asks for.
func sameTypeCompare(v, want any) (int, bool) {
	switch x := v.(type) {
	case float64:
		y, ok := want.(float64)
		if !ok {
			return 0, false
		}
		return cmpFloat(x, y), true
	case string:
		y, ok := want.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, y), true
	}
	return 0, false
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// Rank places a value in the cross-type sort order of DESIGN §2:
// missing < null < numbers < strings < false < true < arrays/objects.
func Rank(v any, present bool) int {
	if !present {
		return 0
	}
	switch x := v.(type) {
	case nil:
		return 1
	case float64:
		return 2
	case string:
		return 3
	case bool:
		if x {
			return 5
		}
		return 4
	}
	return 6
}

// CompareValues orders two looked-up values for sorting. Arrays and
// objects compare equal among themselves, leaving the order to the next
// sort key and finally the id.
func CompareValues(a any, aok bool, b any, bok bool) int {
	ra, rb := Rank(a, aok), Rank(b, bok)
	if ra != rb {
		return ra - rb
	}
	if c, ok := sameTypeCompare(a, b); ok {
		return c
	}
	return 0
}

// CompareDocs orders two records by the sort keys, then by id ascending.
func CompareDocs(keys []backend.SortKey, a, b map[string]any) int {
	for _, k := range keys {
		av, aok := Lookup(a, k.Path)
		bv, bok := Lookup(b, k.Path)
		c := CompareValues(av, aok, bv, bok)
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	ai, _ := a["id"].(string)
	bi, _ := b["id"].(string)
	return strings.Compare(ai, bi)
}
