package backendtest

// What a job reports (issue 17): the result of its ack, its progress, and
// waiting for it to finish.

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/testutil"
)

var resultTests = []struct {
	name string
	fn   func(t *testing.T, b *jq)
}{
	{"ResultKeptAndShown", testResult},
	{"ResultSizeIsBounded", testResultTooLarge},
	{"ProgressExtendsTheLease", testProgress},
	{"ClaimAnswersTheJobAsStored", testClaimedAsStored},
	{"WaitAnswersEachFinish", testWait},
	{"WaitTimesOut", testWaitTimeout},
}

// jsonEqual reports whether a and b hold the same JSON value (stores may
// respace it or reorder an object's keys).
func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	must(t, json.Unmarshal(a, &x))
	must(t, json.Unmarshal(b, &y))
	return reflect.DeepEqual(x, y)
}

func ack(t *testing.T, b *jq, refs ...backend.LeaseRef) []error {
	t.Helper()
	out, err := b.svc.Ack(ctx(t), refs)
	must(t, err)
	return out
}

func testResult(t *testing.T, b *jq) {
	q := qname(t)
	ids, err := b.Enqueue(ctx(t), q, make([]backend.EnqueueParams, 4))
	must(t, err)
	jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 4})
	must(t, err)
	if len(jobs) != 4 {
		t.Fatalf("claimed %d of 4", len(jobs))
	}
	results := map[string]json.RawMessage{
		jobs[0].ID: json.RawMessage(`{"url": "https://x/1", "n": [1, 2.5, true, null]}`),
		jobs[1].ID: json.RawMessage(`42`),
		jobs[2].ID: nil,                     // no result
		jobs[3].ID: json.RawMessage(`null`), // null is no result
	}
	// One alone, the rest in one batch with a result each.
	for _, o := range ack(t, b, backend.LeaseRef{ID: jobs[0].ID, Lease: jobs[0].Lease, Result: results[jobs[0].ID]}) {
		must(t, o)
	}
	var refs []backend.LeaseRef
	for _, j := range jobs[1:] {
		refs = append(refs, backend.LeaseRef{ID: j.ID, Lease: j.Lease, Result: results[j.ID]})
	}
	for _, o := range ack(t, b, refs...) {
		must(t, o)
	}
	for _, id := range ids {
		j, err := b.GetJob(ctx(t), id)
		must(t, err)
		want := results[id]
		if string(want) == "null" {
			want = nil
		}
		if j.Status != backend.StatusCompleted || !jsonEqual(t, j.Result, want) {
			t.Fatalf("job %s: status %s, result %s; want completed with %s", id, j.Status, j.Result, want)
		}
	}
	// A repeated ack of the claim changes nothing, the result included.
	for _, o := range ack(t, b, backend.LeaseRef{ID: jobs[1].ID, Lease: jobs[1].Lease, Result: json.RawMessage(`7`)}) {
		must(t, o)
	}
	if j, _ := b.GetJob(ctx(t), jobs[1].ID); !jsonEqual(t, j.Result, json.RawMessage(`42`)) {
		t.Fatalf("a repeated ack replaced the result: %s", j.Result)
	}
}

func testResultTooLarge(t *testing.T, b *jq) {
	q := qname(t)
	enqueue(t, b, q, backend.EnqueueParams{})
	j := dequeue(t, b, q, backend.DequeueParams{})
	big := json.RawMessage(`"` + strings.Repeat("x", queue.DefaultMaxResultBytes) + `"`)
	_, err := b.svc.Ack(ctx(t), []backend.LeaseRef{{ID: j.ID, Lease: j.Lease, Result: big}})
	if !backend.IsCode(err, backend.CodePayloadTooLarge) || !strings.Contains(err.Error(), "STORAGED_MAX_RESULT_BYTES") {
		t.Fatalf("ack with a %d-byte result: %v, want payload_too_large naming STORAGED_MAX_RESULT_BYTES", len(big), err)
	}
	got, _ := b.GetJob(ctx(t), j.ID)
	if got.Status != backend.StatusProcessing || got.Result != nil {
		t.Fatalf("a refused ack changed the job: %s, result %s", got.Status, got.Result)
	}
	// At the limit exactly, it is kept whole.
	fits := json.RawMessage(`"` + strings.Repeat("x", queue.DefaultMaxResultBytes-2) + `"`)
	for _, o := range ack(t, b, backend.LeaseRef{ID: j.ID, Lease: j.Lease, Result: fits}) {
		must(t, o)
	}
	if got, _ := b.GetJob(ctx(t), j.ID); !jsonEqual(t, got.Result, fits) {
		t.Fatalf("a %d-byte result came back as %d bytes", len(fits), len(got.Result))
	}
}

func progress(c context.Context, b *jq, j *backend.Job, v string, extend time.Duration) error {
	return first(b.svc.Progress(c, []backend.ProgressParams{{ID: j.ID, Lease: j.Lease, Progress: json.RawMessage(v), Extend: extend}}))
}

