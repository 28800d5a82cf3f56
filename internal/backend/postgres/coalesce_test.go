package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// openRepo opens a repository backend on url, closed when the test ends.
func openRepo(t *testing.T, url string) *RepositoryBackend {
	t.Helper()
	b, err := OpenRepository(context.Background(), Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// hold takes every slot of calls that run on their own, so that the
// calls that follow queue for a shared statement; release gives them back.
// It first waits for the batcher to be idle: a batch answers its callers
// before it ends (done), and a batch of an earlier step still ending would
// give a slot back under the hold, letting the next call run alone.
func hold[K, W comparable](t *testing.T, b *batcher[K, W]) (queued func() int, release func()) {
	t.Helper()
	waitFor(t, "the batcher idle", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.running == 0 && len(b.order) == 0
	})
	b.mu.Lock()
	held := coalesceAfter - b.running
	b.running = coalesceAfter
	b.mu.Unlock()
	queued = func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		n := 0
		for _, ws := range b.queued {
			n += len(ws)
		}
		return n
	}
	release = func() {
		for range held {
			b.done()
		}
	}
	return queued, release
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestCoalescedGets: reads queued behind busy slots go in one query, and
// each gets its own record, or none for an id that is missing, expired or
// in another collection.
func TestCoalescedGets(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	plans, other := b.Repository("plans"), b.Repository("other")
	want := map[string]string{}
	for i := range 20 {
		id := fmt.Sprintf("p%d", i)
		rec, err := plans.Create(ctx, map[string]any{"id": id, "n": float64(i)})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = string(rec)
	}
	if _, err := other.Create(ctx, map[string]any{"id": "o1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := plans.Put(ctx, "soon", map[string]any{"n": 1.0}, backend.PutParams{ExpiresAt: backend.Now().UnixMilli() + 50}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // "soon" has expired

	ids := []string{"missing", "o1", "soon"}
	for id := range want {
		ids = append(ids, id, id) // twice: two waits for one id
	}
	queued, release := hold(t, b.gets.q)
	got := make([]backend.Item, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { got[i], errs[i] = plans.Get(ctx, id) })
	}
	waitFor(t, "every read queued", func() bool { return queued() == len(ids) })
	release()
	wg.Wait()
	if n := b.gets.q.batches.Load(); n != 1 {
		t.Errorf("%d shared queries, want 1", n)
	}
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatalf("Get(%q): %v", id, errs[i])
		}
		if string(got[i].Rec) != want[id] {
			t.Errorf("Get(%q) = %s, want %q", id, got[i].Rec, want[id])
		}
		if want[id] != "" && got[i].Version != 1 {
			t.Errorf("Get(%q) version %d, want 1", id, got[i].Version)
		}
	}
}

// TestCoalescedGetGivesUp: a queued read whose caller gives up returns at
// once; the query it was queued for serves the others.
func TestCoalescedGetGivesUp(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	plans := b.Repository("plans")
	rec, err := plans.Create(ctx, map[string]any{"id": "a"})
	if err != nil {
		t.Fatal(err)
	}
	queued, release := hold(t, b.gets.q)
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() { _, err := plans.Get(cctx, "a"); gaveUp <- err }()
	var it backend.Item
	var itErr error
	done := make(chan struct{})
	go func() { it, itErr = plans.Get(ctx, "a"); close(done) }()
	waitFor(t, "both reads queued", func() bool { return queued() == 2 })
	cancel()
	var be *backend.Error
	if err := <-gaveUp; !errors.As(err, &be) || be.Code != backend.CodeUnavailable {
		t.Fatalf("given-up read: %v, want unavailable", err)
	}
	release()
	<-done
	if itErr != nil || string(it.Rec) != string(rec) {
		t.Fatalf("other read: %s, %v", it.Rec, itErr)
	}
}

