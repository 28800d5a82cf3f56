package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// RunRepository runs the records conformance suite against newBackend.
func RunRepository(t *testing.T, newBackend NewRepository) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.RepositoryBackend)
	}{
		{"CreateAssignsOrderedUUIDv7", testCreateIDs},
		{"CreateWithOwnID", testCreateOwnID},
		{"CreateRejectsBadIDs", testCreateBadIDs},
		{"FindByIDMissingIsNil", testFindMissing},
		{"UpdateMergesShallow", testUpdate},
		{"UpdateErrors", testUpdateErrors},
		{"DeleteIsIdempotent", testDelete},
		{"FindManyPagingIsStable", testPaging},
		{"CountMatchesFindMany", testCount},
		{"CollectionsAreSeparate", testCollectionsSeparate},
		{"CollectionNames", testCollectionNames},
		{"DocumentsRoundTrip", testRoundTrip},
		{"EnsureIndex", testEnsureIndex},
		{"CatalogListsCollections", testCatalog},
		{"UniqueIndex", testUniqueIndex},
		{"UniqueIndexZeroIsNegativeZero", testUniqueNegativeZero},
		{"TransactionCommit", testTxCommit},
		{"TransactionRollbackRestoresEverything", testTxRollback},
		{"TransactionEnded", testTxEnded},
		{"TransactionCreatesCollections", testTxNewCollections},
		{"TransactionHelper", testTxHelper},
		{"TransactionsAreSerializable", testTxSerializable},
		{"RecordsAreNotHTMLEscaped", testNotHTMLEscaped},
		{"ConcurrentWrites", testConcurrentWrites},
		{"FilterVectors", runVectors},
		{"LargeFiltersAreAnsweredOrRefused", testLargeFilters},
	}
	tests = append(tests, v2Tests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBackend(t))
		})
	}
}

func repo(t *testing.T, b backend.RepositoryBackend) backend.Repository {
	return b.Repository(testutil.Name(t, t.Name()))
}

func create(t *testing.T, r backend.Repository, doc map[string]any) map[string]any {
	t.Helper()
	rec, err := r.Create(ctx(t), doc)
	if err != nil {
		t.Fatalf("create %v: %v", doc, err)
	}
	return testutil.Doc(t, rec)
}

func find(t *testing.T, r backend.Repository, id string) map[string]any {
	t.Helper()
	rec, err := r.FindByID(ctx(t), id)
	must(t, err)
	if rec == nil {
		return nil
	}
	return testutil.Doc(t, rec)
}

func ids(t *testing.T, recs []backend.Record) []string {
	t.Helper()
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = testutil.Doc(t, r)["id"].(string)
	}
	return out
}

func all(t *testing.T, r backend.Repository) []string {
	t.Helper()
	recs, err := r.FindMany(ctx(t), backend.Query{Filter: backend.MatchAll})
	must(t, err)
	return ids(t, recs)
}

func testCreateIDs(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	var got []string
	for i := 0; i < 20; i++ {
		d := create(t, r, map[string]any{"i": float64(i)})
		id, _ := d["id"].(string)
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 {
			t.Fatalf("id %q is not a UUIDv7", id)
		}
		if d["i"] != float64(i) {
			t.Fatalf("record lost a field: %v", d)
		}
		got = append(got, id)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("ids do not sort in creation order: %v", got)
	}
	if list := all(t, r); !slices.Equal(list, got) {
		t.Fatalf("findMany without sort must be id order\nwant %v\ngot  %v", got, list)
	}
}

func testCreateOwnID(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	long := strings.Repeat("é", backend.MaxIDLength)
	for _, id := range []string{"plan-1", "a/b c?d#e%f", "Ünïcødé ✓", long} {
		d := create(t, r, map[string]any{"id": id, "v": "x"})
		if d["id"] != id {
			t.Fatalf("create kept id %q as %v", id, d["id"])
		}
		if got := find(t, r, id); got == nil || got["v"] != "x" {
			t.Fatalf("findById(%q) = %v", id, got)
		}
		_, err := r.Create(ctx(t), map[string]any{"id": id, "v": "y"})
		wantCode(t, err, backend.CodeConflict)
		if got := find(t, r, id); got["v"] != "x" {
			t.Fatalf("a refused create changed the record: %v", got)
		}
	}
}

