package sqs_test

import (
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// TestSettleThroughAnotherDaemon: every settle of a claim made through
// daemon a works through daemon b, which knows nothing of a's claims: the
// lease token carries what fail and release need (the job), so b can
// retry, dead-letter and release it as a would, with the same attempts.
// A job too large for the token (over 8 KiB) still acks and heartbeats
// anywhere, and its fail and release answer not_found elsewhere.
func TestSettleThroughAnotherDaemon(t *testing.T) {
	a, b, _, q := twoDaemons(t)
	fixed := backend.Backoff{Type: backend.BackoffFixed}
	var jobs []backend.EnqueueParams
	for i := 0; i < 5; i++ {
		jobs = append(jobs, backend.EnqueueParams{Data: json.RawMessage(`"j` + string(rune('0'+i)) + `"`), MaxAttempts: 3, Backoff: fixed})
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 10<<10) + `"`)
	jobs = append(jobs, backend.EnqueueParams{Data: big, MaxAttempts: 3, Backoff: fixed})
	res, err := a.Enqueue(ctx(t), q, jobs)
	if err != nil {
		t.Fatal(err)
	}
	claimed := map[string]*backend.Job{}
	for len(claimed) < len(res) {
		got, err := a.Dequeue(ctx(t), q, backend.DequeueParams{Max: 10, Wait: 5 * time.Second, Lease: time.Minute})
		if err != nil || len(got) == 0 {
			t.Fatalf("claiming on a: %v %v (have %d)", got, err, len(claimed))
		}
		for _, j := range got {
			claimed[j.ID] = j
		}
	}
	j := func(i int) *backend.Job { return claimed[res[i].ID] }
	ref := func(i int) backend.LeaseRef { return backend.LeaseRef{ID: j(i).ID, Lease: j(i).Lease} }
	ok := func(what string, out []error, err error) {
		t.Helper()
		if err != nil || len(out) != 1 || out[0] != nil {
			t.Fatalf("%s through b: %v %v", what, out, err)
		}
	}
	out, err := b.Heartbeat(ctx(t), []backend.HeartbeatParams{{ID: j(0).ID, Lease: j(0).Lease, Extend: 2 * time.Minute}})
	ok("heartbeat", out, err)
	out, err = b.Fail(ctx(t), []backend.FailParams{{ID: j(0).ID, Lease: j(0).Lease, Retry: true, Error: backend.JobError{Message: "try again"}}})
	ok("fail with retry", out, err)
	out, err = b.Release(ctx(t), []backend.LeaseRef{ref(1)})
	ok("release", out, err)
	out, err = b.Fail(ctx(t), []backend.FailParams{{ID: j(2).ID, Lease: j(2).Lease, Error: backend.JobError{Message: "for good"}}})
	ok("fail for good", out, err)
	out, err = b.Ack(ctx(t), []backend.LeaseRef{ref(3)})
	ok("ack", out, err)
	out, err = b.Ack(ctx(t), []backend.LeaseRef{ref(3)})
	ok("repeated ack", out, err)
	// b now knows these claims: a second release of one already released
	// is a conflict, not a second copy of the job.
	if out, err := b.Release(ctx(t), []backend.LeaseRef{ref(1)}); err != nil || !backend.IsCode(out[0], backend.CodeConflict) {
		t.Fatalf("second release through b: %v %v, want conflict", out, err)
	}
	// The large job: its token carries no job.
	out, err = b.Heartbeat(ctx(t), []backend.HeartbeatParams{{ID: j(5).ID, Lease: j(5).Lease}})
	ok("heartbeat of the large job", out, err)
	if out, err := b.Release(ctx(t), []backend.LeaseRef{ref(5)}); err != nil || !backend.IsCode(out[0], backend.CodeNotFound) {
		t.Fatalf("release of the large job through b: %v %v, want not_found", out, err)
	}
	out, err = a.Release(ctx(t), []backend.LeaseRef{ref(5)})
	ok("release of the large job through a", out, err)

	// Back on a: the retried job at its second attempt, the released
	// ones with the attempt not counted; j4, never settled, stays hidden.
	want := map[string]int{j(0).ID: 2, j(1).ID: 1, j(5).ID: 1}
	for len(want) > 0 {
		got, err := a.Dequeue(ctx(t), q, backend.DequeueParams{Max: 10, Wait: 5 * time.Second})
		if err != nil || len(got) == 0 {
			t.Fatalf("after the settles through b, a got %v %v; still expected %v", got, err, want)
		}
		for _, g := range got {
			att, expected := want[g.ID]
			if !expected || g.Attempts != att {
				t.Fatalf("a got job %s at attempt %d; expected %v", g.ID, g.Attempts, want)
			}
			delete(want, g.ID)
			if g.ID == j(5).ID && string(g.Data) != string(big) {
				t.Fatal("the released large job lost its data")
			}
		}
	}
	dead, err := b.ListFailed(ctx(t), q, backend.ListParams{Limit: 10})
	if err != nil || len(dead) != 1 || dead[0].ID != j(2).ID || dead[0].LastError == nil || dead[0].LastError.Message != "for good" ||
		dead[0].Attempts != 1 || string(dead[0].Data) != `"j2"` {
		t.Fatalf("dead letters after a fail through b: %+v %v", dead, err)
	}
}
