package sqlite

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// This file compiles the filter and sort AST to SQLite SQL. Paths appear
// in the SQL text — indexes only match literal expressions — so they are
// checked again here, even though the parser validated them; every value
// is a bound parameter. Tables are named after catalog ids, never after
// collection names (collections.go).
//
// Every condition evaluates to 0 or 1, never NULL, so that NOT keeps its
// meaning for missing fields.

// jsonPath renders a validated path as a SQLite JSON path: $."a"."b".
func jsonPath(p backend.Path) string {
	var sb strings.Builder
	sb.WriteString("$")
	for _, seg := range p {
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c == '-') {
				panic(fmt.Sprintf("sqlite: unvalidated path segment %q reached the SQL compiler", seg))
			}
		}
		sb.WriteString(`."` + seg + `"`)
	}
	return sb.String()
}

func valueExpr(p backend.Path) string { return "json_extract(doc, '" + jsonPath(p) + "')" }
func typeExpr(p backend.Path) string  { return "json_type(doc, '" + jsonPath(p) + "')" }

// compiler binds a filter's values. col is the JSON column its paths
// read: "" for a record's doc (whose id may go to the id column), "data"
// for a job's data (issue 20), where "id" is a field like any other.
type compiler struct {
	args []any
	col  string
}

func (c *compiler) column() string {
	if c.col == "" {
		return "doc"
	}
	return c.col
}

func (c *compiler) valueExpr(p backend.Path) string {
	return "json_extract(" + c.column() + ", '" + jsonPath(p) + "')"
}

func (c *compiler) typeExpr(p backend.Path) string {
	return "json_type(" + c.column() + ", '" + jsonPath(p) + "')"
}

func (c *compiler) bind(v any) string {
	c.args = append(c.args, v)
	return "?"
}

// Lists of $in values: a short list is bound value by value, which lets
// the planner count its values (with one opaque parameter it assumes a
// long list, and prefers scanning in id order to an index); past
// inlineList values, or once the statement holds inlineBudget
// parameters, a list is bound as one JSON array that json_each expands.
// Every other condition binds at most two values, so a filter within the
// parser's limits stays far below SQLite's limit on bound parameters
// (32766), however many long lists it holds.
const (
	inlineList   = 16
	inlineBudget = 1000
)

// bindList binds a list of values for "x IN <list>".
func (c *compiler) bindList(vs []any) string {
	if len(vs) <= inlineList && len(c.args)+len(vs) <= inlineBudget {
		ph := make([]string, len(vs))
		for i, v := range vs {
			ph[i] = c.bind(v)
		}
		return "(" + strings.Join(ph, ", ") + ")"
	}
	b, err := json.Marshal(vs)
	if err != nil {
		panic(fmt.Sprintf("sqlite: a scalar list cannot be encoded: %v", err))
	}
	// json_each gives JSON numbers back as numbers and strings as text,
	// so the list compares as the bound scalars would.
	return "(SELECT value FROM json_each(" + c.bind(string(b)) + "))"
}

// balanced joins conditions with op as a balanced tree of parentheses.
// SQLite parses "a AND b AND c …" into a chain as deep as the list is
// long, and refuses an expression deeper than 1000: a filter with
// 1000 fields would not compile. Balanced, the depth is log2 of it.
func balanced(parts []string, op string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	mid := len(parts) / 2
	return "(" + balanced(parts[:mid], op) + " " + op + " " + balanced(parts[mid:], op) + ")"
}

func (c *compiler) filter(f backend.Filter) string {
	switch n := f.(type) {
	case *backend.And:
		if len(n.Children) == 0 {
			return "1"
		}
		parts := make([]string, len(n.Children))
		for i, ch := range n.Children {
			parts[i] = c.filter(ch)
		}
		return "(" + balanced(parts, "AND") + ")"
	case *backend.Or:
		parts := make([]string, len(n.Children))
		for i, ch := range n.Children {
			parts[i] = c.filter(ch)
		}
		return "(" + balanced(parts, "OR") + ")"
	case *backend.Not:
		return "(NOT " + c.filter(n.Child) + ")"
	case *backend.Cond:
		return c.cond(n)
	}
	panic(fmt.Sprintf("sqlite: unknown filter node %T", f))
}

// eq is type-strict equality with a scalar; nil means null or missing.
func (c *compiler) eq(p backend.Path, v any) string {
	t, val := c.typeExpr(p), c.valueExpr(p)
	switch x := v.(type) {
	case nil:
		return "(coalesce(" + t + ", 'null') = 'null')"
	case bool:
		if x {
			return "(" + t + " IS 'true')"
		}
		return "(" + t + " IS 'false')"
	case float64:
		return "(coalesce(" + t + ", '') IN ('integer', 'real') AND " + val + " = " + c.bind(x) + ")"
	case string:
		return "(" + t + " IS 'text' AND " + val + " = " + c.bind(x) + ")"
	}
	panic(fmt.Sprintf("sqlite: non-scalar operand %T", v))
}

