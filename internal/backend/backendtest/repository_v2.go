package backendtest

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// The suite of issue 18: versions, conditional writes, upsert, update
// operators and the bulk calls. RunRepository runs it on every backend.
var v2Tests = []struct {
	name string
	fn   func(t *testing.T, b backend.RepositoryBackend)
}{
	{"VersionsCountWrites", testVersions},
	{"IfMatch", testIfMatch},
	{"IfMatchRaceHasOneWinner", testIfMatchRace},
	{"Upsert", testUpsert},
	{"UpsertKeepsUniqueIndexes", testUpsertUnique},
	{"UpdateVectors", runUpdateVectors},
	{"ConcurrentIncIsExact", testConcurrentInc},
	{"UpdateMany", testUpdateMany},
	{"UpdateManyIsAllOrNothing", testUpdateManyAtomic},
	{"DeleteMany", testDeleteMany},
	{"GetMany", testGetMany},
	{"VersionedCallsInTransactions", testV2InTx},
	{"KeysetPagingMatchesTheSort", testKeysetPaging},
	{"KeysetPagingUnderConcurrentInserts", testKeysetUnderInserts},
	{"CursorsAreChecked", testCursorErrors},
	{"ExpiredRecordsAreGone", testTTL},
	{"ChangeStream", testChanges},
	{"ChangeStreamOfOneBackend", func(t *testing.T, b backend.RepositoryBackend) { RunChangesAcrossBackends(t, b, b) }},
}

func get(t *testing.T, r backend.Repository, id string) (map[string]any, int64) {
	t.Helper()
	it, err := r.Get(ctx(t), id)
	must(t, err)
	if it.Rec == nil {
		return nil, 0
	}
	return testutil.Doc(t, it.Rec), it.Version
}

func modify(t *testing.T, r backend.Repository, id, update string, p backend.WriteParams) (backend.Item, error) {
	t.Helper()
	u, err := backend.ParseUpdateJSON([]byte(update))
	if err != nil {
		t.Fatalf("update %s: %v", update, err)
	}
	return r.Modify(ctx(t), id, u, p)
}

func testVersions(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	rec := create(t, r, map[string]any{"id": "v", "n": 1.0})
	if _, v := get(t, r, "v"); v != 1 {
		t.Fatalf("created record at version %d, want 1 (%v)", v, rec)
	}
	it, err := modify(t, r, "v", `{"n": 2}`, backend.WriteParams{})
	must(t, err)
	if it.Version != 2 || testutil.Doc(t, it.Rec)["n"] != 2.0 {
		t.Fatalf("merge: %+v", it)
	}
	// The version changes on every write, even one that changes nothing.
	it, err = modify(t, r, "v", `{"$inc": {"n": 0}}`, backend.WriteParams{})
	must(t, err)
	if it.Version != 3 {
		t.Fatalf("no-op update at version %d, want 3", it.Version)
	}
	if _, err := r.Update(ctx(t), "v", map[string]any{"m": true}); err != nil {
		t.Fatal(err)
	}
	doc, v := get(t, r, "v")
	if v != 4 {
		t.Fatalf("Update left version %d, want 4", v)
	}
	if _, has := doc["version"]; has {
		t.Fatalf("the version leaked into the record: %v", doc)
	}
	must(t, r.Delete(ctx(t), "v"))
	create(t, r, map[string]any{"id": "v"})
	if _, v := get(t, r, "v"); v != 1 {
		t.Fatalf("re-created record at version %d, want 1", v)
	}
}

