package backendtest

import (
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// testDropCompleted: with a completed-job retention of 0 an ack deletes
// the job in the same step. Nothing else changes: a repeated ack is
// still a no-op, a stale or unknown ack is still refused, failed jobs
// are kept, and the key the job held is free at once.
func testDropCompleted(t *testing.T, b *jq) {
	q := qname(t)
	plain := enqueue(t, b, q, backend.EnqueueParams{})
	keyed := enqueue(t, b, q, backend.EnqueueParams{Key: "k"})
	dead := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
	jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 3, Lease: time.Minute})
	must(t, err)
	if len(jobs) != 3 {
		t.Fatalf("claimed %d of 3", len(jobs))
	}
	lease := map[string]string{}
	for _, j := range jobs {
		lease[j.ID] = j.Lease
	}

	outcomes, err := b.svc.Ack(ctx(t), []backend.LeaseRef{
		{ID: plain, Lease: lease[plain]},
		{ID: keyed, Lease: lease[keyed]},
		{ID: dead, Lease: lease[plain]}, // another claim's lease
		{ID: "no-such-job", Lease: "not-a-lease"},
	})
	must(t, err)
	for i, want := range []backend.Code{"", "", backend.CodeConflict, backend.CodeNotFound} {
		if want == "" {
			if outcomes[i] != nil {
				t.Fatalf("ack %d: %v", i, outcomes[i])
			}
			continue
		}
		wantCode(t, outcomes[i], want)
	}
	for _, id := range []string{plain, keyed} {
		if j, _ := b.GetJob(ctx(t), id); j != nil {
			t.Fatalf("completed job %s kept: %+v", id, j)
		}
	}
	// The answer of the first ack was lost, say: the client acks again.
	must(t, b.Acknowledge(ctx(t), plain, lease[plain]))

	must(t, b.Fail(ctx(t), backend.FailParams{ID: dead, Lease: lease[dead]}))
	wantStatus(t, b, dead, backend.StatusFailed)
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Completed != 0 || st.Processing != 0 || st.Failed != 1 || st.Pending != 0 {
		t.Fatalf("stats %+v, want 1 failed and nothing else", st)
	}
	again := enqueue(t, b, q, backend.EnqueueParams{Key: "k"})
	if again == keyed {
		t.Fatal("the key of a deleted job still held")
	}
	wantStatus(t, b, again, backend.StatusPending)
}
