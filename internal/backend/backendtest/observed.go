package backendtest

import (
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// The cases of this file check the job lifecycle through what a worker
// sees (dequeue answers, settle outcomes, dead letters) without getJob,
// priorities, keys or a clock the suite moves, so that they run on every
// store, SQS's included.

// testClaimAckNoLookups: a claim carries its lease and attempt; a claimed
// job is not delivered twice; ack ends it; a repeated ack of the same
// claim is harmless, another lease is refused, an unknown id is not found.
func testClaimAckNoLookups(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{Data: json.RawMessage(`{"planId":"plan-123"}`)})
	got := dequeue(t, b, q, backend.DequeueParams{})
	if got == nil || got.ID != id || got.Queue != q {
		t.Fatalf("dequeue got %+v, want %s", got, id)
	}
	if got.Status != backend.StatusProcessing || got.Attempts != 1 || got.MaxAttempts != backend.DefaultMaxAttempts ||
		got.Lease == "" || got.LeaseExpiresAt == nil || got.StartedAt == nil || got.Backoff != backend.DefaultBackoff {
		t.Fatalf("claimed job: %+v", got)
	}
	if d := got.LeaseExpiresAt.Sub(*got.StartedAt); d != backend.DefaultLease {
		t.Fatalf("default lease %v", d)
	}
	if !sameJSON(t, got.Data, `{"planId":"plan-123"}`) {
		t.Fatalf("data %s", got.Data)
	}
	if again := dequeue(t, b, q, backend.DequeueParams{}); again != nil {
		t.Fatalf("a claimed job was delivered twice: %+v", again)
	}
	must(t, b.Acknowledge(ctx(t), id, got.Lease))
	must(t, b.Acknowledge(ctx(t), id, got.Lease))
	if again := dequeue(t, b, q, backend.DequeueParams{}); again != nil {
		t.Fatalf("an acknowledged job was delivered again: %+v", again)
	}
	wantCode(t, b.Acknowledge(ctx(t), id, "another-lease"), backend.CodeConflict)
	wantCode(t, b.Acknowledge(ctx(t), "no-such-job", "x"), backend.CodeNotFound)
}

// testDeadLettersNoLookups: fail with retry delivers the job again with
// the next attempt until its attempts are spent; then it is a dead letter
// (listFailed, with its last error), retryFailed brings it back with fresh
// attempts, and purgeFailed deletes dead letters.
func testDeadLettersNoLookups(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 3, Backoff: fixed0(), Data: json.RawMessage(`[1,2]`)})
	for attempt := 1; attempt <= 3; attempt++ {
		j := dequeue(t, b, q, backend.DequeueParams{Wait: 5 * time.Second})
		if j == nil || j.ID != id || j.Attempts != attempt {
			t.Fatalf("attempt %d: %+v", attempt, j)
		}
		must(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: j.Lease, Retry: true,
			Error: backend.JobError{Name: "TypeError", Message: "boom", Stack: "at line 1"}}))
		wantCode(t, b.Acknowledge(ctx(t), id, j.Lease), backend.CodeConflict)
	}
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("a dead letter was delivered: %+v", j)
	}
	dead, err := b.ListFailed(ctx(t), q, backend.ListParams{Limit: 10})
	must(t, err)
	if len(dead) != 1 || dead[0].ID != id || dead[0].Status != backend.StatusFailed || dead[0].Attempts != 3 ||
		dead[0].LastError == nil || *dead[0].LastError != (backend.JobError{Name: "TypeError", Message: "boom", Stack: "at line 1"}) ||
		dead[0].FinishedAt == nil || !sameJSON(t, dead[0].Data, `[1,2]`) || dead[0].Lease != "" {
		t.Fatalf("dead letters %+v", dead)
	}
	must(t, b.RetryFailed(ctx(t), id))
	j := dequeue(t, b, q, backend.DequeueParams{Wait: 5 * time.Second})
	if j == nil || j.ID != id || j.Attempts != 1 {
		t.Fatalf("revived job claimed as %+v", j)
	}
	wantCode(t, b.RetryFailed(ctx(t), "no-such-job"), backend.CodeNotFound)
	must(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: j.Lease, Retry: false, Error: backend.JobError{Message: "fatal"}}))
	other := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
	j = dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Fail(ctx(t), backend.FailParams{ID: other, Lease: j.Lease, Retry: true}))
	dead, err = b.ListFailed(ctx(t), q, backend.ListParams{Limit: 10})
	must(t, err)
	if len(dead) != 2 || dead[0].ID != other || dead[1].ID != id || dead[1].Attempts != 1 || dead[1].LastError.Message != "fatal" {
		t.Fatalf("dead letters, newest first: %+v", dead)
	}
	if page, err := b.ListFailed(ctx(t), q, backend.ListParams{Limit: 1, Offset: 1}); err != nil || len(page) != 1 || page[0].ID != id {
		t.Fatalf("second page: %+v %v", page, err)
	}
	n, err := b.PurgeFailed(ctx(t), q)
	must(t, err)
	if n != 2 {
		t.Fatalf("purged %d dead letters, want 2", n)
	}
	if dead, err := b.ListFailed(ctx(t), q, backend.ListParams{Limit: 10}); err != nil || dead == nil || len(dead) != 0 {
		t.Fatalf("after purge: %#v %v (want an empty list)", dead, err)
	}
	if dead, err := b.ListFailed(ctx(t), qname(t), backend.ListParams{Limit: 10}); err != nil || dead == nil || len(dead) != 0 {
		t.Fatalf("a queue never used: %#v %v (want an empty list)", dead, err)
	}
}