// TestCoalescedCreates: queued creates go in one INSERT and each is
// stored and answered as stored; when the statement fails, each create
// gets its own outcome (a taken id, or the same id twice, is a conflict
// for that create alone); a create given up while queued is never written.
func TestCoalescedCreates(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	b.creates.maxQueued = time.Hour // the queue holds until released
	plans := b.Repository("plans")
	if _, err := plans.Create(ctx, map[string]any{"id": "taken"}); err != nil {
		t.Fatal(err)
	}

	run := func(ids []string) ([]backend.Record, []error) {
		t.Helper()
		queued, release := hold(t, b.creates.q)
		recs := make([]backend.Record, len(ids))
		errs := make([]error, len(ids))
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() { recs[i], errs[i] = plans.Create(ctx, map[string]any{"id": id, "i": float64(i)}) })
			// One at a time, so that the queue's order is ids' order.
			waitFor(t, "the create queued", func() bool { return queued() == i+1 })
		}
		release()
		wg.Wait()
		return recs, errs
	}
	before := b.creates.q.batches.Load()
	recs, errs := run([]string{"a", "b", "c"})
	if n := b.creates.q.batches.Load() - before; n != 1 {
		t.Errorf("%d shared statements for three creates, want 1", n)
	}
	for i, id := range []string{"a", "b", "c"} {
		if errs[i] != nil {
			t.Fatalf("create %q: %v", id, errs[i])
		}
		it, err := plans.Get(ctx, id)
		if err != nil || string(it.Rec) != string(recs[i]) || it.Version != 1 {
			t.Errorf("create %q answered %s; stored %s at %d (%v)", id, recs[i], it.Rec, it.Version, err)
		}
	}

	recs, errs = run([]string{"d", "taken", "e", "e"})
	if errs[0] != nil || errs[2] != nil || recs[0] == nil || recs[2] == nil {
		t.Fatalf("d, e: %v %v", errs[0], errs[2])
	}
	if codeOf(errs[1]) != backend.CodeConflict || codeOf(errs[3]) != backend.CodeConflict {
		t.Fatalf("taken, second e: %v, %v; want conflicts", errs[1], errs[3])
	}
	if it, _ := plans.Get(ctx, "e"); string(it.Rec) != string(recs[2]) {
		t.Errorf("e stored %s, want the first create's %s", it.Rec, recs[2])
	}

	queued, release := hold(t, b.creates.q)
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() { _, err := plans.Create(cctx, map[string]any{"id": "never"}); gaveUp <- err }()
	waitFor(t, "the create queued", func() bool { return queued() == 1 })
	cancel()
	if err := <-gaveUp; codeOf(err) != backend.CodeUnavailable {
		t.Fatalf("given-up create: %v, want unavailable", err)
	}
	release()
	if it, err := plans.Get(ctx, "never"); err != nil || it.Rec != nil {
		t.Fatalf("a create given up while queued was written: %s, %v", it.Rec, err)
	}
}

// TestCoalescedCreateDoesNotWaitForever: while the inserts under way are
// stuck (here: their slots held, as by inserts waiting on a transaction's
// row lock), a queued create goes on its own after maxQueued.
func TestCoalescedCreateDoesNotWaitForever(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	plans := b.Repository("plans")
	if _, err := plans.Create(ctx, map[string]any{"id": "first"}); err != nil {
		t.Fatal(err)
	}
	_, release := hold(t, b.creates.q)
	defer release()
	rec, err := plans.Create(ctx, map[string]any{"id": "alone"})
	if err != nil {
		t.Fatal(err)
	}
	if it, err := plans.Get(ctx, "alone"); err != nil || string(it.Rec) != string(rec) {
		t.Fatalf("stored %s (%v), answered %s", it.Rec, err, rec)
	}
	b.creates.q.mu.Lock()
	running := b.creates.q.running
	b.creates.q.mu.Unlock()
	if running != coalesceAfter {
		t.Fatalf("%d inserts counted as running after the lone one ended, want the %d held", running, coalesceAfter)
	}
}

type modifyCall struct {
	id string
	up backend.Update
	p  backend.WriteParams
}

// modifyQueued queues calls one at a time behind held slots, then lets
// them go as one pipeline; their outcomes in calls' order.
func modifyQueued(t *testing.T, b *RepositoryBackend, r backend.Repository, calls []modifyCall) ([]backend.Item, []error) {
	t.Helper()
	queued, release := hold(t, b.updates.q)
	its := make([]backend.Item, len(calls))
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { its[i], errs[i] = r.(*repository).Modify(context.Background(), c.id, c.up, c.p) })
		waitFor(t, "the update queued", func() bool { return queued() == i+1 })
	}
	release()
	wg.Wait()
	return its, errs
}

