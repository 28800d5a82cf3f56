package postgres

import (
	"strconv"
	"strings"

	"github.com/storaged/storaged/internal/backend"
)

// This file compiles update operators (backend.Update) to PostgreSQL: an
// expression for the new document and a guard that holds exactly when
// ApplyUpdate would not refuse the record (see sqlite/update.go, which
// this mirrors). Fields are read with -> (valueExpr), which never indexes
// an array, and written with jsonb_set, which only creates the last key
// of its path: a path whose objects are missing is written as the nested
// object it needs, at the first missing level.
//
// Steps chain through subqueries, each naming its result d<n>, so the
// text grows with the number of operators, not exponentially.

type updateSQL struct {
	expr  string
	guard string
}

// readAt is the value at path p of document d, through objects only.
func readAt(d string, p backend.Path) string {
	var sb strings.Builder
	sb.WriteString("(" + d)
	for _, seg := range p {
		checkSegment(seg)
		sb.WriteString(" -> '" + seg + "'")
	}
	sb.WriteString(")")
	return sb.String()
}

// pathLit is p as a text[] literal for jsonb_set and #-.
func pathLit(p backend.Path) string {
	parts := make([]string, len(p))
	for i, seg := range p {
		checkSegment(seg)
		parts[i] = `"` + seg + `"`
	}
	return "'{" + strings.Join(parts, ",") + "}'::text[]"
}

// create writes v at p in d, making the objects missing on the way.
func create(d string, p backend.Path, v string) string {
	if len(p) == 1 {
		return "jsonb_set(" + d + ", " + pathLit(p) + ", " + v + ")"
	}
	var sb strings.Builder
	sb.WriteString("CASE")
	for i := 1; i < len(p); i++ {
		nested := v
		for j := len(p) - 1; j >= i; j-- {
			nested = "jsonb_build_object('" + p[j] + "', " + nested + ")"
		}
		sb.WriteString(" WHEN " + readAt(d, p[:i]) + " IS NULL THEN jsonb_set(" + d + ", " + pathLit(p[:i]) + ", " + nested + ")")
	}
	sb.WriteString(" ELSE jsonb_set(" + d + ", " + pathLit(p) + ", " + v + ") END")
	return sb.String()
}

func compileUpdate(c *compiler, up backend.Update) updateSQL {
	if up.Ops == nil {
		// A shallow merge is what || does to objects.
		return updateSQL{expr: "(doc || " + c.jsonArg(up.Merge) + ")", guard: "true"}
	}
	var steps []func(d string) string
	var guards []string
	for _, op := range up.Ops {
		p := op.Path
		target := readAt("doc", p)
		if op.Kind.Creates() {
			for i := 1; i < len(p); i++ {
				guards = append(guards, "coalesce(jsonb_typeof("+readAt("doc", p[:i])+"), 'object') = 'object'")
			}
		}
		switch op.Kind {
		case backend.UpdInc:
			guards = append(guards, "coalesce(jsonb_typeof("+target+"), 'number') = 'number'")
		case backend.UpdPush, backend.UpdPull, backend.UpdAddToSet:
			guards = append(guards, "coalesce(jsonb_typeof("+target+"), 'array') = 'array'")
		}
		switch op.Kind {
		case backend.UpdSet:
			v := c.jsonArg(op.Value)
			steps = append(steps, func(d string) string { return create(d, p, v) })
		case backend.UpdUnset:
			steps = append(steps, func(d string) string {
				if len(p) == 1 {
					return "(" + d + " - '" + p[0] + "')"
				}
				return "CASE WHEN jsonb_typeof(" + readAt(d, p[:len(p)-1]) + ") = 'object' THEN " + d + " #- " + pathLit(p) + " ELSE " + d + " END"
			})
		case backend.UpdInc:
			n := c.jsonArg(op.Value)
			steps = append(steps, func(d string) string {
				return "CASE WHEN " + readAt(d, p) + " IS NULL THEN " + create(d, p, n) +
					" ELSE jsonb_set(" + d + ", " + pathLit(p) + ", to_jsonb(" + readAt(d, p) + "::numeric + " + n + "::numeric)) END"
			})
		case backend.UpdPush:
			vals := c.jsonArg(op.Values)
			steps = append(steps, func(d string) string {
				return "CASE WHEN " + readAt(d, p) + " IS NULL THEN " + create(d, p, vals) +
					" ELSE jsonb_set(" + d + ", " + pathLit(p) + ", " + readAt(d, p) + " || " + vals + ") END"
			})
		case backend.UpdAddToSet:
			vals := c.jsonArg(op.Values)
			steps = append(steps, func(d string) string {
				cur := readAt(d, p)
				// Containment of a scalar in an array looks at the top
				// level only, and is type-strict: what $addToSet means.
				return "CASE WHEN " + cur + " IS NULL THEN " + create(d, p, vals) +
					" ELSE jsonb_set(" + d + ", " + pathLit(p) + ", " + cur + " || coalesce((SELECT jsonb_agg(x.v ORDER BY x.i)" +
					" FROM jsonb_array_elements(" + vals + ") WITH ORDINALITY AS x(v, i) WHERE NOT " + cur + " @> jsonb_build_array(x.v)), '[]'::jsonb)) END"
			})
		case backend.UpdPull:
			v := c.jsonArg(op.Value)
			steps = append(steps, func(d string) string {
				cur := readAt(d, p)
				return "CASE WHEN jsonb_typeof(" + cur + ") = 'array' THEN jsonb_set(" + d + ", " + pathLit(p) +
					", coalesce((SELECT jsonb_agg(x.e ORDER BY x.i) FROM jsonb_array_elements(" + cur + ") WITH ORDINALITY AS x(e, i)" +
					" WHERE x.e <> " + v + "), '[]'::jsonb)) ELSE " + d + " END"
			})
		}
	}
	u := updateSQL{expr: "doc", guard: "true"}
	if len(steps) > 0 {
		expr := "SELECT " + steps[0]("doc") + " AS d1"
		for i := 1; i < len(steps); i++ {
			n := strconv.Itoa(i)
			expr = "SELECT " + steps[i]("s"+n+".d"+n) + " AS d" + strconv.Itoa(i+1) + " FROM (" + expr + ") AS s" + n
		}
		n := strconv.Itoa(len(steps))
		u.expr = "(SELECT s" + n + ".d" + n + " FROM (" + expr + ") AS s" + n + ")"
	}
	if len(guards) > 0 {
		u.guard = "(" + strings.Join(guards, " AND ") + ")"
	}
	return u
}