func testCreateBadIDs(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	for _, id := range []any{"", strings.Repeat("x", backend.MaxIDLength+1), "a\x00b", "tab\there", 12.0, true, nil, []any{"a"}, map[string]any{}} {
		_, err := r.Create(ctx(t), map[string]any{"id": id, "v": 1.0})
		wantCode(t, err, backend.CodeInvalidArgument)
	}
	if n := len(all(t, r)); n != 0 {
		t.Fatalf("refused creates stored %d records", n)
	}
}

func testFindMissing(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	if d := find(t, r, "nope"); d != nil {
		t.Fatalf("missing record: %v", d)
	}
	create(t, r, map[string]any{"id": "yes"})
	if d := find(t, r, "nope"); d != nil {
		t.Fatalf("missing record: %v", d)
	}
}

func testUpdate(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	d := create(t, r, map[string]any{"name": "a", "nested": map[string]any{"x": 1.0, "y": 2.0}, "keep": true})
	id := d["id"].(string)
	rec, err := r.Update(ctx(t), id, map[string]any{"name": "b", "nested": map[string]any{"x": 5.0}, "added": nil})
	must(t, err)
	want := map[string]any{"id": id, "name": "b", "nested": map[string]any{"x": 5.0}, "keep": true, "added": nil}
	if got := testutil.Doc(t, rec); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("update returned %v, want %v", got, want)
	}
	if got := find(t, r, id); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	if _, err := r.Update(ctx(t), id, map[string]any{}); err != nil {
		t.Fatalf("empty patch: %v", err)
	}
}

func testUpdateErrors(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	d := create(t, r, map[string]any{"v": 1.0})
	id := d["id"].(string)
	_, err := r.Update(ctx(t), id, map[string]any{"id": "other", "v": 2.0})
	wantCode(t, err, backend.CodeInvalidArgument)
	_, err = r.Update(ctx(t), id, map[string]any{"id": id})
	wantCode(t, err, backend.CodeInvalidArgument)
	_, err = r.Update(ctx(t), "missing", map[string]any{"v": 2.0})
	wantCode(t, err, backend.CodeNotFound)
	if got := find(t, r, id); got["v"] != 1.0 {
		t.Fatalf("refused updates changed the record: %v", got)
	}
	if find(t, r, "missing") != nil {
		t.Fatal("update of a missing record created it")
	}
}

func testDelete(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	d := create(t, r, map[string]any{"v": 1.0})
	other := create(t, r, map[string]any{"v": 2.0})
	id := d["id"].(string)
	must(t, r.Delete(ctx(t), id))
	must(t, r.Delete(ctx(t), id))
	must(t, r.Delete(ctx(t), "never-existed"))
	if find(t, r, id) != nil {
		t.Fatal("deleted record still found")
	}
	if got := all(t, r); !slices.Equal(got, []string{other["id"].(string)}) {
		t.Fatalf("delete removed the wrong records: %v", got)
	}
	// The id is free again.
	create(t, r, map[string]any{"id": id})
}

func testPaging(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	for i := 0; i < 23; i++ {
		create(t, r, map[string]any{"group": float64(i % 4), "i": float64(i)})
	}
	q := backend.Query{Filter: backend.MatchAll, Sort: []backend.SortKey{{Path: backend.Path{"group"}, Desc: true}}}
	full, err := r.FindMany(ctx(t), q)
	must(t, err)
	want := ids(t, full)
	if len(want) != 23 {
		t.Fatalf("want 23 records, got %d", len(want))
	}
	for _, size := range []int{1, 3, 5, 23, 50} {
		var pages []string
		for off := 0; off < 30; off += size {
			q.Limit, q.Offset = size, off
			page, err := r.FindMany(ctx(t), q)
			must(t, err)
			pages = append(pages, ids(t, page)...)
		}
		if !slices.Equal(pages, want) {
			t.Fatalf("page size %d: pages do not add up to the full result\nwant %v\ngot  %v", size, want, pages)
		}
	}
	// Within each group (equal sort values) the id breaks the tie ascending.
	for i := 1; i < len(full); i++ {
		a, c := testutil.Doc(t, full[i-1]), testutil.Doc(t, full[i])
		if a["group"] == c["group"] && a["id"].(string) > c["id"].(string) {
			t.Fatalf("tie not broken by id ascending: %v then %v", a, c)
		}
	}
	q.Limit, q.Offset = 0, 100
	page, err := r.FindMany(ctx(t), q)
	must(t, err)
	if len(page) != 0 {
		t.Fatalf("offset past the end returned %d records", len(page))
	}
}

