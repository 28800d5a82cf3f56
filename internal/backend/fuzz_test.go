package backend_test

import (
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
)

// FuzzParseQuery: any bytes either parse into a query the evaluator can
// run or are refused with invalid_argument; nothing panics. The seed
// corpus is in testdata/fuzz/FuzzParseQuery.
func FuzzParseQuery(f *testing.F) {
	f.Add([]byte(`{"filter":{"a.b":{"$gt":1}},"sort":{"a":"desc"},"limit":5}`))
	doc := map[string]any{"id": "x", "a": map[string]any{"b": 2.0}, "tags": []any{"t"}, "s": "str"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := backend.ParseQuery(raw)
		if err != nil {
			if backend.ErrorCode(err) != backend.CodeInvalidArgument {
				t.Fatalf("parse error with code %s: %v", backend.ErrorCode(err), err)
			}
			return
		}
		memory.Match(q.Filter, doc)
		memory.CompareDocs(q.Sort, doc, doc)
		for _, k := range q.Sort {
			if _, err := backend.ParsePath(k.Path.String()); err != nil {
				t.Fatalf("accepted an invalid sort path %q", k.Path)
			}
		}
		if q.Limit < 0 || q.Offset < 0 {
			t.Fatalf("accepted negative paging %+v", q)
		}
	})
}

// FuzzParseFilter checks that every path an accepted filter holds is a
// valid path: the guarantee the SQL compilers rely on.
func FuzzParseFilter(f *testing.F) {
	f.Add([]byte(`{"$or":[{"a":1},{"b.c":{"$in":[1,"x",null]}}],"$not":{"d":{"$exists":false}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		flt, err := backend.ParseFilter(raw)
		if err != nil {
			if backend.ErrorCode(err) != backend.CodeInvalidArgument {
				t.Fatalf("parse error with code %s", backend.ErrorCode(err))
			}
			return
		}
		var walk func(backend.Filter)
		walk = func(n backend.Filter) {
			switch n := n.(type) {
			case *backend.And:
				for _, c := range n.Children {
					walk(c)
				}
			case *backend.Or:
				if len(n.Children) == 0 {
					t.Fatal("empty $or accepted")
				}
				for _, c := range n.Children {
					walk(c)
				}
			case *backend.Not:
				walk(n.Child)
			case *backend.Cond:
				if _, err := backend.ParsePath(n.Path.String()); err != nil {
					t.Fatalf("accepted invalid path %q", n.Path)
				}
			default:
				t.Fatalf("unknown node %T", n)
			}
		}
		walk(flt)
	})
}