func testIfMatch(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	create(t, r, map[string]any{"id": "m", "n": 1.0})
	_, err := modify(t, r, "m", `{"n": 5}`, backend.WriteParams{IfMatch: 2})
	wantCode(t, err, backend.CodeConflict)
	_, err = modify(t, r, "m", `{"$inc": {"n": 5}}`, backend.WriteParams{IfMatch: 7})
	wantCode(t, err, backend.CodeConflict)
	if doc, v := get(t, r, "m"); v != 1 || doc["n"] != 1.0 {
		t.Fatalf("a refused If-Match changed the record: %v at %d", doc, v)
	}
	it, err := modify(t, r, "m", `{"$inc": {"n": 5}}`, backend.WriteParams{IfMatch: 1})
	must(t, err)
	if it.Version != 2 {
		t.Fatalf("version %d after If-Match write, want 2", it.Version)
	}
	_, err = modify(t, r, "missing", `{"n": 1}`, backend.WriteParams{IfMatch: 1})
	wantCode(t, err, backend.CodeNotFound)

	wantCode(t, r.Remove(ctx(t), "m", backend.WriteParams{IfMatch: 1}), backend.CodeConflict)
	if doc, _ := get(t, r, "m"); doc == nil {
		t.Fatal("a refused conditional delete deleted")
	}
	must(t, r.Remove(ctx(t), "m", backend.WriteParams{IfMatch: 2}))
	if doc, _ := get(t, r, "m"); doc != nil {
		t.Fatal("conditional delete left the record")
	}
	// Without a condition delete stays idempotent; with one, a missing
	// record cannot be at the version asked.
	must(t, r.Remove(ctx(t), "m", backend.WriteParams{}))
	wantCode(t, r.Remove(ctx(t), "m", backend.WriteParams{IfMatch: 2}), backend.CodeConflict)
}

// testIfMatchRace: writers that read the same version race; exactly one
// wins each round, the others get conflict, and no accepted write is lost.
func testIfMatchRace(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	create(t, r, map[string]any{"id": "race", "log": []any{}})
	const rounds, writers = 20, 4
	for round := 0; round < rounds; round++ {
		_, v := get(t, r, "race")
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := backend.Update{Ops: []backend.UpdateOp{{Kind: backend.UpdPush, Path: backend.Path{"log"}, Values: []any{fmt.Sprint(round, "/", w)}}}}
				_, errs[w] = r.Modify(ctx(t), "race", u, backend.WriteParams{IfMatch: v})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else if backend.ErrorCode(err) != backend.CodeConflict {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers won, want 1", round, won)
		}
	}
	doc, v := get(t, r, "race")
	if n := len(doc["log"].([]any)); n != rounds || v != rounds+1 {
		t.Fatalf("after %d rounds: %d entries at version %d", rounds, n, v)
	}
}

func testUpsert(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	it, created, err := r.Put(ctx(t), "u", map[string]any{"a": 1.0, "b": 2.0}, backend.PutParams{})
	must(t, err)
	if !created || it.Version != 1 || testutil.Doc(t, it.Rec)["id"] != "u" {
		t.Fatalf("first put: created=%v %+v", created, it)
	}
	it, created, err = r.Put(ctx(t), "u", map[string]any{"id": "u", "a": 3.0}, backend.PutParams{})
	must(t, err)
	if created || it.Version != 2 {
		t.Fatalf("second put: created=%v version %d", created, it.Version)
	}
	if doc, _ := get(t, r, "u"); !reflect.DeepEqual(doc, map[string]any{"id": "u", "a": 3.0}) {
		t.Fatalf("put replaces the whole record, got %v", doc)
	}
	_, _, err = r.Put(ctx(t), "u", map[string]any{"a": 4.0}, backend.PutParams{IfNoneMatch: true})
	wantCode(t, err, backend.CodeConflict)
	_, _, err = r.Put(ctx(t), "u", map[string]any{"a": 4.0}, backend.PutParams{IfMatch: 1})
	wantCode(t, err, backend.CodeConflict)
	_, _, err = r.Put(ctx(t), "nope", map[string]any{"a": 4.0}, backend.PutParams{IfMatch: 1})
	wantCode(t, err, backend.CodeConflict)
	if doc, v := get(t, r, "u"); doc["a"] != 3.0 || v != 2 {
		t.Fatalf("refused puts changed the record: %v at %d", doc, v)
	}
	it, _, err = r.Put(ctx(t), "u", map[string]any{"a": 5.0}, backend.PutParams{IfMatch: 2})
	must(t, err)
	if it.Version != 3 {
		t.Fatalf("conditional put at version %d, want 3", it.Version)
	}
	_, created, err = r.Put(ctx(t), "new", map[string]any{}, backend.PutParams{IfNoneMatch: true})
	must(t, err)
	if !created {
		t.Fatal("create-only put did not create")
	}
	_, _, err = r.Put(ctx(t), "u", map[string]any{"id": "other"}, backend.PutParams{})
	wantCode(t, err, backend.CodeInvalidArgument)
	_, _, err = r.Put(ctx(t), "bad\x01id", map[string]any{}, backend.PutParams{})
	wantCode(t, err, backend.CodeInvalidArgument)
	// A new collection's first write may be an upsert.
	_, created, err = b.Repository(testutil.Name(t, "fresh")).Put(ctx(t), "x", map[string]any{}, backend.PutParams{})
	must(t, err)
	if !created {
		t.Fatal("put in a new collection did not create")
	}
}