func testCount(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	n, err := r.Count(ctx(t), backend.MatchAll)
	must(t, err)
	if n != 0 {
		t.Fatalf("empty collection counts %d", n)
	}
	for i := 0; i < 10; i++ {
		create(t, r, map[string]any{"even": i%2 == 0, "i": float64(i)})
	}
	for _, raw := range []string{`{}`, `{"even": true}`, `{"i": {"$gte": 7}}`, `{"missing": null}`, `{"$or": [{"i": 1}, {"i": 2}]}`} {
		f, err := backend.ParseFilter([]byte(raw))
		must(t, err)
		n, err := r.Count(ctx(t), f)
		must(t, err)
		recs, err := r.FindMany(ctx(t), backend.Query{Filter: f})
		must(t, err)
		if int(n) != len(recs) {
			t.Fatalf("filter %s: count %d, findMany %d", raw, n, len(recs))
		}
	}
	f, _ := backend.ParseFilter([]byte(`{"even": true}`))
	if n, _ := r.Count(ctx(t), f); n != 5 {
		t.Fatalf("count even = %d, want 5", n)
	}
}

func testCollectionsSeparate(t *testing.T, b backend.RepositoryBackend) {
	a, c := repo(t, b), repo(t, b)
	create(t, a, map[string]any{"id": "same", "in": "a"})
	create(t, c, map[string]any{"id": "same", "in": "c"})
	if find(t, a, "same")["in"] != "a" || find(t, c, "same")["in"] != "c" {
		t.Fatal("collections share records")
	}
	must(t, a.Delete(ctx(t), "same"))
	if find(t, c, "same") == nil {
		t.Fatal("delete in one collection removed a record of another")
	}
}

// testCollectionNames: every valid name is a collection of its own, the
// longest too, and names differing only in case or in the last of 128
// characters do not share records.
func testCollectionNames(t *testing.T, b backend.RepositoryBackend) {
	base := testutil.Name(t, "n")
	long := base + strings.Repeat("x", 128-len(base))
	names := []string{base + "a", base + "A", base + ".v2:eu-1_x", long, long[:127] + "y", base + "-"}
	for _, name := range names {
		must(t, backend.ValidateName("collection", name))
		r := b.Repository(name)
		create(t, r, map[string]any{"id": "same", "in": name})
		must(t, r.EnsureIndex(ctx(t), backend.IndexSpec{Name: "in", Fields: []backend.Path{{"in"}}, Unique: true}))
	}
	for _, name := range names {
		r := b.Repository(name)
		if got := find(t, r, "same"); got["in"] != name {
			t.Fatalf("collection %q holds %v", name, got)
		}
		f, _ := backend.ParseFilter([]byte(`{"in": {"$startsWith": ""}}`))
		if n, err := r.Count(ctx(t), f); err != nil || n != 1 {
			t.Fatalf("collection %q counts %d (%v)", name, n, err)
		}
	}
}

