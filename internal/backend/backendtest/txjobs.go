package backendtest

import (
	"context"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/testutil"
)

// NewTxPair opens a records backend and a job store in one database (the
// factory registers its own cleanup with t).
type NewTxPair func(t *testing.T) (backend.RepositoryBackend, backend.JobStore)

// RunTxJobs runs the transactional jobs suite (DESIGN §4): jobs enqueued,
// acknowledged and failed inside a records transaction commit or roll
// back with its records.
func RunTxJobs(t *testing.T, newPair NewTxPair) {
	tests := []struct {
		name string
		fn   func(t *testing.T, x *txEnv)
	}{
		{"SharesDatabase", testTxShares},
		{"CommitKeepsRecordAndJobDeliveredOnce", testTxJobCommit},
		{"RollbackLeavesNeither", testTxJobRollback},
		{"InvisibleUntilCommitThenWakesPoll", testTxInvisible},
		{"DedupeKeyResolvedInside", testTxDedupe},
		{"AckRolledBackKeepsTheClaim", testTxAckRollback},
		{"AckCommittedCompletes", testTxAckCommit},
		{"FailCommittedRetriesOrDeadLetters", testTxFail},
		{"EndedTransactionRefuses", testTxJobsEnded},
		{"ClaimRacingAnAckInOpenTx", testTxAckRacesClaim},
		{"KeyOfAnOpenTxWaitsForIt", testTxKeyWaits},
		{"DropCompletedCommitsWithRecords", testTxDrop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo, store := newPair(t)
			var opts []func(*queue.Config)
			if strings.HasPrefix(tc.name, "Drop") {
				opts = append(opts, func(c *queue.Config) { c.DropCompleted = true })
			}
			tc.fn(t, &txEnv{jq: newJQ(t, store, opts...), repo: repo})
		})
	}
}

type txEnv struct {
	*jq
	repo backend.RepositoryBackend
}

// begin opens a transaction and its job queue; the transaction is rolled
// back at the end of the test if the case left it open.
func (x *txEnv) begin(t *testing.T) (backend.Tx, *queue.Tx) {
	t.Helper()
	tx, err := x.repo.Begin(ctx(t))
	must(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	jobs, err := x.svc.InTx(tx)
	must(t, err)
	return tx, jobs
}

func (x *txEnv) commit(t *testing.T, tx backend.Tx, jobs *queue.Tx) {
	t.Helper()
	must(t, tx.Commit(ctx(t)))
	jobs.Committed()
}

func txEnqueue(t *testing.T, jobs *queue.Tx, q string, p backend.EnqueueParams) backend.Inserted {
	t.Helper()
	if p.Data == nil {
		p.Data = json.RawMessage(`{"order":"o-1"}`)
	}
	res, err := jobs.Enqueue(ctx(t), q, []backend.EnqueueParams{p})
	must(t, err)
	return res[0]
}

func wantNoJob(t *testing.T, b *jq, id string) {
	t.Helper()
	j, err := b.GetJob(ctx(t), id)
	must(t, err)
	if j != nil {
		t.Fatalf("job %s exists (%s), want none", id, j.Status)
	}
}

func wantRecord(t *testing.T, repo backend.RepositoryBackend, coll, id string, want bool) {
	t.Helper()
	rec, err := repo.Repository(coll).FindByID(ctx(t), id)
	must(t, err)
	if (rec != nil) != want {
		t.Fatalf("record %s/%s present = %v, want %v", coll, id, rec != nil, want)
	}
}

func collName(t *testing.T) string { return testutil.Name(t, "orders") }

func testTxShares(t *testing.T, x *txEnv) {
	if !x.svc.SharesDatabase(x.repo) {
		t.Fatal("the records backend and the job store of one database do not share it")
	}
}

func testTxJobCommit(t *testing.T, x *txEnv) {
	q, coll := qname(t), collName(t)
	tx, jobs := x.begin(t)
	_, err := tx.Repository(coll).Create(ctx(t), map[string]any{"id": "o-1", "total": 12})
	must(t, err)
	in := txEnqueue(t, jobs, q, backend.EnqueueParams{Timeout: 2500 * time.Millisecond, Traceparent: traceA})
	x.commit(t, tx, jobs)

	wantRecord(t, x.repo, coll, "o-1", true)
	j := dequeue(t, x.jq, q, backend.DequeueParams{})
	if j == nil || j.ID != in.ID || testutil.Doc(t, j.Data)["order"] != "o-1" {
		t.Fatalf("dequeue after commit: %+v, want job %s", j, in.ID)
	}
	if j.TimeoutMs != 2500 || j.Traceparent != traceA {
		t.Fatalf("a job enqueued in a transaction kept timeoutMs %d, traceparent %q", j.TimeoutMs, j.Traceparent)
	}
	must(t, x.Acknowledge(ctx(t), j.ID, j.Lease))
	x.clock.Advance(time.Hour)
	if again := dequeue(t, x.jq, q, backend.DequeueParams{}); again != nil {
		t.Fatalf("job delivered again after acknowledge: %+v", again)
	}
	wantStatus(t, x.jq, in.ID, backend.StatusCompleted)
}

func testTxJobRollback(t *testing.T, x *txEnv) {
	q, coll := qname(t), collName(t)
	tx, jobs := x.begin(t)
	_, err := tx.Repository(coll).Create(ctx(t), map[string]any{"id": "o-1"})
	must(t, err)
	in := txEnqueue(t, jobs, q, backend.EnqueueParams{Key: "once"})
	many, err := jobs.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`1`)}, {Data: json.RawMessage(`2`)}})
	must(t, err)
	must(t, tx.Rollback(ctx(t)))

	wantRecord(t, x.repo, coll, "o-1", false)
	for _, id := range []string{in.ID, many[0].ID, many[1].ID} {
		wantNoJob(t, x.jq, id)
	}
	if j := dequeue(t, x.jq, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("a rolled back job was delivered: %+v", j)
	}
	// Its key is free again.
	if again := enqueue(t, x.jq, q, backend.EnqueueParams{Key: "once"}); again == in.ID {
		t.Fatal("the key still names the rolled back job")
	}
}

