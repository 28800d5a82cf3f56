package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/storaged/storaged/internal/backend"
)

// This file compiles the filter and sort AST to PostgreSQL. Paths appear
// in the SQL text — expression indexes match only literal expressions —
// so they are checked again here; every value is a bound parameter.
// Tables are named after catalog ids, never after collection names
// (collections.go).
//
// A condition on a missing field evaluates to NULL, which AND and OR
// treat as false in a WHERE clause; only NOT needs coalesce() to keep
// "not equal" true for missing fields.

func checkSegment(seg string) {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c == '-') {
			panic(fmt.Sprintf("postgres: unvalidated path segment %q reached the SQL compiler", seg))
		}
	}
}

// valueExpr is the JSONB value at a validated path: doc -> 'a' -> 'b'.
// With a text key, -> reads an object's field and gives NULL for anything
// else, so a path reaches into objects only, as DESIGN §2 says: "0" is a
// key, never an array index (doc #> '{t,0}' would index the array).
func valueExpr(p backend.Path) string { return columnExpr("doc", p) }

func columnExpr(col string, p backend.Path) string {
	var sb strings.Builder
	sb.WriteString("(" + col)
	for _, seg := range p {
		checkSegment(seg)
		sb.WriteString(" -> '" + seg + "'")
	}
	sb.WriteString(")")
	return sb.String()
}

// compiler binds a filter's values. col is the JSONB column its paths
// read: "" for a record's doc (whose id may go to the id column), "data"
// for a job's data (issue 20), where "id" is a field like any other.
type compiler struct {
	args []any
	col  string
}

func (c *compiler) valueExpr(p backend.Path) string {
	if c.col == "" {
		return valueExpr(p)
	}
	return columnExpr(c.col, p)
}