// testTxNewCollections: collections first written inside a transaction
// exist only if it commits; a rollback leaves no trace that later writes
// could trip on (a table, an index, a remembered name).
func testTxNewCollections(t *testing.T, b backend.RepositoryBackend) {
	a, c := testutil.Name(t, "new_a"), testutil.Name(t, "new_c")
	spec := backend.IndexSpec{Name: "v", Fields: []backend.Path{{"v"}}, Unique: true}
	for _, commit := range []bool{false, true} {
		tx, err := b.Begin(ctx(t))
		must(t, err)
		create(t, tx.Repository(a), map[string]any{"id": "x", "v": 1.0})
		must(t, tx.Repository(c).EnsureIndex(ctx(t), spec))
		create(t, tx.Repository(c), map[string]any{"id": "y", "v": 1.0})
		if got := find(t, tx.Repository(a), "x"); got == nil {
			t.Fatal("a transaction does not see the collection it created")
		}
		_, err = tx.Repository(c).Create(ctx(t), map[string]any{"id": "z", "v": 1.0})
		wantCode(t, err, backend.CodeConflict)
		if commit {
			must(t, tx.Commit(ctx(t)))
			break
		}
		must(t, tx.Rollback(ctx(t)))
		for _, name := range []string{a, c} {
			r := b.Repository(name)
			if n := len(all(t, r)); n != 0 {
				t.Fatalf("rolled back collection %s holds %d records", name, n)
			}
			n, err := r.Count(ctx(t), backend.MatchAll)
			if err != nil || n != 0 {
				t.Fatalf("rolled back collection %s counts %d (%v)", name, n, err)
			}
			if find(t, r, "x") != nil || find(t, r, "y") != nil {
				t.Fatalf("rolled back collection %s still has a record", name)
			}
			must(t, r.Delete(ctx(t), "x"))
			_, err = r.Update(ctx(t), "x", map[string]any{"v": 2.0})
			wantCode(t, err, backend.CodeNotFound)
		}
		// Written again outside a transaction, they work as new, and the
		// rolled back unique index is gone.
		create(t, b.Repository(c), map[string]any{"id": "p", "v": 1.0})
		create(t, b.Repository(c), map[string]any{"id": "q", "v": 1.0})
		must(t, b.Repository(c).Delete(ctx(t), "p"))
		must(t, b.Repository(c).Delete(ctx(t), "q"))
	}
	if find(t, b.Repository(a), "x") == nil || find(t, b.Repository(c), "y") == nil {
		t.Fatal("collections created by a committed transaction are not visible")
	}
	_, err := b.Repository(c).Create(ctx(t), map[string]any{"id": "z", "v": 1.0})
	wantCode(t, err, backend.CodeConflict)
}

func testRoundTrip(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	doc := map[string]any{
		"str": "héllo \"quoted\" \\ / \u2028 😀", "int": 42.0, "neg": -7.0, "frac": 0.1, "big": 1e300, "small": -2.5e-300,
		"t": true, "f": false, "null": nil, "arr": []any{1.0, "two", nil, []any{}, map[string]any{"x": 1.0}},
		"obj": map[string]any{"deep": map[string]any{"er": map[string]any{"est": "yes"}}}, "empty": map[string]any{},
		"weird key with spaces and.dots": "ok", "": "empty key",
	}
	d := create(t, r, doc)
	got := find(t, r, d["id"].(string))
	for k, v := range doc {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Fatalf("field %q: stored %v, read back %v", k, v, got[k])
		}
	}
}

func testEnsureIndex(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	for i := 0; i < 10; i++ {
		create(t, r, map[string]any{"status": []string{"a", "b"}[i%2], "n": float64(i)})
	}
	spec := backend.IndexSpec{Name: "by_status", Fields: []backend.Path{{"status"}, {"n"}}}
	must(t, r.EnsureIndex(ctx(t), spec))
	must(t, r.EnsureIndex(ctx(t), spec)) // idempotent
	other := spec
	other.Fields = []backend.Path{{"n"}}
	wantCode(t, r.EnsureIndex(ctx(t), other), backend.CodeConflict)
	f, _ := backend.ParseFilter([]byte(`{"status": "a"}`))
	n, err := r.Count(ctx(t), f)
	must(t, err)
	if n != 5 {
		t.Fatalf("count with index = %d, want 5", n)
	}
	// Writes still work and are seen through the index.
	create(t, r, map[string]any{"status": "a", "n": 100.0})
	if n, _ := r.Count(ctx(t), f); n != 6 {
		t.Fatalf("count after insert = %d, want 6", n)
	}
	// The same index name in another collection is another index.
	must(t, repo(t, b).EnsureIndex(ctx(t), other))
}

