package backendtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

func changeLog(t *testing.T, b backend.RepositoryBackend) backend.ChangeLog {
	t.Helper()
	l, ok := b.(backend.ChangeLog)
	if !ok {
		t.Fatalf("%T does not implement backend.ChangeLog", b)
	}
	return l
}

func describe(cs []backend.Change) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s %s %d", c.Op, c.ID, c.Version)
	}
	return strings.Join(parts, ", ")
}

// testChanges: every committed write of a collection, in order, once;
// nothing of a rolled-back transaction or another collection.
func testChanges(t *testing.T, b backend.RepositoryBackend) {
	l := changeLog(t, b)
	name := testutil.Name(t, "changes")
	r, other := b.Repository(name), b.Repository(testutil.Name(t, "other"))
	_, start, err := l.ReadChanges(ctx(t), name, -1, 10)
	must(t, err)
	create(t, r, map[string]any{"id": "a", "n": 1.0})
	create(t, other, map[string]any{"id": "x"})
	_, err = modify(t, r, "a", `{"$inc": {"n": 1}}`, backend.WriteParams{})
	must(t, err)
	_, _, err = r.Put(ctx(t), "b", map[string]any{}, backend.PutParams{})
	must(t, err)
	_, _, err = r.Put(ctx(t), "b", map[string]any{"v": 1.0}, backend.PutParams{})
	must(t, err)
	must(t, r.Remove(ctx(t), "a", backend.WriteParams{}))
	tx, err := b.Begin(ctx(t))
	must(t, err)
	create(t, tx.Repository(name), map[string]any{"id": "rolled-back"})
	must(t, tx.Rollback(ctx(t)))
	must(t, backend.Transaction(ctx(t), b, func(tx backend.Tx) error {
		_, err := tx.Repository(name).Create(ctx(t), map[string]any{"id": "c"})
		return err
	}))
	_, err = r.UpdateMany(ctx(t), backend.MatchAll, update(t, `{"$set": {"k": 1}}`))
	must(t, err)
	_, err = r.DeleteMany(ctx(t), filter(t, `{"id": "c"}`))
	must(t, err)
	want := "create a 1, update a 2, create b 1, update b 2, delete a 2, create c 1, update b 3, update c 2, delete c 2"
	got, next, err := l.ReadChanges(ctx(t), name, start, 1000)
	must(t, err)
	if describe(got) != want {
		t.Fatalf("changes:\n got %s\nwant %s", describe(got), want)
	}
	for _, c := range got {
		if _, err := time.Parse(time.RFC3339, c.At); err != nil {
			t.Fatalf("at %q: %v", c.At, err)
		}
	}
	// Page by page, the same.
	var paged []backend.Change
	for cur, pages := start, 0; ; pages++ {
		cs, n, err := l.ReadChanges(ctx(t), name, cur, 2)
		must(t, err)
		if len(cs) == 0 || pages > 10 {
			break
		}
		paged, cur = append(paged, cs...), n
	}
	if describe(paged) != want {
		t.Fatalf("changes in pages of 2: %s", describe(paged))
	}
	// Caught up: nothing more, and a wait that runs out returns empty.
	cs, _, err := backend.WaitChanges(ctx(t), l, name, next, 10, 50*time.Millisecond)
	must(t, err)
	if len(cs) != 0 {
		t.Fatalf("changes after the end: %s", describe(cs))
	}
	// A long poll returns with a change made while it waits.
	done := make(chan []backend.Change, 1)
	go func() {
		cs, _, err := backend.WaitChanges(ctx(t), l, name, next, 10, 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- cs
	}()
	time.Sleep(20 * time.Millisecond) // let the poll start; it must work either way
	create(t, r, map[string]any{"id": "late"})
	if cs := <-done; describe(cs) != "create late 1" {
		t.Fatalf("long poll: %s", describe(cs))
	}
	_, _, err = l.ReadChanges(ctx(t), name, -5, 10)
	if err != nil {
		t.Fatalf("from now: %v", err)
	}
}

// RunChangesAcrossBackends checks that a reader following a collection
// through one backend sees, once each and in commit order, the writes that several
// writers make through another backend over the same database (two
// daemons).
func RunChangesAcrossBackends(t *testing.T, reader, writer backend.RepositoryBackend) {
	name := testutil.Name(t, "shared")
	l := changeLog(t, reader)
	_, cur, err := l.ReadChanges(ctx(t), name, -1, 10)
	must(t, err)
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := writer
			if w%2 == 1 {
				b = reader // both daemons write
			}
			r := b.Repository(name)
			id := fmt.Sprint("w", w)
			if _, err := r.Create(ctx(t), map[string]any{"id": id, "n": 0.0}); err != nil {
				t.Error(err)
				return
			}
			u := backend.Update{Ops: []backend.UpdateOp{{Kind: backend.UpdInc, Path: backend.Path{"n"}, Value: 1.0}}}
			for i := 1; i < each; i++ {
				if _, err := r.Modify(ctx(t), id, u, backend.WriteParams{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	last := map[string]int64{}
	total := 0
	deadline := time.Now().Add(60 * time.Second)
	for total < writers*each && time.Now().Before(deadline) {
		cs, next, err := backend.WaitChanges(ctx(t), l, name, cur, 7, 2*time.Second)
		must(t, err)
		for _, c := range cs {
			if c.Version != last[c.ID]+1 {
				t.Fatalf("%s: version %d after %d (a change skipped, repeated or out of order)", c.ID, c.Version, last[c.ID])
			}
			last[c.ID] = c.Version
			total++
		}
		cur = next
	}
	wg.Wait()
	if total != writers*each {
		t.Fatalf("saw %d changes, want %d", total, writers*each)
	}
}
