package backendtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/testutil"
)

// testLargeFilters runs filters at and around the parser's limits (DESIGN
// §2, docs/decisions.md "Limits against hostile input"). Every filter the
// parser accepts must be answered, as memory answers it: a database's own
// limits (bound parameters, expression depth) are the adapter's to stay
// under, never a 500. Shapes from issue 13 (items 7 and 18).
func testLargeFilters(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	ref := memory.NewRepositoryBackend().Repository("ref")
	for i := 0; i < 12; i++ {
		doc := map[string]any{"id": fmt.Sprintf("r%02d", i), "v": float64(i * 50), "s": fmt.Sprint("s", i*50), "tags": []any{float64(i)}}
		for f := 0; f < 70; f++ {
			doc[fmt.Sprint("f", f)] = float64((i + f) % 3)
		}
		cp, err := backend.Decode(mustEncode(t, doc))
		must(t, err)
		create(t, r, doc)
		_, err = ref.Create(ctx(t), cp)
		must(t, err)
	}
	values := func(n, offset int) []any {
		out := make([]any, n)
		for i := range out {
			// Numbers and strings, so that both kinds of list are long.
			if i%2 == 0 {
				out[i] = float64(i*25 + offset)
			} else {
				out[i] = fmt.Sprint("s", i*25+offset)
			}
		}
		return out
	}
	ninFields := func(fields, n int) map[string]any {
		f := map[string]any{}
		for i := 0; i < fields; i++ {
			f[fmt.Sprint("f", i)] = map[string]any{"$nin": values(n, i)}
		}
		f["v"] = map[string]any{"$nin": values(n, 0)}
		return f
	}
	orOf := func(n int, leaf func(i int) map[string]any) map[string]any {
		kids := make([]any, n)
		for i := range kids {
			kids[i] = leaf(i)
		}
		return map[string]any{"$or": kids}
	}
	manyFields := func(n int) map[string]any {
		f := map[string]any{}
		for i := 0; i < n; i++ {
			f[fmt.Sprintf("x%04d", i)] = map[string]any{"$ne": float64(i)}
		}
		return f
	}
	// count: also through Count, for the shapes of the issue. Every case
	// is a statement of thousands of terms to compile, which is slow
	// under the race detector; the others go through FindMany only.
	cases := []struct {
		name          string
		filter        map[string]any
		refuse, count bool
	}{
		{"$or of 500 equalities", orOf(500, func(i int) map[string]any { return map[string]any{"v": float64(i)} }), false, true},
		{"$or of 1000 equalities", orOf(1000, func(i int) map[string]any { return map[string]any{"v": float64(i)} }), false, false},
		{"$or of 1001 equalities", orOf(1001, func(i int) map[string]any { return map[string]any{"v": float64(i)} }), true, false},
		{"$or of 1000 $in of 20 values", orOf(1000, func(i int) map[string]any {
			return map[string]any{"s": map[string]any{"$in": values(20, i)}}
		}), false, false},
		{"$or of 1000 $startsWith", orOf(1000, func(i int) map[string]any {
			return map[string]any{"s": map[string]any{"$startsWith": fmt.Sprint("s", i)}}
		}), false, false},
		{"$and of 1000 $contains", map[string]any{"$and": orOf(1000, func(i int) map[string]any {
			return map[string]any{"tags": map[string]any{"$contains": float64(i % 2)}}
		})["$or"]}, false, false},
		{"33 × $nin of 1000", ninFields(33, 1000), false, true},
		{"66 × $nin of 1000", ninFields(66, 1000), false, true},
		{"object with 1000 fields", manyFields(1000), false, true},
		{"object with 1001 fields", manyFields(1001), true, false},
		{"$in of 1001 values", map[string]any{"v": map[string]any{"$in": values(1001, 0)}}, true, false},
		{"$or of 1000 empty filters", orOf(1000, func(int) map[string]any { return map[string]any{} }), false, false},
		{"$or of 1001 empty filters", orOf(1001, func(int) map[string]any { return map[string]any{} }), true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := testutil.MustJSON(t, map[string]any{"filter": c.filter, "sort": map[string]any{"v": "desc"}})
			q, err := backend.ParseQuery(raw)
			if c.refuse {
				wantCode(t, err, backend.CodeInvalidArgument)
				if !strings.Contains(err.Error(), "1000") {
					t.Fatalf("the refusal does not name the limit: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("a filter within the limits was refused: %v", err)
			}
			want, err := ref.FindMany(ctx(t), q)
			must(t, err)
			got, err := r.FindMany(ctx(t), q)
			if err != nil {
				t.Fatalf("findMany: %v", err)
			}
			if w, g := ids(t, want), ids(t, got); !slices.Equal(w, g) {
				t.Fatalf("findMany: memory %v, backend %v", w, g)
			}
			if !c.count {
				return
			}
			n, err := r.Count(ctx(t), q.Filter)
			if err != nil {
				t.Fatalf("count: %v", err)
			}
			if int(n) != len(want) {
				t.Fatalf("count %d, want %d", n, len(want))
			}
		})
	}
}