func testUniqueIndex(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	create(t, r, map[string]any{"id": "1", "email": "a@x"})
	create(t, r, map[string]any{"id": "2", "email": "b@x"})
	create(t, r, map[string]any{"id": "3", "email": "a@x"})
	spec := backend.IndexSpec{Name: "email", Fields: []backend.Path{{"email"}}, Unique: true}
	wantCode(t, r.EnsureIndex(ctx(t), spec), backend.CodeConflict)
	must(t, r.Delete(ctx(t), "3"))
	must(t, r.EnsureIndex(ctx(t), spec))

	_, err := r.Create(ctx(t), map[string]any{"id": "4", "email": "a@x"})
	wantCode(t, err, backend.CodeConflict)
	if find(t, r, "4") != nil {
		t.Fatal("a create refused by the unique index was stored")
	}
	_, err = r.Update(ctx(t), "2", map[string]any{"email": "a@x"})
	wantCode(t, err, backend.CodeConflict)
	if find(t, r, "2")["email"] != "b@x" {
		t.Fatal("an update refused by the unique index was applied")
	}
	// Updating a record to its own value, and freeing a value, work.
	_, err = r.Update(ctx(t), "1", map[string]any{"email": "a@x", "other": 1.0})
	must(t, err)
	_, err = r.Update(ctx(t), "1", map[string]any{"email": "c@x"})
	must(t, err)
	create(t, r, map[string]any{"id": "5", "email": "a@x"})
	// Missing and null values are not constrained; types are strict.
	create(t, r, map[string]any{"id": "6"})
	create(t, r, map[string]any{"id": "7"})
	create(t, r, map[string]any{"id": "8", "email": nil})
	create(t, r, map[string]any{"id": "9", "email": nil})
	create(t, r, map[string]any{"id": "10", "email": 1.0})
	create(t, r, map[string]any{"id": "11", "email": "1"})
	create(t, r, map[string]any{"id": "12", "email": true})
	_, err = r.Create(ctx(t), map[string]any{"id": "13", "email": 1.0})
	wantCode(t, err, backend.CodeConflict)
	// Deleting frees the value.
	must(t, r.Delete(ctx(t), "5"))
	create(t, r, map[string]any{"id": "14", "email": "a@x"})
}

// testUniqueNegativeZero: 0 and -0 are one number (they compare equal
// everywhere, and JSON numbers are doubles), so a unique index holds only
// one of them, whichever comes first and however it is written.
func testUniqueNegativeZero(t *testing.T, b backend.RepositoryBackend) {
	negZero := math.Copysign(0, -1)
	spec := backend.IndexSpec{Name: "n", Fields: []backend.Path{{"n"}}, Unique: true}
	for _, order := range [][2]float64{{0, negZero}, {negZero, 0}, {negZero, negZero}} {
		r := repo(t, b)
		must(t, r.EnsureIndex(ctx(t), spec))
		create(t, r, map[string]any{"id": "first", "n": order[0]})
		_, err := r.Create(ctx(t), map[string]any{"id": "second", "n": order[1]})
		wantCode(t, err, backend.CodeConflict)
		create(t, r, map[string]any{"id": "other", "n": 1.0})
		_, err = r.Update(ctx(t), "other", map[string]any{"n": order[1]})
		wantCode(t, err, backend.CodeConflict)
	}
	// Building the index over records holding both is a conflict too.
	r := repo(t, b)
	create(t, r, map[string]any{"id": "zero", "n": 0.0})
	create(t, r, map[string]any{"id": "neg", "n": negZero})
	wantCode(t, r.EnsureIndex(ctx(t), spec), backend.CodeConflict)
}

func testTxCommit(t *testing.T, b backend.RepositoryBackend) {
	name := testutil.Name(t, "tx")
	base := b.Repository(name)
	create(t, base, map[string]any{"id": "old", "v": 1.0})
	// The context of Begin ends with the request that began the
	// transaction; the transaction must outlive it.
	bctx, cancel := context.WithCancel(ctx(t))
	tx, err := b.Begin(bctx)
	cancel()
	must(t, err)
	r := tx.Repository(name)
	create(t, r, map[string]any{"id": "new", "v": 2.0})
	// A refused statement fails alone; the transaction goes on.
	_, err = r.Create(ctx(t), map[string]any{"id": "old"})
	wantCode(t, err, backend.CodeConflict)
	_, err = r.Update(ctx(t), "old", map[string]any{"v": 3.0})
	must(t, err)
	if find(t, r, "new") == nil || find(t, r, "old")["v"] != 3.0 {
		t.Fatal("a transaction does not see its own writes")
	}
	recs, err := r.FindMany(ctx(t), backend.Query{Filter: backend.MatchAll})
	must(t, err)
	if len(recs) != 2 {
		t.Fatalf("findMany in tx: %d records, want 2", len(recs))
	}
	must(t, tx.Commit(ctx(t)))
	if find(t, base, "new") == nil || find(t, base, "old")["v"] != 3.0 {
		t.Fatal("committed writes are not visible")
	}
}

