package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// TestEventsWaitForOlderTransactions is the feed's commit-order rule: a
// job enqueued in a transaction that is still open (an older transaction
// id) holds back a job enqueued and committed after it, so that a reader
// never hands out the later one and then skips the earlier one for good.
// Once the transaction commits, both come, the earlier one first.
func TestEventsWaitForOlderTransactions(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	repo, jobs := openRepo(t, url), openQueue(t, url, false)
	q := testutil.Name(t, "q")
	head, err := jobs.EventHead(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := repo.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := jobs.InTx(tx)
	if err != nil {
		t.Fatal(err)
	}
	// The transaction writes first, so its id is the older one.
	if _, err := w.Insert(ctx, backend.InsertParams{Queue: q, Jobs: []backend.NewJob{{ID: "early", Data: []byte(`1`), MaxAttempts: 1, Backoff: backend.DefaultBackoff}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Insert(ctx, backend.InsertParams{Queue: q, Jobs: []backend.NewJob{{ID: "late", Data: []byte(`2`), MaxAttempts: 1, Backoff: backend.DefaultBackoff}}}); err != nil {
		t.Fatal(err)
	}
	page, err := jobs.Events(ctx, backend.EventsParams{Queue: q, After: head, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 0 || !page.Pending {
		t.Fatalf("with the older transaction open: %d events (pending %v), want none and pending", len(page.Events), page.Pending)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err = jobs.Events(ctx, backend.EventsParams{Queue: q, After: head, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // other tests' transactions on the cluster may hold the horizon a moment
	}
	if len(page.Events) != 2 || page.Events[0].JobID != "early" || page.Events[1].JobID != "late" {
		t.Fatalf("after commit: %+v, want early then late", page.Events)
	}
}
