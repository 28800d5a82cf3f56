package backendtest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/testutil"
)

// runUpdateDifferential applies random update operators through
// updateMany with random filters, on b and on the memory backend (the
// reference), and requires the same outcome — counts or error code — and
// then the same records, seed after seed.
func runUpdateDifferential(t *testing.T, b backend.RepositoryBackend) {
	ref := memory.NewRepositoryBackend()
	var modified, refused int64
	const seeds, docsPerSeed, updatesPerSeed = 10, 60, 40
	for seed := uint64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x0bda7e))
		name := testutil.Name(t, fmt.Sprint("updiff", seed))
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
		for i := 0; i < updatesPerSeed; i++ {
			rawF, _ := json.Marshal(randomFilter(rng, 0))
			rawU := randomUpdate(rng)
			f, err := backend.ParseFilter(rawF)
			if err != nil {
				t.Fatalf("seed %d: generated an invalid filter %s: %v", seed, rawF, err)
			}
			u, err := backend.ParseUpdateJSON(rawU)
			if err != nil {
				continue // overlapping paths, say: the parser's business
			}
			wr, werr := want.UpdateMany(ctx(t), f, u)
			gr, gerr := got.UpdateMany(ctx(t), f, u)
			if backend.ErrorCode(werr) != backend.ErrorCode(gerr) || wr != gr {
				t.Fatalf("seed %d update %s filter %s\nmemory %+v %v\nbackend %+v %v", seed, rawU, rawF, wr, werr, gr, gerr)
			}
			modified += wr.Modified
			if werr != nil {
				refused++
			}
		}
		all := backend.Query{Filter: backend.MatchAll}
		wrecs, err := want.FindMany(ctx(t), all)
		must(t, err)
		grecs, err := got.FindMany(ctx(t), all)
		must(t, err)
		if len(wrecs) != len(grecs) {
			t.Fatalf("seed %d: %d records, reference %d", seed, len(grecs), len(wrecs))
		}
		for i := range wrecs {
			w, g := testutil.Doc(t, wrecs[i]), testutil.Doc(t, grecs[i])
			if !reflect.DeepEqual(w, g) {
				t.Fatalf("seed %d: record %v\nmemory  %s\nbackend %s", seed, w["id"], wrecs[i], grecs[i])
			}
		}
	}
	// The generator must reach both outcomes, or the comparison is hollow.
	if modified < 500 || refused < 20 {
		t.Fatalf("the generated updates modified %d records and %d were refused", modified, refused)
	}
	t.Logf("%d records modified, %d updates refused", modified, refused)
}

var updateAmounts = []any{1.0, -1.0, 2.5, 0.5, 0.0, "1", nil}

func randomUpdate(rng *rand.Rand) []byte {
	if rng.IntN(6) == 0 {
		doc := map[string]any{}
		for _, f := range diffFields[:1+rng.IntN(3)] {
			doc[f] = randomValue(rng, 0)
		}
		b, _ := json.Marshal(doc)
		return b
	}
	ops := map[string]map[string]any{}
	for n := 1 + rng.IntN(3); n > 0; n-- {
		p := diffPaths[rng.IntN(len(diffPaths))]
		var name string
		var arg any
		switch rng.IntN(6) {
		case 0:
			name, arg = "$set", randomValue(rng, 0)
		case 1:
			name, arg = "$unset", ""
		case 2:
			name, arg = "$inc", updateAmounts[rng.IntN(len(updateAmounts))]
		case 3:
			name, arg = "$push", randomValue(rng, 1)
			if rng.IntN(3) == 0 {
				arg = map[string]any{"$each": []any{randomScalar(rng), randomScalar(rng)}}
			}
		case 4:
			name, arg = "$pull", randomScalar(rng)
		default:
			name, arg = "$addToSet", randomScalar(rng)
			if rng.IntN(3) == 0 {
				arg = map[string]any{"$each": []any{randomScalar(rng), randomScalar(rng), randomScalar(rng)}}
			}
		}
		if ops[name] == nil {
			ops[name] = map[string]any{}
		}
		ops[name][p] = arg
	}
	b, _ := json.Marshal(ops)
	return b
}