func codeOf(err error) backend.Code {
	var be *backend.Error
	if errors.As(err, &be) {
		return be.Code
	}
	return ""
}

func sameDoc(t *testing.T, rec backend.Record, want map[string]any) bool {
	t.Helper()
	d, err := backend.Decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(d, want)
}

func mustParseUpdate(t *testing.T, body map[string]any) backend.Update {
	t.Helper()
	up, err := backend.ParseUpdate(body)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// TestCoalescedUpdates: queued updates go in one pipeline and each gets
// its own outcome: written (a patch, operators, a matching If-Match, an
// expiry, two updates of one record in the order they came), or the
// error it would get alone (not found, a version mismatch, a refused
// operator), which writes nothing.
func TestCoalescedUpdates(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	b.updates.maxQueued = time.Hour // the queue holds until released
	plans := b.Repository("plans")
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		if _, err := plans.Create(ctx, map[string]any{"id": id, "n": 1.0, "s": "x"}); err != nil {
			t.Fatal(err)
		}
	}
	exp := backend.Now().Add(time.Hour).UnixMilli()
	calls := []modifyCall{
		{id: "c", up: backend.Update{Merge: map[string]any{"m": "c"}}},
		{id: "a", up: mustParseUpdate(t, map[string]any{"$inc": map[string]any{"n": 2.0}})},
		{id: "b", up: backend.Update{Merge: map[string]any{"m": "b"}}, p: backend.WriteParams{IfMatch: 1}},
		{id: "d", up: backend.Update{Merge: map[string]any{"m": "d"}}, p: backend.WriteParams{IfMatch: 7}},
		{id: "missing", up: backend.Update{Merge: map[string]any{"m": "x"}}},
		{id: "e", up: mustParseUpdate(t, map[string]any{"$inc": map[string]any{"s": 1.0}})},
		{id: "a", up: mustParseUpdate(t, map[string]any{"$set": map[string]any{"n2": 1.0}, "$inc": map[string]any{"n": 10.0}})},
		{id: "f", up: backend.Update{Merge: map[string]any{"m": "f"}}, p: backend.WriteParams{ExpiresAt: exp}},
	}
	before := b.updates.q.batches.Load()
	its, errs := modifyQueued(t, b, plans, calls)
	if n := b.updates.q.batches.Load() - before; n != 1 {
		t.Errorf("%d shared pipelines for %d updates, want 1", n, len(calls))
	}
	if n := b.updates.failed.Load(); n != 0 {
		t.Errorf("%d pipelines failed, want none (each outcome from the pipeline)", n)
	}
	wantErr := map[int]backend.Code{3: backend.CodeConflict, 4: backend.CodeNotFound, 5: backend.CodeInvalidArgument}
	for i, c := range calls {
		if code, ok := wantErr[i]; ok {
			if codeOf(errs[i]) != code {
				t.Errorf("update %d of %q: %v, want %s", i, c.id, errs[i], code)
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("update %d of %q: %v", i, c.id, errs[i])
		}
	}
	// Each answer is what was stored by its update.
	check := func(id string, it backend.Item, want map[string]any, version int64) {
		t.Helper()
		d, err := backend.Decode(it.Rec)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if d[k] != v {
				t.Errorf("%s answered %s, want %s = %v", id, it.Rec, k, v)
			}
		}
		if it.Version != version {
			t.Errorf("%s answered at version %d, want %d", id, it.Version, version)
		}
	}
	check("a", its[1], map[string]any{"n": 3.0}, 2)
	check("a", its[6], map[string]any{"n": 13.0, "n2": 1.0}, 3)
	check("b", its[2], map[string]any{"m": "b"}, 2)
	check("c", its[0], map[string]any{"m": "c"}, 2)
	check("f", its[7], map[string]any{"m": "f"}, 2)
	if its[7].ExpiresAt != exp {
		t.Errorf("f answered expiring at %d, want %d", its[7].ExpiresAt, exp)
	}
	for id, want := range map[string]int64{"a": 3, "b": 2, "c": 2, "d": 1, "e": 1, "f": 2} {
		it, err := plans.Get(ctx, id)
		if err != nil || it.Version != want {
			t.Errorf("%s stored at version %d (%v), want %d", id, it.Version, err, want)
		}
	}
	if it, _ := plans.Get(ctx, "a"); string(it.Rec) != string(its[6].Rec) {
		t.Errorf("a stored %s, answered %s", it.Rec, its[6].Rec)
	}
}