func testTxRollback(t *testing.T, b backend.RepositoryBackend) {
	name := testutil.Name(t, "tx")
	base := b.Repository(name)
	create(t, base, map[string]any{"id": "keep", "v": 1.0})
	create(t, base, map[string]any{"id": "gone", "v": 1.0})
	before := all(t, base)
	tx, err := b.Begin(ctx(t))
	must(t, err)
	r := tx.Repository(name)
	create(t, r, map[string]any{"id": "added"})
	_, err = r.Update(ctx(t), "keep", map[string]any{"v": 99.0})
	must(t, err)
	must(t, r.Delete(ctx(t), "gone"))
	must(t, r.EnsureIndex(ctx(t), backend.IndexSpec{Name: "v_unique", Fields: []backend.Path{{"v"}}, Unique: true}))
	// Another collection written in the same transaction.
	other := testutil.Name(t, "tx_other")
	create(t, tx.Repository(other), map[string]any{"id": "x"})
	must(t, tx.Rollback(ctx(t)))

	if got := all(t, base); !slices.Equal(got, before) {
		t.Fatalf("after rollback: %v, want %v", got, before)
	}
	if find(t, base, "keep")["v"] != 1.0 {
		t.Fatal("rollback did not undo an update")
	}
	if find(t, b.Repository(other), "x") != nil {
		t.Fatal("rollback did not undo a create in a second collection")
	}
	// The index was rolled back too: duplicates of v are allowed.
	create(t, base, map[string]any{"id": "dup", "v": 1.0})
}

func testTxEnded(t *testing.T, b backend.RepositoryBackend) {
	name := testutil.Name(t, "tx")
	tx, err := b.Begin(ctx(t))
	must(t, err)
	must(t, tx.Commit(ctx(t)))
	_, err = tx.Repository(name).Create(ctx(t), map[string]any{"id": "late"})
	wantCode(t, err, backend.CodeTxNotFound)
	wantCode(t, tx.Commit(ctx(t)), backend.CodeTxNotFound)
	wantCode(t, tx.Rollback(ctx(t)), backend.CodeTxNotFound)
	if find(t, b.Repository(name), "late") != nil {
		t.Fatal("a write after commit was stored")
	}
	// The backend is usable after the transaction.
	create(t, b.Repository(name), map[string]any{"id": "after"})
}