func testUpsertUnique(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	must(t, r.EnsureIndex(ctx(t), backend.IndexSpec{Name: "email", Fields: []backend.Path{{"email"}}, Unique: true}))
	create(t, r, map[string]any{"id": "a", "email": "x"})
	create(t, r, map[string]any{"id": "b", "email": "y"})
	_, _, err := r.Put(ctx(t), "b", map[string]any{"email": "x"}, backend.PutParams{})
	wantCode(t, err, backend.CodeConflict)
	_, err = modify(t, r, "b", `{"$set": {"email": "x"}}`, backend.WriteParams{})
	wantCode(t, err, backend.CodeConflict)
	if doc, v := get(t, r, "b"); doc["email"] != "y" || v != 1 {
		t.Fatalf("refused writes changed b: %v at %d", doc, v)
	}
}

// UpdateVector is one case of testdata/update-vectors.json.
type UpdateVector struct {
	Name   string          `json:"name"`
	Doc    map[string]any  `json:"doc"`
	Update json.RawMessage `json:"update"`
	Expect map[string]any  `json:"expect"`
	Error  backend.Code    `json:"error"`
}

// LoadUpdateVectors reads the shared update vectors.
func LoadUpdateVectors(t testing.TB) []UpdateVector {
	var f struct {
		Vectors []UpdateVector `json:"vectors"`
	}
	if err := json.Unmarshal(testutil.ReadFile(t, "testdata/update-vectors.json"), &f); err != nil {
		t.Fatalf("update-vectors.json: %v", err)
	}
	if len(f.Vectors) < 40 {
		t.Fatalf("update-vectors.json holds only %d vectors", len(f.Vectors))
	}
	return f.Vectors
}

// runUpdateVectors applies each vector by Modify and by UpdateMany, and
// checks the reference (ApplyUpdate) says the same.
func runUpdateVectors(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	for i, v := range LoadUpdateVectors(t) {
		for _, many := range []bool{false, true} {
			id := fmt.Sprintf("v%d-%v", i, many)
			doc := map[string]any{}
			for k, x := range v.Doc {
				doc[k] = x
			}
			doc["id"] = id
			create(t, r, doc)
			want := map[string]any(nil)
			if v.Expect != nil {
				want = map[string]any{"id": id}
				for k, x := range v.Expect {
					want[k] = x
				}
			}
			u, err := backend.ParseUpdateJSON(v.Update)
			if err == nil {
				ref, _ := backend.Decode(mustEncode(t, doc))
				var refOut map[string]any
				refOut, err = backend.ApplyUpdate(ref, u)
				if err == nil && !reflect.DeepEqual(refOut, want) {
					t.Errorf("%s: the reference gives %v, the vector %v", v.Name, refOut, want)
				}
				if err == nil {
					if many {
						var res backend.UpdateManyResult
						res, err = r.UpdateMany(ctx(t), &backend.Cond{Path: backend.Path{"id"}, Op: backend.OpEq, Value: id}, u)
						if err == nil && res.Matched != 1 {
							t.Errorf("%s: updateMany matched %d", v.Name, res.Matched)
						}
					} else {
						_, err = r.Modify(ctx(t), id, u, backend.WriteParams{})
					}
				}
			}
			got, ver := get(t, r, id)
			switch {
			case v.Error != "":
				if backend.ErrorCode(err) != v.Error {
					t.Errorf("%s (many=%v): got %v, want %s", v.Name, many, err, v.Error)
				}
				if ver != 1 {
					t.Errorf("%s (many=%v): a refused update wrote version %d", v.Name, many, ver)
				}
			case err != nil:
				t.Errorf("%s (many=%v): %v", v.Name, many, err)
			case !reflect.DeepEqual(got, want):
				t.Errorf("%s (many=%v): update %s\nwant %v\ngot  %v", v.Name, many, v.Update, want, got)
			}
		}
	}
}

