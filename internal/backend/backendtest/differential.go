package backendtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/testutil"
)

// RunDifferential generates random documents, filters and sorts from
// fixed seeds and requires b to return the same ids, in the same order,
// as the memory backend (the reference). A failure names the seed and the
// query, so it can be replayed.
func RunDifferential(t *testing.T, newBackend NewRepository) {
	b := newBackend(t)
	ref := memory.NewRepositoryBackend()
	const seeds, docsPerSeed, queriesPerSeed = 20, 150, 60
	for seed := uint64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		name := testutil.Name(t, fmt.Sprint("diff", seed))
		got, want := b.Repository(name), ref.Repository(name)
		for i := 0; i < docsPerSeed; i++ {
			doc := randomDoc(rng, i)
			cp, _ := backend.Decode(mustEncode(t, doc))
			if _, err := got.Create(ctx(t), doc); err != nil {
				t.Fatalf("seed %d: create: %v", seed, err)
			}
			if _, err := want.Create(ctx(t), cp); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < queriesPerSeed; i++ {
			raw := randomQuery(rng)
			q, err := backend.ParseQuery(raw)
			if err != nil {
				t.Fatalf("seed %d: generated an invalid query %s: %v", seed, raw, err)
			}
			wr, err := want.FindMany(ctx(t), q)
			must(t, err)
			gr, err := got.FindMany(ctx(t), q)
			if err != nil {
				t.Fatalf("seed %d query %s: %v", seed, raw, err)
			}
			if w, g := ids(t, wr), ids(t, gr); !slices.Equal(w, g) {
				t.Fatalf("seed %d query %s\nmemory %v\nbackend %v", seed, raw, w, g)
			}
			wn, _ := want.Count(ctx(t), q.Filter)
			gn, err := got.Count(ctx(t), q.Filter)
			if err != nil || wn != gn {
				t.Fatalf("seed %d query %s: count memory %d, backend %d (%v)", seed, raw, wn, gn, err)
			}
		}
	}
	t.Run("Updates", func(t *testing.T) { runUpdateDifferential(t, b) })
}

func mustEncode(t *testing.T, doc map[string]any) []byte {
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var scalars = []any{nil, true, false, 0.0, 1.0, -1.0, 2.5, -0.5, 1e10, 3.0, "", "a", "A", "b", "ab", "B", "é", "e\u0301", "😀", "ｚ", "1", "10", "null"}

func randomScalar(rng *rand.Rand) any { return scalars[rng.IntN(len(scalars))] }

func randomValue(rng *rand.Rand, depth int) any {
	switch r := rng.IntN(10); {
	case r < 7:
		return randomScalar(rng)
	case r < 9:
		n := rng.IntN(4)
		arr := make([]any, n)
		for i := range arr {
			arr[i] = randomScalar(rng)
		}
		return arr
	default:
		if depth > 1 {
			return randomScalar(rng)
		}
		return map[string]any{"d": randomValue(rng, depth+1), "e": randomScalar(rng), "0": randomScalar(rng)}
	}
}

var diffFields = []string{"a", "b", "c", "tags"}

func randomDoc(rng *rand.Rand, i int) map[string]any {
	doc := map[string]any{"id": fmt.Sprintf("d%04d", rng.IntN(100000)*1000+i)}
	for _, f := range diffFields {
		if rng.IntN(5) == 0 {
			continue // missing
		}
		doc[f] = randomValue(rng, 0)
	}
	return doc
}

// Numeric segments are object keys: "c.0" reaches {"0": …}, "tags.0"
// never an array element.
var diffPaths = []string{"a", "b", "c", "c.d", "c.e", "tags", "c.d.d", "nope", "c.0", "tags.0", "c.d.0"}

func randomLeaf(rng *rand.Rand) map[string]any {
	p := diffPaths[rng.IntN(len(diffPaths))]
	var cond any
	switch rng.IntN(11) {
	case 0:
		cond = randomScalar(rng)
	case 1:
		cond = map[string]any{"$eq": randomScalar(rng)}
	case 2:
		cond = map[string]any{"$ne": randomScalar(rng)}
	case 3, 4:
		ops := []string{"$gt", "$gte", "$lt", "$lte"}
		arg := []any{0.0, 1.0, 2.5, -1.0, "a", "b", "é", ""}[rng.IntN(8)]
		cond = map[string]any{ops[rng.IntN(4)]: arg}
	case 5, 6:
		vals := make([]any, rng.IntN(4))
		for i := range vals {
			vals[i] = randomScalar(rng)
		}
		cond = map[string]any{[]string{"$in", "$nin"}[rng.IntN(2)]: vals}
	case 7:
		cond = map[string]any{"$exists": rng.IntN(2) == 0}
	case 8:
		cond = map[string]any{"$contains": randomScalar(rng)}
	case 9:
		cond = map[string]any{"$startsWith": []string{"", "a", "A", "é", "😀", "1"}[rng.IntN(6)]}
	default:
		cond = map[string]any{"$gt": 0.0, "$lt": 3.0}
	}
	return map[string]any{p: cond}
}

func randomFilter(rng *rand.Rand, depth int) map[string]any {
	r := rng.IntN(10)
	switch {
	case depth < 2 && r < 2:
		n := 1 + rng.IntN(3)
		kids := make([]any, n)
		for i := range kids {
			kids[i] = randomFilter(rng, depth+1)
		}
		return map[string]any{[]string{"$and", "$or"}[rng.IntN(2)]: kids}
	case depth < 2 && r < 3:
		return map[string]any{"$not": randomFilter(rng, depth+1)}
	case r < 4:
		return map[string]any{}
	}
	return randomLeaf(rng)
}

func randomQuery(rng *rand.Rand) []byte {
	var sb []byte
	f, _ := json.Marshal(randomFilter(rng, 0))
	sb = append(sb, `{"filter":`...)
	sb = append(sb, f...)
	if rng.IntN(3) > 0 {
		sb = append(sb, `,"sort":{`...)
		n := 1 + rng.IntN(3)
		used := map[string]bool{}
		first := true
		for i := 0; i < n; i++ {
			p := diffPaths[rng.IntN(len(diffPaths))]
			if used[p] {
				continue
			}
			used[p] = true
			if !first {
				sb = append(sb, ',')
			}
			first = false
			sb = append(sb, fmt.Sprintf(`%q:%q`, p, []string{"asc", "desc"}[rng.IntN(2)])...)
		}
		sb = append(sb, '}')
	}
	if rng.IntN(3) == 0 {
		sb = append(sb, fmt.Sprintf(`,"limit":%d`, 1+rng.IntN(20))...)
		if rng.IntN(2) == 0 {
			sb = append(sb, fmt.Sprintf(`,"offset":%d`, rng.IntN(30))...)
		}
	}
	sb = append(sb, '}')
	return sb
}
