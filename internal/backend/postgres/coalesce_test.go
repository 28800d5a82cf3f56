package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// holdGets takes every slot of reads that run on their own, so that the
// reads that follow queue for a shared query; release gives them back.
func holdGets(g *getCoalescer) (queued func() int, release func()) {
	g.mu.Lock()
	held := g.max - g.running
	g.running = g.max
	g.mu.Unlock()
	queued = func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		n := 0
		for _, ws := range g.queued {
			n += len(ws)
		}
		return n
	}
	release = func() {
		for range held {
			g.next(func() int64 { return backend.Now().UnixMilli() })
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
	b, err := OpenRepository(ctx, Config{URL: testutil.PostgresDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
	queued, release := holdGets(b.gets)
	got := make([]backend.Item, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { got[i], errs[i] = plans.Get(ctx, id) })
	}
	waitFor(t, "every read queued", func() bool { return queued() == len(ids) })
	release()
	wg.Wait()
	if n := b.gets.batches.Load(); n != 1 {
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
	b, err := OpenRepository(ctx, Config{URL: testutil.PostgresDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	plans := b.Repository("plans")
	rec, err := plans.Create(ctx, map[string]any{"id": "a"})
	if err != nil {
		t.Fatal(err)
	}
	queued, release := holdGets(b.gets)
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

// holdCreates is holdGets for creates.
func holdCreates(c *createCoalescer) (queued func() int, release func()) {
	c.mu.Lock()
	held := coalesceAfter - c.running
	c.running = coalesceAfter
	c.mu.Unlock()
	queued = func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for _, ws := range c.queued {
			n += len(ws)
		}
		return n
	}
	release = func() {
		for range held {
			c.next()
		}
	}
	return queued, release
}

// TestCoalescedCreates: queued creates go in one INSERT and each is
// stored and answered as stored; when the statement fails, each create
// gets its own outcome (a taken id, or the same id twice, is a conflict
// for that create alone); a create given up while queued is never written.
func TestCoalescedCreates(t *testing.T) {
	ctx := context.Background()
	b, err := OpenRepository(ctx, Config{URL: testutil.PostgresDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.creates.maxQueued = time.Hour // the queue holds until released
	plans := b.Repository("plans")
	if _, err := plans.Create(ctx, map[string]any{"id": "taken"}); err != nil {
		t.Fatal(err)
	}

	run := func(ids []string) ([]backend.Record, []error) {
		t.Helper()
		queued, release := holdCreates(b.creates)
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
	codeOf := func(err error) backend.Code {
		var be *backend.Error
		if errors.As(err, &be) {
			return be.Code
		}
		return ""
	}

	before := b.creates.batches.Load()
	recs, errs := run([]string{"a", "b", "c"})
	if n := b.creates.batches.Load() - before; n != 1 {
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

	queued, release := holdCreates(b.creates)
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
	b, err := OpenRepository(ctx, Config{URL: testutil.PostgresDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	plans := b.Repository("plans")
	if _, err := plans.Create(ctx, map[string]any{"id": "first"}); err != nil {
		t.Fatal(err)
	}
	_, release := holdCreates(b.creates)
	defer release()
	rec, err := plans.Create(ctx, map[string]any{"id": "alone"})
	if err != nil {
		t.Fatal(err)
	}
	if it, err := plans.Get(ctx, "alone"); err != nil || string(it.Rec) != string(rec) {
		t.Fatalf("stored %s (%v), answered %s", it.Rec, err, rec)
	}
	b.creates.mu.Lock()
	running := b.creates.running
	b.creates.mu.Unlock()
	if running != coalesceAfter {
		t.Fatalf("%d inserts counted as running after the lone one ended, want the %d held", running, coalesceAfter)
	}
}