// testConcurrentInc: 8 clients × 1 000 $inc without a transaction end at
// exactly 8 000 — each $inc is one statement, not a read and a write.
func testConcurrentInc(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	create(t, r, map[string]any{"id": "c", "n": 0.0})
	// The figures issue 18 names: 8 clients doing 1 000 $inc each end at
	// exactly 8 000.
	const clients, each = 8, 1000
	u := backend.Update{Ops: []backend.UpdateOp{{Kind: backend.UpdInc, Path: backend.Path{"n"}, Value: 1.0}}}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := r.Modify(ctx(t), "c", u, backend.WriteParams{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	doc, v := get(t, r, "c")
	if doc["n"] != float64(clients*each) || v != clients*each+1 {
		t.Fatalf("n = %v at version %d, want %d at %d", doc["n"], v, clients*each, clients*each+1)
	}
}

func filter(t *testing.T, raw string) backend.Filter {
	t.Helper()
	f, err := backend.ParseFilter([]byte(raw))
	must(t, err)
	return f
}

func update(t *testing.T, raw string) backend.Update {
	t.Helper()
	u, err := backend.ParseUpdateJSON([]byte(raw))
	must(t, err)
	return u
}

func testUpdateMany(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	for i := 0; i < 10; i++ {
		create(t, r, map[string]any{"id": fmt.Sprint("r", i), "i": float64(i), "tag": []any{"x"}})
	}
	res, err := r.UpdateMany(ctx(t), filter(t, `{"i": {"$gte": 5}}`), update(t, `{"$inc": {"hits": 1}, "$addToSet": {"tag": "y"}}`))
	must(t, err)
	if res != (backend.UpdateManyResult{Matched: 5, Modified: 5}) {
		t.Fatalf("first updateMany: %+v", res)
	}
	// $addToSet of a present value changes nothing: matched, not modified.
	res, err = r.UpdateMany(ctx(t), filter(t, `{"i": {"$gte": 3}}`), update(t, `{"$addToSet": {"tag": "y"}}`))
	must(t, err)
	if res != (backend.UpdateManyResult{Matched: 7, Modified: 2}) {
		t.Fatalf("second updateMany: %+v", res)
	}
	for i := 0; i < 10; i++ {
		doc, v := get(t, r, fmt.Sprint("r", i))
		wantV, wantHits := int64(1), any(nil)
		if i >= 3 {
			wantV = 2
		}
		if i >= 5 {
			wantHits = 1.0
		}
		if v != wantV || doc["hits"] != wantHits {
			t.Errorf("r%d: %v at version %d", i, doc, v)
		}
	}
	res, err = r.UpdateMany(ctx(t), filter(t, `{"i": 99}`), update(t, `{"x": 1}`))
	must(t, err)
	if res != (backend.UpdateManyResult{}) {
		t.Fatalf("updateMany of nothing: %+v", res)
	}
	res, err = b.Repository(testutil.Name(t, "empty")).UpdateMany(ctx(t), backend.MatchAll, update(t, `{"x": 1}`))
	must(t, err)
	if res != (backend.UpdateManyResult{}) {
		t.Fatalf("updateMany of a new collection: %+v", res)
	}
}

func testUpdateManyAtomic(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	create(t, r, map[string]any{"id": "a", "n": 1.0})
	create(t, r, map[string]any{"id": "b", "n": "one"})
	create(t, r, map[string]any{"id": "c", "n": 3.0})
	_, err := r.UpdateMany(ctx(t), backend.MatchAll, update(t, `{"$inc": {"n": 1}}`))
	wantCode(t, err, backend.CodeInvalidArgument)
	must(t, r.EnsureIndex(ctx(t), backend.IndexSpec{Name: "u", Fields: []backend.Path{{"u"}}, Unique: true}))
	_, err = r.UpdateMany(ctx(t), backend.MatchAll, update(t, `{"$set": {"u": 1}}`))
	wantCode(t, err, backend.CodeConflict)
	for _, id := range []string{"a", "b", "c"} {
		if doc, v := get(t, r, id); v != 1 || doc["u"] != nil {
			t.Fatalf("a refused updateMany changed %s: %v at %d", id, doc, v)
		}
	}
}

func testDeleteMany(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	for i := 0; i < 6; i++ {
		create(t, r, map[string]any{"id": fmt.Sprint("d", i), "odd": i%2 == 1})
	}
	n, err := r.DeleteMany(ctx(t), filter(t, `{"odd": true}`))
	must(t, err)
	if n != 3 {
		t.Fatalf("deleted %d, want 3", n)
	}
	if c, _ := r.Count(ctx(t), backend.MatchAll); c != 3 {
		t.Fatalf("%d left, want 3", c)
	}
	n, err = r.DeleteMany(ctx(t), filter(t, `{"odd": true}`))
	must(t, err)
	if n != 0 {
		t.Fatalf("deleted %d again", n)
	}
	n, err = b.Repository(testutil.Name(t, "empty")).DeleteMany(ctx(t), backend.MatchAll)
	must(t, err)
	if n != 0 {
		t.Fatalf("deleted %d from a new collection", n)
	}
}

func testGetMany(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	create(t, r, map[string]any{"id": "a"})
	create(t, r, map[string]any{"id": "b"})
	_, err := modify(t, r, "b", `{"x": 1}`, backend.WriteParams{})
	must(t, err)
	items, err := r.GetMany(ctx(t), []string{"b", "zz", "a", "b"})
	must(t, err)
	var got []string
	var vers []int64
	for _, it := range items {
		if it.Rec == nil {
			got = append(got, "<nil>")
		} else {
			got = append(got, testutil.Doc(t, it.Rec)["id"].(string))
		}
		vers = append(vers, it.Version)
	}
	if fmt.Sprint(got, vers) != "[b <nil> a b] [2 0 1 2]" {
		t.Fatalf("getMany: %v %v", got, vers)
	}
	items, err = b.Repository(testutil.Name(t, "empty")).GetMany(ctx(t), []string{"a"})
	must(t, err)
	if len(items) != 1 || items[0].Rec != nil {
		t.Fatalf("getMany of a new collection: %v", items)
	}
}

// testV2InTx: the new calls see and undo like the old ones in a
// transaction.
func testV2InTx(t *testing.T, b backend.RepositoryBackend) {
	name := testutil.Name(t, "tx")
	r := b.Repository(name)
	create(t, r, map[string]any{"id": "a", "n": 1.0})
	tx, err := b.Begin(ctx(t))
	must(t, err)
	tr := tx.Repository(name)
	_, err = tr.Modify(ctx(t), "a", update(t, `{"$inc": {"n": 1}}`), backend.WriteParams{IfMatch: 1})
	must(t, err)
	_, _, err = tr.Put(ctx(t), "b", map[string]any{}, backend.PutParams{})
	must(t, err)
	if _, err := tr.UpdateMany(ctx(t), backend.MatchAll, update(t, `{"$set": {"k": 1}}`)); err != nil {
		t.Fatal(err)
	}
	items, err := tr.GetMany(ctx(t), []string{"a", "b"})
	must(t, err)
	if items[0].Version != 3 || items[1].Version != 2 {
		t.Fatalf("inside the transaction: versions %d %d, want 3 2", items[0].Version, items[1].Version)
	}
	must(t, tx.Rollback(ctx(t)))
	if doc, v := get(t, r, "a"); v != 1 || doc["n"] != 1.0 {
		t.Fatalf("rollback left a at %v version %d", doc, v)
	}
	if doc, _ := get(t, r, "b"); doc != nil {
		t.Fatal("rollback left b")
	}
}