func testTxInvisible(t *testing.T, x *txEnv) {
	q := qname(t)
	tx, jobs := x.begin(t)
	in := txEnqueue(t, jobs, q, backend.EnqueueParams{})

	wantNoJob(t, x.jq, in.ID)
	st, err := x.Stats(ctx(t), q)
	must(t, err)
	if st.Pending != 0 {
		t.Fatalf("stats count an uncommitted job: %+v", st)
	}
	// A long poll waiting now (on SQLite: for the writer the transaction
	// holds) gets the job once the transaction commits, not before.
	got := make(chan *backend.Job, 1)
	go func() {
		j, err := x.Dequeue(ctx(t), q, backend.DequeueParams{Wait: 20 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- j
	}()
	select {
	case j := <-got:
		t.Fatalf("a poll answered before commit: %+v", j)
	case <-time.After(300 * time.Millisecond):
	}
	committed := time.Now()
	x.commit(t, tx, jobs)
	select {
	case j := <-got:
		if j == nil || j.ID != in.ID {
			t.Fatalf("the poll got %+v, want job %s", j, in.ID)
		}
		// The poll must wake at commit, not at its next periodic look.
		if d := time.Since(committed); d > 5*time.Second {
			t.Fatalf("the poll woke %v after commit", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the poll did not wake at commit")
	}
}

func testTxDedupe(t *testing.T, x *txEnv) {
	q := qname(t)
	held := enqueue(t, x.jq, q, backend.EnqueueParams{Key: "held"})
	tx, jobs := x.begin(t)
	if r := txEnqueue(t, jobs, q, backend.EnqueueParams{Key: "held"}); r.ID != held || !r.Deduplicated {
		t.Fatalf("a key held by a committed job: %+v, want %s deduplicated", r, held)
	}
	first := txEnqueue(t, jobs, q, backend.EnqueueParams{Key: "new"})
	if r := txEnqueue(t, jobs, q, backend.EnqueueParams{Key: "new"}); r.ID != first.ID || !r.Deduplicated {
		t.Fatalf("a key taken earlier in the transaction: %+v, want %s deduplicated", r, first.ID)
	}
	x.commit(t, tx, jobs)
	if again := enqueue(t, x.jq, q, backend.EnqueueParams{Key: "new"}); again != first.ID {
		t.Fatalf("after commit the key names %s, want %s", again, first.ID)
	}
}

// claimed enqueues a job and claims it outside any transaction.
func claimed(t *testing.T, b *jq, q string, p backend.EnqueueParams) *backend.Job {
	t.Helper()
	enqueue(t, b, q, p)
	j := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	if j == nil {
		t.Fatal("nothing to claim")
	}
	return j
}

func testTxAckRollback(t *testing.T, x *txEnv) {
	q := qname(t)
	j := claimed(t, x.jq, q, backend.EnqueueParams{})
	tx, jobs := x.begin(t)
	outcomes, err := jobs.Ack(ctx(t), []backend.LeaseRef{{ID: j.ID, Lease: j.Lease}})
	must(t, err)
	must(t, outcomes[0])
	must(t, tx.Rollback(ctx(t)))

	after := wantStatus(t, x.jq, j.ID, backend.StatusProcessing)
	if after.Attempts != 1 || after.LeaseExpiresAt == nil || !after.LeaseExpiresAt.Equal(*j.LeaseExpiresAt) {
		t.Fatalf("after the rolled back ack: %+v, want the claim as it was (%v)", after, j.LeaseExpiresAt)
	}
	// The claim still holds: an ack outside the transaction works...
	// but first the lease runs out, and the job is claimed again.
	x.clock.Advance(2 * time.Minute)
	again := dequeue(t, x.jq, q, backend.DequeueParams{})
	if again == nil || again.ID != j.ID || again.Attempts != 2 {
		t.Fatalf("after expiry: %+v, want job %s on attempt 2", again, j.ID)
	}
	must(t, x.Acknowledge(ctx(t), again.ID, again.Lease))
}

func testTxAckCommit(t *testing.T, x *txEnv) {
	q, coll := qname(t), collName(t)
	j := claimed(t, x.jq, q, backend.EnqueueParams{})
	tx, jobs := x.begin(t)
	_, err := tx.Repository(coll).Create(ctx(t), map[string]any{"id": "result", "job": j.ID})
	must(t, err)
	outcomes, err := jobs.Ack(ctx(t), []backend.LeaseRef{{ID: j.ID, Lease: j.Lease}, {ID: "no-such-job", Lease: "x"}})
	must(t, err)
	must(t, outcomes[0])
	wantCode(t, outcomes[1], backend.CodeNotFound)
	x.commit(t, tx, jobs)

	wantStatus(t, x.jq, j.ID, backend.StatusCompleted)
	wantRecord(t, x.repo, coll, "result", true)
	x.clock.Advance(time.Hour)
	if again := dequeue(t, x.jq, q, backend.DequeueParams{}); again != nil {
		t.Fatalf("delivered again after a committed ack: %+v", again)
	}
	// A stale lease is refused inside a transaction as outside.
	tx2, jobs2 := x.begin(t)
	outcomes, err = jobs2.Ack(ctx(t), []backend.LeaseRef{{ID: j.ID, Lease: "stale"}})
	must(t, err)
	wantCode(t, outcomes[0], backend.CodeConflict)
	must(t, tx2.Rollback(ctx(t)))
}

// testTxDrop: with a completed-job retention of 0, an ack in a
// transaction deletes the job at commit, and a rollback keeps the claim.
func testTxDrop(t *testing.T, x *txEnv) {
	q, coll := qname(t), collName(t)
	j := claimed(t, x.jq, q, backend.EnqueueParams{})
	tx, jobs := x.begin(t)
	outcomes, err := jobs.Ack(ctx(t), []backend.LeaseRef{{ID: j.ID, Lease: j.Lease}})
	must(t, err)
	must(t, outcomes[0])
	must(t, tx.Rollback(ctx(t)))
	wantStatus(t, x.jq, j.ID, backend.StatusProcessing)

	tx, jobs = x.begin(t)
	_, err = tx.Repository(coll).Create(ctx(t), map[string]any{"id": "result", "job": j.ID})
	must(t, err)
	outcomes, err = jobs.Ack(ctx(t), []backend.LeaseRef{{ID: j.ID, Lease: j.Lease}})
	must(t, err)
	must(t, outcomes[0])
	x.commit(t, tx, jobs)
	if got, _ := x.GetJob(ctx(t), j.ID); got != nil {
		t.Fatalf("completed job kept: %+v", got)
	}
	wantRecord(t, x.repo, coll, "result", true)
}

func testTxFail(t *testing.T, x *txEnv) {
	q := qname(t)
	retried := claimed(t, x.jq, q, backend.EnqueueParams{MaxAttempts: 3})
	tx, jobs := x.begin(t)
	outcomes, err := jobs.Fail(ctx(t), []backend.FailParams{{ID: retried.ID, Lease: retried.Lease, Error: backend.JobError{Message: "smtp down"}, Retry: true}})
	must(t, err)
	must(t, outcomes[0])
	x.commit(t, tx, jobs)
	j := wantStatus(t, x.jq, retried.ID, backend.StatusPending)
	if j.LastError == nil || j.LastError.Message != "smtp down" {
		t.Fatalf("retried job: %+v", j)
	}

	dead := claimed(t, x.jq, qname(t)+"-dead", backend.EnqueueParams{MaxAttempts: 3})
	tx, jobs = x.begin(t)
	outcomes, err = jobs.Fail(ctx(t), []backend.FailParams{{ID: dead.ID, Lease: dead.Lease, Error: backend.JobError{Message: "bad address"}}})
	must(t, err)
	must(t, outcomes[0])
	x.commit(t, tx, jobs)
	wantStatus(t, x.jq, dead.ID, backend.StatusFailed)
}

func testTxJobsEnded(t *testing.T, x *txEnv) {
	q := qname(t)
	tx, jobs := x.begin(t)
	must(t, tx.Rollback(ctx(t)))
	_, err := jobs.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`1`)}})
	wantCode(t, err, backend.CodeTxNotFound)
	_, err = jobs.Ack(ctx(t), []backend.LeaseRef{{ID: "some-job", Lease: "x"}})
	wantCode(t, err, backend.CodeTxNotFound)
	if st, err := x.Stats(ctx(t), q); err != nil || st.Pending != 0 {
		t.Fatalf("stats after a refused enqueue: %+v, %v", st, err)
	}
}