// TestCoalescedUpdateFails: a statement of the pipeline that fails (a
// unique value taken) rolls all of it back, and each update runs again
// on its own: the failing one gets its conflict, the others are written
// once each.
func TestCoalescedUpdateFails(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	b.updates.maxQueued = time.Hour
	plans := b.Repository("plans")
	for _, id := range []string{"a", "b", "c"} {
		if _, err := plans.Create(ctx, map[string]any{"id": id, "n": 1.0, "u": id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := plans.EnsureIndex(ctx, backend.IndexSpec{Name: "u", Fields: []backend.Path{{"u"}}, Unique: true}); err != nil {
		t.Fatal(err)
	}
	inc := mustParseUpdate(t, map[string]any{"$inc": map[string]any{"n": 1.0}})
	_, errs := modifyQueued(t, b, plans, []modifyCall{
		{id: "a", up: inc},
		{id: "b", up: backend.Update{Merge: map[string]any{"u": "c"}}},
		{id: "c", up: inc},
	})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("a, c: %v, %v", errs[0], errs[2])
	}
	waitFor(t, "the pipeline counted as failed", func() bool { return b.updates.failed.Load() == 1 })
	if codeOf(errs[1]) != backend.CodeConflict {
		t.Fatalf("b taking c's unique value: %v, want a conflict", errs[1])
	}
	for id, want := range map[string]map[string]any{"a": {"id": "a", "n": 2.0, "u": "a"}, "b": {"id": "b", "n": 1.0, "u": "b"}, "c": {"id": "c", "n": 2.0, "u": "c"}} {
		if it, err := plans.Get(ctx, id); err != nil || !sameDoc(t, it.Rec, want) {
			t.Errorf("%s stored %s (%v), want %v", id, it.Rec, err, want)
		}
	}
}

// TestCoalescedUpdateRowLock: a client transaction holding a record's
// row lock does not hold up the other updates of a pipeline: the
// pipeline gives up on the lock, the others are written and answered
// while the transaction is still open, and the locked record's update is
// written after it ends.
func TestCoalescedUpdateRowLock(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	b.updates.maxQueued = time.Hour
	plans := b.Repository("plans")
	for _, id := range []string{"a", "b"} {
		if _, err := plans.Create(ctx, map[string]any{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Repository("plans").Update(ctx, "a", map[string]any{"tx": true}); err != nil {
		t.Fatal(err)
	}
	queued, release := hold(t, b.updates.q)
	done := make(chan error, 2)
	for _, id := range []string{"a", "b"} {
		go func() {
			_, err := plans.Update(ctx, id, map[string]any{"m": id})
			done <- err
		}()
		waitFor(t, "the update queued", func() bool { return queued() >= 1 && (id == "a" || queued() == 2) })
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if it, _ := plans.Get(ctx, "b"); it.Version != 2 {
		t.Fatalf("b at version %d while a's transaction is open, want 2", it.Version)
	}
	// Counted once the pipeline's goroutine is done with it.
	waitFor(t, "the pipeline counted as failed (on the row lock)", func() bool { return b.updates.failed.Load() == 1 })
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if it, _ := plans.Get(ctx, "a"); !sameDoc(t, it.Rec, map[string]any{"id": "a", "m": "a", "tx": true}) || it.Version != 3 {
		t.Fatalf("a stored %s at version %d", it.Rec, it.Version)
	}
}

// TestCoalescedUpdateGivenUp: an update whose caller gave up while it was
// queued is never written.
func TestCoalescedUpdateGivenUp(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	b.updates.maxQueued = time.Hour
	plans := b.Repository("plans")
	if _, err := plans.Create(ctx, map[string]any{"id": "a"}); err != nil {
		t.Fatal(err)
	}
	queued, release := hold(t, b.updates.q)
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() { _, err := plans.Update(cctx, "a", map[string]any{"m": 1.0}); gaveUp <- err }()
	waitFor(t, "the update queued", func() bool { return queued() == 1 })
	cancel()
	if err := <-gaveUp; codeOf(err) != backend.CodeUnavailable {
		t.Fatalf("given-up update: %v, want unavailable", err)
	}
	release()
	if it, err := plans.Get(ctx, "a"); err != nil || it.Version != 1 {
		t.Fatalf("an update given up while queued was written: %s at %d, %v", it.Rec, it.Version, err)
	}
}

// TestCoalescedUpdatesConcurrent: many concurrent $inc of a few records,
// so that pipelines hold several updates of one record and may meet each
// other's row locks: every increment is written exactly once, and each
// answer is its own version of the record.
func TestCoalescedUpdatesConcurrent(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	plans := b.Repository("plans")
	ids := []string{"a", "b", "c", "d", "e"}
	for _, id := range ids {
		if _, err := plans.Create(ctx, map[string]any{"id": id, "n": 0.0}); err != nil {
			t.Fatal(err)
		}
	}
	const workers, each = 32, 10
	inc := mustParseUpdate(t, map[string]any{"$inc": map[string]any{"n": 1.0}})
	var mu sync.Mutex
	seen := map[string]map[int64]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := ids[(w+i)%len(ids)]
				it, err := plans.(*repository).Modify(ctx, id, inc, backend.WriteParams{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] == nil {
					seen[id] = map[int64]bool{}
				}
				if seen[id][it.Version] {
					t.Errorf("%s: version %d answered twice", id, it.Version)
				}
				seen[id][it.Version] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := 0
	for _, id := range ids {
		it, err := plans.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := backend.Decode(it.Rec)
		n := int(d["n"].(float64))
		if int64(n)+1 != it.Version || n != len(seen[id]) {
			t.Errorf("%s: n %d at version %d, %d answers", id, n, it.Version, len(seen[id]))
		}
		total += n
	}
	if total != workers*each {
		t.Errorf("%d increments written, want %d", total, workers*each)
	}
	t.Logf("%d pipelines, %d failed", b.updates.q.batches.Load(), b.updates.failed.Load())
}

// TestCoalescedUpdateLostConnection: a pipeline whose connection is cut
// has an unknown outcome, so its updates are not run again (an $inc
// would be written twice had it committed): each fails as unavailable,
// as a lone update would.
func TestCoalescedUpdateLostConnection(t *testing.T) {
	dbURL, proxy := testutil.PostgresDBBehindProxy(t)
	ctx := context.Background()
	b := openRepo(t, dbURL)
	b.updates.maxQueued = time.Hour
	plans := b.Repository("plans")
	for _, id := range []string{"a", "b"} {
		if _, err := plans.Create(ctx, map[string]any{"id": id, "n": 0.0}); err != nil {
			t.Fatal(err)
		}
	}
	inc := mustParseUpdate(t, map[string]any{"$inc": map[string]any{"n": 1.0}})
	calls := []modifyCall{{id: "a", up: inc}, {id: "b", up: inc}}
	// Warm: the statements are prepared on the connection, so that the
	// cut request is the pipeline itself.
	if _, errs := modifyQueued(t, b, plans, calls); errs[0] != nil || errs[1] != nil {
		t.Fatalf("before the cut: %v", errs)
	}
	proxy.CutRequests(1, false)
	_, errs := modifyQueued(t, b, plans, calls)
	proxy.CutRequests(0, false)
	for i, err := range errs {
		if codeOf(err) != backend.CodeUnavailable {
			t.Errorf("update of %s over a cut connection: %v, want unavailable", calls[i].id, err)
		}
	}
	for _, id := range []string{"a", "b"} {
		if it, err := plans.Get(ctx, id); err != nil || !sameDoc(t, it.Rec, map[string]any{"id": id, "n": 1.0}) {
			t.Errorf("%s: %s (%v), want n = 1 (the warm-up only)", id, it.Rec, err)
		}
	}
}