func testProgress(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 3})
	j := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	b.clock.Advance(50 * time.Second)
	must(t, progress(ctx(t), b, j, `40`, 0)) // extends by the claim's own lease: a minute from now
	b.clock.Advance(30 * time.Second)        // past the first lease's end
	if other := dequeue(t, b, q, backend.DequeueParams{}); other != nil {
		t.Fatal("progress did not extend the lease: the job was claimed again")
	}
	got, _ := b.GetJob(ctx(t), id)
	if !jsonEqual(t, got.Progress, json.RawMessage(`40`)) {
		t.Fatalf("progress %s, want 40", got.Progress)
	}
	must(t, progress(ctx(t), b, j, `{"step": "upload", "done": 3, "of": 7}`, 2*time.Minute))
	got, _ = b.GetJob(ctx(t), id)
	if !jsonEqual(t, got.Progress, json.RawMessage(`{"done": 3, "of": 7, "step": "upload"}`)) {
		t.Fatalf("progress %s", got.Progress)
	}
	for _, bad := range []string{`101`, `-1`, `"half"`, `[1]`, `true`, `null`} {
		if err := progress(ctx(t), b, j, bad, 0); !backend.IsCode(err, backend.CodeInvalidArgument) {
			t.Fatalf("progress %s: %v, want invalid_argument", bad, err)
		}
	}
	if err := progress(ctx(t), b, &backend.Job{ID: id, Lease: "stale"}, `50`, 0); !backend.IsCode(err, backend.CodeConflict) {
		t.Fatalf("progress with a stale lease: %v, want conflict", err)
	}
	// The next attempt starts with no progress.
	b.clock.Advance(3 * time.Minute)
	again := dequeue(t, b, q, backend.DequeueParams{})
	if again == nil || again.ID != id || again.Progress != nil {
		t.Fatalf("claim after expiry: %+v; want the job with no progress", again)
	}
	got, _ = b.GetJob(ctx(t), id)
	if got.Progress != nil {
		t.Fatalf("a new attempt kept the last one's progress: %s", got.Progress)
	}
}

// waitFor runs Wait in the background.
func waitFor(t *testing.T, b *jq, id string, d time.Duration) <-chan *backend.Job {
	out := make(chan *backend.Job, 1)
	go func() {
		j, err := b.svc.Wait(ctx(t), id, d)
		if err != nil {
			t.Error(err)
		}
		out <- j
	}()
	return out
}

func testWait(t *testing.T, b *jq) {
	q := qname(t)
	finishes := []struct {
		status backend.JobStatus
		finish func(j *backend.Job)
	}{
		{backend.StatusCompleted, func(j *backend.Job) {
			for _, o := range ack(t, b, backend.LeaseRef{ID: j.ID, Lease: j.Lease, Result: json.RawMessage(`{"ok":true}`)}) {
				must(t, o)
			}
		}},
		{backend.StatusFailed, func(j *backend.Job) {
			must(t, b.Fail(ctx(t), backend.FailParams{ID: j.ID, Lease: j.Lease, Error: backend.JobError{Message: "boom"}, Retry: true}))
		}},
		{backend.StatusCancelled, func(j *backend.Job) { must(t, b.Cancel(ctx(t), j.ID)) }},
	}
	for _, f := range finishes {
		id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
		j := dequeue(t, b, q, backend.DequeueParams{})
		waiting := waitFor(t, b, id, 20*time.Second)
		time.Sleep(50 * time.Millisecond) // let it find the job running
		select {
		case got := <-waiting:
			t.Fatalf("wait answered %+v while the job was processing", got)
		default:
		}
		f.finish(j)
		got := <-waiting
		if got == nil || got.ID != id || got.Status != f.status || got.Lease != "" {
			t.Fatalf("wait after %s: %+v", f.status, got)
		}
		if f.status == backend.StatusCompleted && !jsonEqual(t, got.Result, json.RawMessage(`{"ok":true}`)) {
			t.Fatalf("wait answered result %s", got.Result)
		}
		if f.status == backend.StatusFailed && (got.LastError == nil || got.LastError.Message != "boom") {
			t.Fatalf("wait answered lastError %+v", got.LastError)
		}
		// A finished job is answered at once, even with no wait.
		now, err := b.svc.Wait(ctx(t), id, 0)
		must(t, err)
		if now == nil || now.Status != f.status {
			t.Fatalf("wait on a finished job: %+v", now)
		}
	}
	if _, err := b.svc.Wait(ctx(t), "no-such-job", time.Second); !backend.IsCode(err, backend.CodeNotFound) {
		t.Fatalf("wait on a missing job: %v, want not_found", err)
	}
	if _, err := b.svc.Wait(ctx(t), "x", backend.MaxWait+time.Millisecond); !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Fatalf("wait over the limit: %v, want invalid_argument", err)
	}
}