func (c *compiler) bind(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

// jsonArg binds a scalar as its JSON text, compared as jsonb: jsonb
// equality is type-strict (1, "1" and true differ) and numeric (1 = 1.0).
func (c *compiler) jsonArg(v any) string {
	b, _ := backend.Marshal(v)
	return c.bind(string(b)) + "::jsonb"
}

func (c *compiler) filter(f backend.Filter) string {
	switch n := f.(type) {
	case *backend.And:
		if len(n.Children) == 0 {
			return "true"
		}
		parts := make([]string, len(n.Children))
		for i, ch := range n.Children {
			parts[i] = c.filter(ch)
		}
		return "(" + strings.Join(parts, " AND ") + ")"
	case *backend.Or:
		parts := make([]string, len(n.Children))
		for i, ch := range n.Children {
			parts[i] = c.filter(ch)
		}
		return "(" + strings.Join(parts, " OR ") + ")"
	case *backend.Not:
		return "(NOT coalesce(" + c.filter(n.Child) + ", false))"
	case *backend.Cond:
		return c.cond(n)
	}
	panic(fmt.Sprintf("postgres: unknown filter node %T", f))
}

func (c *compiler) eq(v string, want any) string {
	if want == nil {
		return "(" + v + " IS NULL OR " + v + " = 'null'::jsonb)"
	}
	return "(" + v + " = " + c.jsonArg(want) + ")"
}

func (c *compiler) cond(n *backend.Cond) string {
	if s, ok := backend.IDColumn(n); ok && c.col == "" {
		return "(id " + backend.CompareOp(n.Op) + " " + c.bind(s) + ")"
	}
	v := c.valueExpr(n.Path)
	switch n.Op {
	case backend.OpEq:
		return c.eq(v, n.Value)
	case backend.OpIn:
		// The values go as one jsonb[] parameter: a $in of any length is
		// one parameter (the protocol allows 65535 in a statement), and
		// "= ANY" is served by an index as an IN list is.
		var parts, list []string
		for _, x := range n.Values {
			if x == nil {
				parts = append(parts, c.eq(v, nil))
				continue
			}
			b, _ := backend.Marshal(x)
			list = append(list, string(b))
		}
		if len(list) > 0 {
			parts = append(parts, "("+v+" = ANY("+c.bind(list)+"::jsonb[]))")
		}
		if len(parts) == 0 {
			return "false"
		}
		return "(" + strings.Join(parts, " OR ") + ")"
	case backend.OpExists:
		return "(" + v + " IS NOT NULL)"
	case backend.OpGt, backend.OpGte, backend.OpLt, backend.OpLte:
		op := map[backend.Op]string{backend.OpGt: ">", backend.OpGte: ">=", backend.OpLt: "<", backend.OpLte: "<="}[n.Op]
		if s, ok := n.Value.(string); ok {
			// Strings compare by code point whatever the database's
			// collation.
			return "(jsonb_typeof(" + v + ") = 'string' AND (" + v + " #>> '{}') COLLATE \"C\" " + op + " " + c.bind(s) + ")"
		}
		return "(jsonb_typeof(" + v + ") = 'number' AND " + v + " " + op + " " + c.jsonArg(n.Value) + ")"
	case backend.OpStartsWith:
		return "(jsonb_typeof(" + v + ") = 'string' AND starts_with(" + v + " #>> '{}', " + c.bind(n.Value.(string)) + "))"
	case backend.OpContains:
		// Containment of a one-element array: true when a top-level
		// element equals the operand (jsonb equality, type-strict), not
		// one nested deeper. An EXISTS over jsonb_array_elements says the
		// same, but the planner turns each into a join, and a filter
		// with a thousand of them took minutes to plan.
		b, _ := backend.Marshal([]any{n.Value})
		return "(jsonb_typeof(" + v + ") = 'array' AND " + v + " @> " + c.bind(string(b)) + "::jsonb)"
	}
	panic(fmt.Sprintf("postgres: unknown operator %d", n.Op))
}

// orderBy renders the sort keys with DESIGN's cross-type order, then id.
func orderBy(keys []backend.SortKey) string {
	var parts []string
	for _, k := range keys {
		v := valueExpr(k.Path)
		dir := "ASC"
		if k.Desc {
			dir = "DESC"
		}
		rank := "CASE WHEN " + v + " IS NULL THEN 0 ELSE CASE jsonb_typeof(" + v + ") WHEN 'null' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3" +
			" WHEN 'boolean' THEN CASE WHEN " + v + " = 'true'::jsonb THEN 5 ELSE 4 END ELSE 6 END END"
		num := "CASE WHEN jsonb_typeof(" + v + ") = 'number' THEN (" + v + ")::numeric END"
		str := "CASE WHEN jsonb_typeof(" + v + ") = 'string' THEN " + v + " #>> '{}' END COLLATE \"C\""
		parts = append(parts, rank+" "+dir, num+" "+dir, str+" "+dir)
	}
	parts = append(parts, "id ASC")
	return strings.Join(parts, ", ")
}

// indexSQL renders ensureIndex as expression indexes on the collection's
// table: a plain one the filter SQL uses, and for a unique spec a second
// one that enforces uniqueness over scalar values only (jsonb equality
// keeps 1, "1" and true apart). Index names are per schema: they come
// from the collection and index names.
func indexSQL(table, collection string, spec backend.IndexSpec) (name string, ddl []string) {
	sum := sha256.Sum256([]byte(collection + "\x00" + spec.Name))
	name = "storaged_ix_" + hex.EncodeToString(sum[:10])
	var cols, scalar []string
	for _, p := range spec.Fields {
		v := valueExpr(p)
		cols = append(cols, v)
		scalar = append(scalar, "jsonb_typeof("+v+") IN ('string', 'number', 'boolean')")
	}
	ddl = append(ddl, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (%s)`, name, table, strings.Join(cols, ", ")))
	if spec.Unique {
		ddl = append(ddl, fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS u%s ON %s (%s) WHERE %s`,
			name, table, strings.Join(cols, ", "), strings.Join(scalar, " AND ")))
	}
	return name, ddl
}