// testReleaseNoLookups: a released claim is delivered again at once with
// the same attempt (a job with one attempt is not dead-lettered by it);
// the released lease is refused after.
func testReleaseNoLookups(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
	j := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	must(t, b.Release(ctx(t), id, j.Lease))
	wantCode(t, b.Release(ctx(t), id, j.Lease), backend.CodeConflict)
	again := dequeue(t, b, q, backend.DequeueParams{Wait: 5 * time.Second})
	if again == nil || again.ID != id || again.Attempts != 1 || again.Lease == j.Lease {
		t.Fatalf("after release: %+v", again)
	}
	wantCode(t, b.Acknowledge(ctx(t), id, j.Lease), backend.CodeConflict)
	must(t, b.Acknowledge(ctx(t), id, again.Lease))
}

// testLeaseRealTime: leases run out in real time (SQS keeps its own
// clock, which no test can move): a heartbeat keeps a claim, an expired
// claim is delivered again with the next attempt and its old lease is
// refused, and a job whose attempts are spent becomes a dead letter with
// LeaseExpired. Leases of one second: SQS counts whole seconds.
func testLeaseRealTime(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 2})
	first := dequeue(t, b, q, backend.DequeueParams{Lease: time.Second})
	if first == nil || first.ID != id {
		t.Fatalf("claimed %+v", first)
	}
	must(t, b.Heartbeat(ctx(t), backend.HeartbeatParams{ID: id, Lease: first.Lease, Extend: 3 * time.Second}))
	// Past the first lease, inside the extended one.
	if j := dequeue(t, b, q, backend.DequeueParams{Wait: 1500 * time.Millisecond}); j != nil {
		t.Fatalf("a job whose lease was extended was delivered again: %+v", j)
	}
	second := dequeue(t, b, q, backend.DequeueParams{Wait: 10 * time.Second, Lease: time.Second})
	if second == nil || second.ID != id || second.Attempts != 2 || second.Lease == first.Lease {
		t.Fatalf("expired claim delivered again as %+v", second)
	}
	wantCode(t, b.Acknowledge(ctx(t), id, first.Lease), backend.CodeConflict)
	// The second lease runs out too, and no attempt is left.
	if j := dequeue(t, b, q, backend.DequeueParams{Wait: 3 * time.Second}); j != nil {
		t.Fatalf("a job with no attempts left was delivered: %+v", j)
	}
	dead, err := b.ListFailed(ctx(t), q, backend.ListParams{Limit: 10})
	must(t, err)
	if len(dead) != 1 || dead[0].ID != id || dead[0].LastError == nil || dead[0].LastError.Name != backend.LeaseExpired.Name {
		t.Fatalf("dead letters %+v", dead)
	}
}

// sameJSON reports whether data means the JSON text want (stores may
// space it differently).
func sameJSON(t *testing.T, data json.RawMessage, want string) bool {
	var a, b any
	must(t, json.Unmarshal(data, &a))
	must(t, json.Unmarshal([]byte(want), &b))
	return string(testutil.MustJSON(t, a)) == string(testutil.MustJSON(t, b))
}