func testWaitTimeout(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{})
	j, err := b.svc.Wait(ctx(t), id, 100*time.Millisecond)
	must(t, err)
	if j != nil {
		t.Fatalf("wait on a pending job answered %+v", j)
	}
}

// RunSharedWait runs two services on two stores that share one database
// (two daemons on one PostgreSQL or Redis). A Wait on one is answered when the
// other finishes the job, woken by the store's notification: the services
// look again by themselves only every minute here.
func RunSharedWait(t *testing.T, open NewJobStore) {
	a := queue.New(queue.Config{Store: open(t), WaitRecheck: time.Minute})
	b := queue.New(queue.Config{Store: open(t), WaitRecheck: time.Minute})
	q := testutil.Name(t, "q")
	res, err := a.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`1`)}})
	must(t, err)
	jobs, err := b.Dequeue(ctx(t), q, backend.DequeueParams{})
	must(t, err)
	if len(jobs) != 1 {
		t.Fatal("no job to claim")
	}
	got := make(chan *backend.Job, 1)
	go func() {
		j, err := a.Wait(ctx(t), res[0].ID, 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- j
	}()
	time.Sleep(200 * time.Millisecond) // let it start waiting
	acked := time.Now()
	outcomes, err := b.Ack(ctx(t), []backend.LeaseRef{{ID: jobs[0].ID, Lease: jobs[0].Lease, Result: json.RawMessage(`"done"`)}})
	must(t, err)
	must(t, outcomes[0])
	j := <-got
	if j == nil || j.Status != backend.StatusCompleted || string(j.Result) != `"done"` {
		t.Fatalf("wait on the other service: %+v", j)
	}
	// Unwoken, it would look again only at the end of its 20 s.
	if d := time.Since(acked); d > 10*time.Second {
		t.Fatalf("the wait answered %v after the ack: not woken by the store's notification", d)
	}
	t.Logf("answered %v after the ack on the other service", time.Since(acked).Round(time.Microsecond))
}

// testClaimedAsStored: the job a claim answers is the job as stored once
// claimed, but for the lease token, which getJob keeps to itself: on the
// first attempt, and on a retry whose last attempt left progress (which
// the new attempt clears) and an error (which it keeps).
func testClaimedAsStored(t *testing.T, b *jq) {
	q := qname(t)
	p := backend.EnqueueParams{Data: json.RawMessage(`{"s":"a \"quoted\" é","n":[1,2.5]}`), Priority: b.prio(3), MaxAttempts: 4,
		Backoff: fixed0(), Timeout: 7 * time.Second, Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	if b.caps.Dedupe {
		p.Key = "claimed-as-stored"
	}
	id := enqueue(t, b, q, p)
	same := func(attempt int, claimed *backend.Job) {
		t.Helper()
		if claimed == nil || claimed.ID != id || claimed.Attempts != attempt || claimed.Lease == "" {
			t.Fatalf("attempt %d: claimed %+v", attempt, claimed)
		}
		got := getJob(t, b, id)
		c, g := *claimed, *got
		if !jsonEqual(t, c.Data, g.Data) || !jsonEqual(t, c.Progress, g.Progress) || !jsonEqual(t, c.Result, g.Result) {
			t.Fatalf("attempt %d: claimed data %s progress %s result %s, stored %s %s %s", attempt, c.Data, c.Progress, c.Result, g.Data, g.Progress, g.Result)
		}
		for _, j := range []*backend.Job{&c, &g} {
			j.Data, j.Progress, j.Result, j.Lease = nil, nil, nil, ""
			j.RunAt, j.CreatedAt, j.UpdatedAt = j.RunAt.UTC(), j.CreatedAt.UTC(), j.UpdatedAt.UTC()
			for _, at := range []**time.Time{&j.StartedAt, &j.FinishedAt, &j.LeaseExpiresAt} {
				if *at != nil {
					u := (*at).UTC()
					*at = &u
				}
			}
		}
		cj, err := json.Marshal(c)
		must(t, err)
		gj, err := json.Marshal(g)
		must(t, err)
		if string(cj) != string(gj) {
			t.Fatalf("attempt %d: the claim answered\n%s\nbut stored\n%s", attempt, cj, gj)
		}
	}
	j := dequeue(t, b, q, backend.DequeueParams{Lease: 90 * time.Second})
	same(1, j)
	b.clock.Advance(time.Second)
	must(t, progress(ctx(t), b, j, `{"done":3}`, 0))
	must(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: j.Lease, Retry: true, Error: backend.JobError{Name: "Error", Message: "once"}}))
	b.clock.Advance(time.Second)
	j = dequeue(t, b, q, backend.DequeueParams{Lease: 45 * time.Second})
	same(2, j)
	if j.Progress != nil || j.LastError == nil || j.LastError.Message != "once" {
		t.Fatalf("retry claimed with progress %s, lastError %+v", j.Progress, j.LastError)
	}
}