func testTxHelper(t *testing.T, b backend.RepositoryBackend) {
	name := testutil.Name(t, "tx")
	boom := fmt.Errorf("boom")
	err := backend.Transaction(ctx(t), b, func(tx backend.Tx) error {
		create(t, tx.Repository(name), map[string]any{"id": "a"})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Transaction returned %v, want the callback's error", err)
	}
	if find(t, b.Repository(name), "a") != nil {
		t.Fatal("failed transaction was committed")
	}
	must(t, backend.Transaction(ctx(t), b, func(tx backend.Tx) error {
		create(t, tx.Repository(name), map[string]any{"id": "b"})
		return nil
	}))
	if find(t, b.Repository(name), "b") == nil {
		t.Fatal("successful transaction was not committed")
	}
}

// testTxSerializable runs read-modify-write transactions concurrently; a
// backend may refuse one with conflict (a serialization failure), and the
// caller retries, but no increment may be lost.
func testTxSerializable(t *testing.T, b backend.RepositoryBackend) {
	name := testutil.Name(t, "tx")
	create(t, b.Repository(name), map[string]any{"id": "counter", "n": 0.0})
	const workers, each = 4, 10
	var wg sync.WaitGroup
	var retries atomic.Int64
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for attempt := 0; ; attempt++ {
					err := backend.Transaction(ctx(t), b, func(tx backend.Tx) error {
						r := tx.Repository(name)
						rec, err := r.FindByID(ctx(t), "counter")
						if err != nil {
							return err
						}
						doc, err := backend.Decode(rec)
						if err != nil {
							return err
						}
						_, err = r.Update(ctx(t), "counter", map[string]any{"n": doc["n"].(float64) + 1})
						return err
					})
					if err == nil {
						break
					}
					// Under CPU load the workers keep colliding when they
					// retry at once; a growing, jittered pause lets one
					// through. The bound only stops a real livelock.
					if !backend.IsRetryable(err) || attempt >= 200 {
						errs <- fmt.Errorf("increment %d, attempt %d: %w", i, attempt+1, err)
						return
					}
					retries.Add(1)
					time.Sleep(testutil.RetryDelay(attempt))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := find(t, b.Repository(name), "counter")["n"]; n != float64(workers*each) {
		t.Fatalf("counter = %v after %d serializable increments", n, workers*each)
	}
	t.Logf("%d increments, %d retried after a conflict", workers*each, retries.Load())
}

func testConcurrentWrites(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				rec, err := r.Create(ctx(t), map[string]any{"w": float64(w)})
				if err != nil {
					errs <- err
					continue
				}
				id := testutil.Doc(t, rec)["id"].(string)
				if _, err := r.Update(ctx(t), id, map[string]any{"i": float64(i)}); err != nil {
					errs <- err
				}
				if _, err := r.FindByID(ctx(t), id); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n, err := r.Count(ctx(t), backend.MatchAll)
	must(t, err)
	if n != workers*each {
		t.Fatalf("count = %d after %d concurrent creates", n, workers*each)
	}
}

// testNotHTMLEscaped: '<', '>' and '&' are stored and answered as they
// are. An HTML-escaping encoder made each six bytes, so a record full of
// markup took six times its size in storage, in memory and on the wire.
func testNotHTMLEscaped(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	markup := strings.Repeat("<a href='?x=1&y=2'>link</a>", 50)
	rec, err := r.Create(ctx(t), map[string]any{"html": markup, "n": []any{"<", ">", "&"}})
	must(t, err)
	id := testutil.Doc(t, rec)["id"].(string)
	upd, err := r.Update(ctx(t), id, map[string]any{"more": "a<b"})
	must(t, err)
	got, err := r.FindByID(ctx(t), id)
	must(t, err)
	recs, err := r.FindMany(ctx(t), backend.Query{Filter: backend.MatchAll})
	must(t, err)
	if len(recs) != 1 {
		t.Fatalf("findMany gave %d records", len(recs))
	}
	for what, rec := range map[string]backend.Record{"create": rec, "update": upd, "findById": got, "findMany": recs[0]} {
		if bytes.Contains(rec, []byte(`\u003c`)) || bytes.Contains(rec, []byte(`\u0026`)) || bytes.Contains(rec, []byte(`\u003e`)) {
			t.Fatalf("%s answered an HTML-escaped record: %.120s", what, rec)
		}
		if testutil.Doc(t, rec)["html"] != markup {
			t.Fatalf("%s changed the markup", what)
		}
		if len(rec) > len(markup)+200 {
			t.Fatalf("%s answered %d bytes for %d bytes of markup", what, len(rec), len(markup))
		}
	}
}

// testCatalog: GET /v1/repos lists every collection with its indexes
// (issue 20), through the backend under any decorator.
func testCatalog(t *testing.T, b backend.RepositoryBackend) {
	cat, ok := backend.UnwrapRepository(b).(backend.Catalog)
	if !ok {
		t.Fatalf("%T lists no collections", b)
	}
	a, c := testutil.Name(t, "a"), testutil.Name(t, "c")
	if _, err := b.Repository(a).Create(ctx(t), map[string]any{"n": 1.0}); err != nil {
		t.Fatal(err)
	}
	spec := backend.IndexSpec{Name: "by_n", Fields: []backend.Path{{"n"}, {"o", "p"}}, Unique: true}
	must(t, b.Repository(c).EnsureIndex(ctx(t), spec))
	must(t, b.Repository(c).EnsureIndex(ctx(t), backend.IndexSpec{Name: "a_first", Fields: []backend.Path{{"m"}}}))
	list, err := cat.Collections(ctx(t))
	must(t, err)
	var got []backend.CollectionInfo
	for _, info := range list {
		if info.Name == a || info.Name == c {
			got = append(got, info)
		}
	}
	if len(got) != 2 || got[0].Name != a || got[1].Name != c || len(got[0].Indexes) != 0 || len(got[1].Indexes) != 2 {
		t.Fatalf("collections %+v", got)
	}
	if ix := got[1].Indexes; ix[0].Name != "a_first" || ix[1].Name != "by_n" || !ix[1].Unique || ix[1].Fields[1].String() != "o.p" {
		t.Fatalf("indexes %+v", ix)
	}
}
