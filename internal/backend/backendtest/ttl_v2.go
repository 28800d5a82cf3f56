package backendtest

import (
	"sync"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// testTTL: a record past its expiry is absent to every call at once,
// whether or not it has been purged yet; the purge deletes it.
func testTTL(t *testing.T, b backend.RepositoryBackend) {
	exp, ok := b.(backend.Expirer)
	if !ok {
		t.Fatalf("%T does not implement backend.Expirer", b)
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: t0}
	exp.SetClock(clk.Now)
	at := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	r := repo(t, b)
	must(t, r.EnsureIndex(ctx(t), backend.IndexSpec{Name: "u", Fields: []backend.Path{{"u"}}, Unique: true}))
	_, _, err := r.Put(ctx(t), "short", map[string]any{"u": "taken", "k": 1.0}, backend.PutParams{ExpiresAt: at(time.Second)})
	must(t, err)
	_, _, err = r.Put(ctx(t), "also", map[string]any{"k": 1.0}, backend.PutParams{IfNoneMatch: true, ExpiresAt: at(time.Second)})
	must(t, err)
	create(t, r, map[string]any{"id": "forever", "k": 1.0})
	create(t, r, map[string]any{"id": "later", "k": 1.0})
	it, err := modify(t, r, "later", `{"$set": {"m": 1}}`, backend.WriteParams{ExpiresAt: at(time.Hour)})
	must(t, err)
	if it.ExpiresAt != at(time.Hour) {
		t.Fatalf("Modify set expiry %d, want %d", it.ExpiresAt, at(time.Hour))
	}
	// An update without an expiry keeps the record's.
	it, err = modify(t, r, "later", `{"$inc": {"k": 1}}`, backend.WriteParams{})
	must(t, err)
	if it.ExpiresAt != at(time.Hour) {
		t.Fatalf("Modify without an expiry changed it to %d", it.ExpiresAt)
	}
	kOne := filter(t, `{"k": {"$gte": 1}}`)
	count := func() int64 {
		n, err := r.Count(ctx(t), kOne)
		must(t, err)
		return n
	}
	if n := count(); n != 4 {
		t.Fatalf("before expiry: count %d, want 4", n)
	}
	if doc, _ := get(t, r, "short"); doc == nil {
		t.Fatal("a record vanished before its expiry")
	}

	clk.Set(t0.Add(time.Second)) // expiry is the first instant it is gone
	if doc, _ := get(t, r, "short"); doc != nil {
		t.Fatal("Get returned an expired record")
	}
	if rec, err := r.FindByID(ctx(t), "short"); err != nil || rec != nil {
		t.Fatalf("FindByID returned an expired record: %s %v", rec, err)
	}
	items, err := r.GetMany(ctx(t), []string{"short", "forever"})
	must(t, err)
	if items[0].Rec != nil || items[1].Rec == nil {
		t.Fatalf("GetMany: %v", items)
	}
	recs, err := r.FindMany(ctx(t), backend.Query{Filter: kOne})
	must(t, err)
	if got := ids(t, recs); len(got) != 2 || got[0] != "forever" || got[1] != "later" {
		t.Fatalf("FindMany after expiry: %v", got)
	}
	if n := count(); n != 2 {
		t.Fatalf("after expiry: count %d, want 2", n)
	}
	_, err = modify(t, r, "also", `{"k": 2}`, backend.WriteParams{})
	wantCode(t, err, backend.CodeNotFound)
	wantCode(t, r.Remove(ctx(t), "also", backend.WriteParams{IfMatch: 1}), backend.CodeConflict)
	res, err := r.UpdateMany(ctx(t), backend.MatchAll, update(t, `{"$set": {"seen": true}}`))
	must(t, err)
	if res.Matched != 2 {
		t.Fatalf("updateMany matched %d after expiry, want 2", res.Matched)
	}
	// The id and the unique value of an expired record are free.
	create(t, r, map[string]any{"id": "short", "u": "taken"})
	if _, v := get(t, r, "short"); v != 1 {
		t.Fatalf("re-created over an expired record at version %d", v)
	}
	it2, created, err := r.Put(ctx(t), "also", map[string]any{}, backend.PutParams{})
	must(t, err)
	if !created || it2.Version != 1 || it2.ExpiresAt != 0 {
		t.Fatalf("put over an expired record: created=%v %+v", created, it2)
	}
	must(t, r.Remove(ctx(t), "also", backend.WriteParams{}))
	// A put without an expiry clears the record's.
	_, _, err = r.Put(ctx(t), "later", map[string]any{"k": 5.0}, backend.PutParams{})
	must(t, err)
	clk.Set(t0.Add(2 * time.Hour))
	if doc, _ := get(t, r, "later"); doc == nil {
		t.Fatal("a put without an expiry kept the old one")
	}

	// The purge deletes what expired: the clock turned back does not
	// bring it back.
	_, _, err = r.Put(ctx(t), "doomed", map[string]any{}, backend.PutParams{ExpiresAt: at(90 * time.Minute)})
	must(t, err)
	n, err := exp.PurgeExpired(ctx(t))
	must(t, err)
	if n < 1 {
		t.Fatalf("purge deleted %d", n)
	}
	clk.Set(t0)
	if doc, _ := get(t, r, "doomed"); doc != nil {
		t.Fatal("the purge left an expired record")
	}
	if doc, _ := get(t, r, "forever"); doc == nil {
		t.Fatal("the purge deleted a record without expiry")
	}
}
