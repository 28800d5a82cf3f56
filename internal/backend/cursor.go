package backend

import (
	"context"
	"encoding/base64"
	"math"
	"strings"

	json "github.com/goccy/go-json"
)

// Keyset paging (issue 18): find's "after" is an opaque cursor naming the
// last record of the previous page by its sort values and id. The next
// page is the records after it in the sort order, which is what a filter
// can say, so every adapter runs it unchanged: inserts and deletes
// between pages never shift it (offset paging skips or repeats then).
//
// The cursor is base64url of JSON {"s": sort, "v": [[rank, value]…], "id"}.
// rank is the cross-type order of DESIGN §2 (missing 0, null 1, number 2,
// string 3, false 4, true 5, array or object 6); value is kept for
// numbers and strings. The sort is kept to refuse a cursor replayed with
// another sort.

type cursorJSON struct {
	Sort   string  `json:"s"`
	Values [][]any `json:"v"`
	ID     string  `json:"id"`
}

func sortSignature(keys []SortKey) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		dir := ":asc"
		if k.Desc {
			dir = ":desc"
		}
		parts[i] = k.Path.String() + dir
	}
	return strings.Join(parts, ",")
}

func rankOf(v any, present bool) int {
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

func lookup(doc map[string]any, p Path) (any, bool) {
	var cur any = doc
	for _, seg := range p {
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

// CursorAfter is the cursor of rec under the sort keys.
func CursorAfter(keys []SortKey, rec Record) (string, error) {
	doc, err := Decode(rec)
	if err != nil {
		return "", err
	}
	c := cursorJSON{Sort: sortSignature(keys), Values: [][]any{}}
	c.ID, _ = doc["id"].(string)
	for _, k := range keys {
		v, ok := lookup(doc, k.Path)
		r := rankOf(v, ok)
		if r == 2 || r == 3 {
			c.Values = append(c.Values, []any{float64(r), v})
		} else {
			c.Values = append(c.Values, []any{float64(r)})
		}
	}
	b, err := Marshal(c)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ParseCursor checks a cursor against the sort it is used with and
// returns the filter of the records after it.
func ParseCursor(keys []SortKey, s string) (Filter, error) {
	bad := Errorf(CodeInvalidArgument, "after is not a cursor this API gave out")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 64<<10 {
		return nil, bad
	}
	var c cursorJSON
	if err := json.Unmarshal(raw, &c); err != nil || ValidateID(c.ID) != nil || len(c.Values) != len(keys) {
		return nil, bad
	}
	if c.Sort != sortSignature(keys) {
		return nil, Errorf(CodeInvalidArgument, "after is a cursor of another sort (%s); send the sort it was made with", truncate(c.Sort))
	}
	type key struct {
		rank int
		val  any
	}
	ks := make([]key, len(keys))
	for i, v := range c.Values {
		if len(v) == 0 {
			return nil, bad
		}
		r, ok := v[0].(float64)
		if !ok || r != math.Trunc(r) || r < 0 || r > 6 {
			return nil, bad
		}
		ks[i].rank = int(r)
		switch ks[i].rank {
		case 2:
			if len(v) != 2 {
				return nil, bad
			}
			if _, ok := v[1].(float64); !ok {
				return nil, bad
			}
			ks[i].val = v[1]
		case 3:
			if len(v) != 2 {
				return nil, bad
			}
			if _, ok := v[1].(string); !ok {
				return nil, bad
			}
			ks[i].val = v[1]
		default:
			if len(v) != 1 {
				return nil, bad
			}
		}
	}
	// After (k1, k2, …, id): k1 after c1, or k1 at c1 and k2 after c2, …,
	// or every key at its value and a greater id.
	var or []Filter
	var prefix []Filter
	for i, k := range keys {
		or = append(or, and(append(clone(prefix), afterKey(k, ks[i].rank, ks[i].val))...))
		prefix = append(prefix, atKey(k.Path, ks[i].rank, ks[i].val))
	}
	or = append(or, and(append(clone(prefix), &Cond{Path: Path{"id"}, Op: OpGt, Value: c.ID})...))
	return &Or{Children: or}, nil
}

func clone(fs []Filter) []Filter { return append([]Filter(nil), fs...) }

func and(fs ...Filter) Filter {
	if len(fs) == 1 {
		return fs[0]
	}
	return &And{Children: fs}
}

// isRank holds when the value at p has rank r.
func isRank(p Path, r int) Filter {
	number := &Cond{Path: p, Op: OpGte, Value: -math.MaxFloat64}
	str := &Cond{Path: p, Op: OpGte, Value: ""}
	switch r {
	case 0:
		return &Not{Child: &Cond{Path: p, Op: OpExists}}
	case 1:
		return and(&Cond{Path: p, Op: OpExists}, &Cond{Path: p, Op: OpEq, Value: nil})
	case 2:
		return number
	case 3:
		return str
	case 4:
		return &Cond{Path: p, Op: OpEq, Value: false}
	case 5:
		return &Cond{Path: p, Op: OpEq, Value: true}
	}
	return and(&Cond{Path: p, Op: OpExists}, &Not{Child: &Cond{Path: p, Op: OpIn, Values: []any{nil, true, false}}},
		&Not{Child: number}, &Not{Child: str})
}

// atKey holds when the value at p sorts equal to (rank, val).
func atKey(p Path, rank int, val any) Filter {
	if rank == 2 || rank == 3 {
		return &Cond{Path: p, Op: OpEq, Value: val}
	}
	return isRank(p, rank)
}

// afterKey holds when the value at k.Path sorts after (rank, val) in k's
// direction.
func afterKey(k SortKey, rank int, val any) Filter {
	var or []Filter
	for r := 0; r <= 6; r++ {
		if r > rank && !k.Desc || r < rank && k.Desc {
			or = append(or, isRank(k.Path, r))
		}
	}
	if rank == 2 || rank == 3 {
		op := OpGt
		if k.Desc {
			op = OpLt
		}
		or = append(or, &Cond{Path: k.Path, Op: op, Value: val})
	}
	if len(or) == 0 {
		return &Cond{Path: k.Path, Op: OpIn, Values: []any{}} // nothing sorts after
	}
	return &Or{Children: or}
}

// IDColumn reports whether a condition is a string comparison of the id,
// which adapters may answer from their id column (and primary key): the
// id field and the column always hold the same string, and both compare
// by code point.
func IDColumn(n *Cond) (string, bool) {
	if len(n.Path) != 1 || n.Path[0] != "id" {
		return "", false
	}
	s, ok := n.Value.(string)
	switch n.Op {
	case OpEq, OpGt, OpGte, OpLt, OpLte:
		return s, ok
	}
	return "", false
}

// CompareOp is the SQL comparison of Eq, Gt, Gte, Lt and Lte.
func CompareOp(op Op) string {
	return map[Op]string{OpEq: "=", OpGt: ">", OpGte: ">=", OpLt: "<", OpLte: "<="}[op]
}

// Records drops the versions of items.
func Records(items []Item) []Record {
	out := make([]Record, len(items))
	for i, it := range items {
		out[i] = it.Rec
	}
	return out
}

// FindPage answers a find with "after" or "page": the items of q after
// the cursor, and the cursor of the next page ("" after the last page).
// It asks for one record more than the page to know whether one follows.
func FindPage(ctx context.Context, r Repository, q Query, after string) ([]Item, string, error) {
	if after != "" {
		if q.Offset != 0 {
			return nil, "", Errorf(CodeInvalidArgument, "after and offset cannot be used together")
		}
		f, err := ParseCursor(q.Sort, after)
		if err != nil {
			return nil, "", err
		}
		q.Filter = &And{Children: []Filter{q.Filter, f}}
	}
	limit := q.Limit
	if limit > 0 {
		q.Limit = limit + 1
	}
	items, err := r.FindItems(ctx, q)
	if err != nil || limit == 0 || len(items) <= limit {
		return items, "", err
	}
	items = items[:limit]
	next, err := CursorAfter(q.Sort, items[limit-1].Rec)
	return items, next, err
}