func (c *compiler) cond(n *backend.Cond) string {
	if s, ok := backend.IDColumn(n); ok && c.col == "" {
		return "(id " + backend.CompareOp(n.Op) + " " + c.bind(s) + ")"
	}
	t, val := c.typeExpr(n.Path), c.valueExpr(n.Path)
	switch n.Op {
	case backend.OpEq:
		return c.eq(n.Path, n.Value)
	case backend.OpIn:
		// Strings and numbers go in one IN list each, which an index
		// can serve; booleans and null are single type tests. Values are
		// bound in the order their placeholders appear in the text.
		var strs, nums []any
		var parts []string
		for _, v := range n.Values {
			switch x := v.(type) {
			case string:
				strs = append(strs, x)
			case float64:
				nums = append(nums, x)
			default:
				parts = append(parts, c.eq(n.Path, v))
			}
		}
		if len(strs) > 0 {
			parts = append(parts, "("+t+" IS 'text' AND "+val+" IN "+c.bindList(strs)+")")
		}
		if len(nums) > 0 {
			parts = append(parts, "(coalesce("+t+", '') IN ('integer', 'real') AND "+val+" IN "+c.bindList(nums)+")")
		}
		if len(parts) == 0 {
			return "0"
		}
		return "(" + balanced(parts, "OR") + ")"
	case backend.OpExists:
		return "(" + t + " IS NOT NULL)"
	case backend.OpGt, backend.OpGte, backend.OpLt, backend.OpLte:
		op := map[backend.Op]string{backend.OpGt: ">", backend.OpGte: ">=", backend.OpLt: "<", backend.OpLte: "<="}[n.Op]
		if s, ok := n.Value.(string); ok {
			return "(" + t + " IS 'text' AND " + val + " " + op + " " + c.bind(s) + ")"
		}
		return "(coalesce(" + t + ", '') IN ('integer', 'real') AND " + val + " " + op + " " + c.bind(n.Value.(float64)) + ")"
	case backend.OpStartsWith:
		s := n.Value.(string)
		return "(" + t + " IS 'text' AND substr(" + val + ", 1, length(" + c.bind(s) + ")) = " + c.bind(s) + ")"
	case backend.OpContains:
		var elem string
		switch x := n.Value.(type) {
		case nil:
			elem = "e.type = 'null'"
		case bool:
			elem = "e.type = '" + map[bool]string{true: "true", false: "false"}[x] + "'"
		case float64:
			elem = "e.type IN ('integer', 'real') AND e.value = " + c.bind(x)
		case string:
			elem = "e.type = 'text' AND e.value = " + c.bind(x)
		}
		return "(" + t + " IS 'array' AND EXISTS (SELECT 1 FROM json_each(" + c.column() + ", '" + jsonPath(n.Path) + "') AS e WHERE " + elem + "))"
	}
	panic(fmt.Sprintf("sqlite: unknown operator %d", n.Op))
}

// orderBy renders the sort keys with DESIGN's cross-type order, then id.
func orderBy(keys []backend.SortKey) string {
	var parts []string
	for _, k := range keys {
		t, val := typeExpr(k.Path), valueExpr(k.Path)
		dir := "ASC"
		if k.Desc {
			dir = "DESC"
		}
		rank := "CASE coalesce(" + t + ", 'missing') WHEN 'missing' THEN 0 WHEN 'null' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2" +
			" WHEN 'text' THEN 3 WHEN 'false' THEN 4 WHEN 'true' THEN 5 ELSE 6 END"
		value := "CASE WHEN coalesce(" + t + ", '') IN ('integer', 'real', 'text') THEN " + val + " END"
		parts = append(parts, rank+" "+dir, value+" "+dir)
	}
	parts = append(parts, "id ASC")
	return strings.Join(parts, ", ")
}

// indexSQL renders ensureIndex as expression indexes on the collection's
// table, which the filter SQL uses. A unique index adds a second one that
// enforces it: it covers only records whose indexed values are all
// scalars, keyed by JSON type as well, so that 1, "1" and true are three
// values — a partial index the lookups cannot use, hence two. Index names
// are global in SQLite: they come from the collection and index names.
func indexSQL(table, collection string, spec backend.IndexSpec) (name string, ddl []string) {
	sum := sha256.Sum256([]byte(collection + "\x00" + spec.Name))
	name = "ix_" + hex.EncodeToString(sum[:10])
	var cols, ucols, uwhere []string
	for _, p := range spec.Fields {
		t := typeExpr(p)
		// The type next to the value lets a count be answered from the
		// index alone: every condition tests both.
		cols = append(cols, valueExpr(p), t)
		ucols = append(ucols, valueExpr(p), "CASE "+t+" WHEN 'integer' THEN 'n' WHEN 'real' THEN 'n' WHEN 'text' THEN 's' ELSE 'b' END")
		uwhere = append(uwhere, t+" IN ('integer', 'real', 'text', 'true', 'false')")
	}
	ddl = append(ddl, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS "%s" ON %s (%s)`, name, table, strings.Join(cols, ", ")))
	if spec.Unique {
		ddl = append(ddl, fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS "u%s" ON %s (%s) WHERE %s`,
			name, table, strings.Join(ucols, ", "), strings.Join(uwhere, " AND ")))
	}
	return name, ddl
}