// testTxAckRacesClaim: a claim made while a transaction holds an ack of an
// expired claim (passing over the job, or waiting for the SQLite writer)
// never gets that job once the ack commits.
func testTxAckRacesClaim(t *testing.T, x *txEnv) {
	q := qname(t)
	j := claimed(t, x.jq, q, backend.EnqueueParams{})
	tx, jobs := x.begin(t)
	outcomes, err := jobs.Ack(ctx(t), []backend.LeaseRef{{ID: j.ID, Lease: j.Lease}})
	must(t, err)
	must(t, outcomes[0])
	x.clock.Advance(2 * time.Minute) // the lease has run out
	got := make(chan *backend.Job, 1)
	go func() {
		j, err := x.Dequeue(ctx(t), q, backend.DequeueParams{})
		if err != nil {
			t.Error(err)
		}
		got <- j
	}()
	time.Sleep(300 * time.Millisecond)
	x.commit(t, tx, jobs)
	if j2 := <-got; j2 != nil {
		t.Fatalf("a claim took job %s (attempt %d) while its ack was being committed", j2.ID, j2.Attempts)
	}
	wantStatus(t, x.jq, j.ID, backend.StatusCompleted)
}

// testTxKeyWaits: an enqueue outside the transaction with a key the
// transaction is inserting with waits for it: it is deduplicated to the
// transaction's job if that commits, and inserted if it rolls back.
func testTxKeyWaits(t *testing.T, x *txEnv) {
	for _, commit := range []bool{true, false} {
		q := qname(t)
		tx, jobs := x.begin(t)
		mine := txEnqueue(t, jobs, q, backend.EnqueueParams{Key: "k"})
		got := make(chan backend.Inserted, 1)
		go func() {
			res, err := x.svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`2`), Key: "k"}})
			if err != nil {
				t.Error(err)
				got <- backend.Inserted{}
				return
			}
			got <- res[0]
		}()
		time.Sleep(300 * time.Millisecond)
		if commit {
			x.commit(t, tx, jobs)
		} else {
			must(t, tx.Rollback(ctx(t)))
		}
		r := <-got
		switch {
		case commit && (r.ID != mine.ID || !r.Deduplicated):
			t.Fatalf("after commit the other enqueue got %+v, want %s deduplicated", r, mine.ID)
		case !commit && (r.ID == mine.ID || r.Deduplicated || r.ID == ""):
			t.Fatalf("after rollback the other enqueue got %+v, want a job of its own", r)
		}
	}
}
