package sqlite

import (
	"math"
	"strconv"
	"strings"

	"github.com/storaged/storaged/internal/backend"
)

// This file compiles update operators (backend.Update) to SQLite: one
// expression for the new document and one guard that holds exactly when
// ApplyUpdate would not refuse the record. Statements put the guard in
// their WHERE clause, so an update either applies to a record whole or
// leaves it alone; the caller then asks the reference why.
//
// Operators are applied one after the other, each to the document the
// previous one produced. Nesting their expressions would repeat the inner
// ones in every CASE and EXISTS of the outer (exponential text); instead
// each step is a subquery that names its result d<n>, and the next one
// reads that column:
//
//	(SELECT d2 FROM (SELECT f2(d1) AS d2 FROM (SELECT f1(doc) AS d1)))
//
// Parameters are numbered (?N) because the steps appear in the text in the
// reverse of the order they are compiled; filter conditions after them
// use plain ?, which SQLite numbers after the largest ?N.

type updateSQL struct {
	expr  string // the new document (JSON text)
	guard string // "1" when nothing can refuse
	args  []any
}

func (u *updateSQL) bind(v any) string {
	u.args = append(u.args, v)
	return "?" + strconv.Itoa(len(u.args))
}

func (u *updateSQL) bindJSON(v any) string {
	b, err := backend.Marshal(v)
	if err != nil {
		panic("sqlite: an update operand cannot be encoded: " + err.Error())
	}
	return "json(" + u.bind(string(b)) + ")"
}

// bindNumber binds an integral amount as an integer, so that integers stay
// integers ("n": 2, not 2.0) as they do in the reference.
func (u *updateSQL) bindNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return u.bind(int64(f))
	}
	return u.bind(f)
}

func compileUpdate(up backend.Update) *updateSQL {
	u := &updateSQL{guard: "1", expr: "doc"}
	if up.Ops == nil {
		// A shallow merge is one json_set of every top-level field.
		if len(up.Merge) > 0 {
			var pairs []string
			for _, op := range backend.MergeOps(up.Merge) {
				pairs = append(pairs, "'"+jsonPath(op.Path)+"', "+u.bindJSON(op.Value))
			}
			u.expr = "json_set(doc, " + strings.Join(pairs, ", ") + ")"
		}
		return u
	}
	var steps []func(d string) string
	var guards []string
	for _, op := range up.Ops {
		jp := "'" + jsonPath(op.Path) + "'"
		if op.Kind.Creates() {
			for i := 1; i < len(op.Path); i++ {
				guards = append(guards, "coalesce(json_type(doc, '"+jsonPath(op.Path[:i])+"'), 'object') = 'object'")
			}
		}
		switch op.Kind {
		case backend.UpdInc:
			guards = append(guards, "coalesce(json_type(doc, "+jp+"), 'integer') IN ('integer', 'real')")
		case backend.UpdPush, backend.UpdPull, backend.UpdAddToSet:
			guards = append(guards, "coalesce(json_type(doc, "+jp+"), 'array') = 'array'")
		}
		// Each step is a function of the previous document, d. Operands
		// are bound here, once, whatever text the step is put into.
		switch op.Kind {
		case backend.UpdSet:
			v := u.bindJSON(op.Value)
			steps = append(steps, func(d string) string { return "json_set(" + d + ", " + jp + ", " + v + ")" })
		case backend.UpdUnset:
			steps = append(steps, func(d string) string { return "json_remove(" + d + ", " + jp + ")" })
		case backend.UpdInc:
			n := u.bindNumber(op.Value.(float64))
			steps = append(steps, func(d string) string {
				return "json_set(" + d + ", " + jp + ", coalesce(json_extract(" + d + ", " + jp + "), 0) + " + n + ")"
			})
		case backend.UpdPush:
			var pairs []string
			for _, v := range op.Values {
				pairs = append(pairs, "'$[#]', "+u.bindJSON(v))
			}
			steps = append(steps, func(d string) string {
				arr := "json(coalesce(json_extract(" + d + ", " + jp + "), '[]'))"
				if len(pairs) > 0 {
					arr = "json_insert(" + arr + ", " + strings.Join(pairs, ", ") + ")"
				}
				return "json_set(" + d + ", " + jp + ", " + arr + ")"
			})
		case backend.UpdAddToSet:
			if len(op.Values) == 0 {
				steps = append(steps, func(d string) string {
					return "json_set(" + d + ", " + jp + ", json(coalesce(json_extract(" + d + ", " + jp + "), '[]')))"
				})
			}
			for _, v := range op.Values {
				eq, val := u.elemEq(v), u.bindJSON(v)
				steps = append(steps, func(d string) string {
					return "CASE WHEN EXISTS (SELECT 1 FROM json_each(" + d + ", " + jp + ") AS e WHERE " + eq + ") THEN " + d +
						" ELSE json_set(" + d + ", " + jp + ", json_insert(coalesce(json_extract(" + d + ", " + jp + "), '[]'), '$[#]', " + val + ")) END"
				})
			}
		case backend.UpdPull:
			// json_each gives booleans as 1 and 0 and nested values as
			// text: each element is turned back into JSON before it is
			// gathered again.
			eq := u.elemEq(op.Value)
			steps = append(steps, func(d string) string {
				elem := "CASE e.type WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') WHEN 'null' THEN json('null')" +
					" WHEN 'object' THEN json(e.value) WHEN 'array' THEN json(e.value) ELSE e.value END"
				return "CASE WHEN json_type(" + d + ", " + jp + ") = 'array' THEN json_set(" + d + ", " + jp + ", json((SELECT json_group_array(" + elem +
					" ORDER BY e.id) FROM json_each(" + d + ", " + jp + ") AS e WHERE NOT (" + eq + ")))) ELSE " + d + " END"
			})
		}
	}
	expr := "doc"
	if len(steps) > 0 {
		expr = "SELECT " + steps[0]("doc") + " AS d1"
		for i := 1; i < len(steps); i++ {
			expr = "SELECT " + steps[i]("d"+strconv.Itoa(i)) + " AS d" + strconv.Itoa(i+1) + " FROM (" + expr + ")"
		}
		expr = "(SELECT d" + strconv.Itoa(len(steps)) + " FROM (" + expr + "))"
	}
	u.expr = expr
	u.guard = "1"
	if len(guards) > 0 {
		u.guard = "(" + balanced(guards, "AND") + ")"
	}
	return u
}

// elemEq is type-strict equality of an array element e with a scalar.
func (u *updateSQL) elemEq(v any) string {
	switch x := v.(type) {
	case nil:
		return "e.type = 'null'"
	case bool:
		if x {
			return "e.type = 'true'"
		}
		return "e.type = 'false'"
	case float64:
		return "e.type IN ('integer', 'real') AND e.value = " + u.bind(x)
	case string:
		return "e.type = 'text' AND e.value = " + u.bind(x)
	}
	panic("sqlite: non-scalar operand reached the update compiler")
}
