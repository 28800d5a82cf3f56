package backendtest

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/testutil"
)

// RunJobQueue runs the jobs conformance suite: the queue service over the
// store newStore opens, with a clock the suite moves itself, so that no
// case sleeps for a lease or a delay to run out.
func RunJobQueue(t *testing.T, newStore NewJobStore) {
	// What each case needs beyond what every store offers: a store that
	// lacks it (backend.JobCapabilities) skips the case, saying why.
	var (
		none     backend.JobCapabilities
		get      = backend.JobCapabilities{GetByID: true}
		clock    = backend.JobCapabilities{ClockControl: true, GetByID: true}
		prio     = backend.JobCapabilities{Priorities: true}
		prioGet  = backend.JobCapabilities{Priorities: true, GetByID: true}
		getStats = backend.JobCapabilities{GetByID: true, ExactStats: true}
	)
	tests := []struct {
		name  string
		needs backend.JobCapabilities
		fn    func(t *testing.T, b *jq)
	}{
		{"EnqueueDequeueAcknowledge", get, testJobLifecycle},
		{"ClaimAckWithoutLookups", none, testClaimAckNoLookups},
		{"DequeueEmptyReturnsNil", none, testDequeueEmpty},
		{"ClaimOrder", prio, testClaimOrder},
		{"BatchClaimOrder", prio, testBatchClaimOrder},
		{"RunAtAndDelay", clock, testRunAt},
		{"RunAtYearOneAndRange", get, testRunAtYearOne},
		{"FailRetriesThenDeadLetters", get, testFailRetries},
		{"RetryDeadLetterReviveAndPurgeWithoutLookups", none, testDeadLettersNoLookups},
		{"FailWithoutRetry", get, testFailNoRetry},
		{"ExponentialBackoff", prioGet, testExponentialBackoff},
		{"DedupeKey", backend.JobCapabilities{Dedupe: true, ExactStats: true}, testDedupeKey},
		{"ExpiredLeaseIsClaimableAtOnce", clock, testExpiredLease},
		{"ExpiredLeaseWithAttemptsSpentFails", clock, testExpiredLeaseSpent},
		{"LeaseExpiryAndHeartbeatInRealTime", none, testLeaseRealTime},
		{"AckAfterExpiryBeforeReclaim", backend.JobCapabilities{ClockControl: true, Priorities: true, ExactStats: true}, testAckAfterExpiry},
		{"StaleLeaseIsFenced", backend.JobCapabilities{ClockControl: true, GetByID: true, Fencing: true}, testFencing},
		{"Heartbeat", clock, testHeartbeat},
		{"ReleaseHandsBackUncounted", get, testRelease},
		{"ReleaseWithoutLookups", none, testReleaseNoLookups},
		{"PerItemOutcomes", getStats, testPerItemOutcomes},
		{"RepeatedIDsInOneBatch", get, testRepeatedIDs},
		{"AbandonedClaimIsReleased", get, testAbandonedClaim},
		{"Cancel", backend.JobCapabilities{Cancel: true, GetByID: true}, testCancel},
		{"LongPollWokenByEnqueue", none, testLongPoll},
		{"LongPollTimesOut", none, testLongPollTimeout},
		{"LongPollSeesDelayedJob", none, testLongPollDelayed},
		{"LongPollManyReturnsWhatIsReady", none, testLongPollMany},
		{"EnqueueMany", getStats, testEnqueueMany},
		{"EnqueueManyEachJobKeepsItsOptions", clock, testEnqueueManyOptions},
		{"StatsAndListFailed", backend.JobCapabilities{GetByID: true, ExactStats: true, Cancel: true}, testStats},
		{"RetryFailed", get, testRetryFailed},
		{"PurgeFailed", get, testPurgeFailed},
		{"Prune", get, testPrune},
		{"QueuesAreSeparate", none, testQueuesSeparate},
		{"DataRoundTrip", none, testJobData},
		{"InvalidParams", none, testJobInvalid},
		{"ConcurrentWorkersEachJobOnce", none, testConcurrentWorkers},
		{"ConcurrentBatchWorkersEachJobOnce", none, testConcurrentBatchWorkers},
		{"DropCompleted", getStats, testDropCompleted},
	}
	// The cases of later issues, each group with what it needs: results,
	// progress and waiting are read back through getJob and wait; flow
	// control, uniqueness and schedules need the store to keep them.
	for _, group := range []struct {
		cases []struct {
			name string
			fn   func(t *testing.T, b *jq)
		}
		needs backend.JobCapabilities
	}{
		{resultTests, get},
		{flowTests, backend.JobCapabilities{FlowControl: true, GetByID: true}},
		{uniqueTests, backend.JobCapabilities{Dedupe: true, GetByID: true}},
		{scheduleTests, backend.JobCapabilities{Schedules: true, GetByID: true}},
		{extrasTests, none},
		{eventTests, backend.JobCapabilities{Events: true}},
		{browseTests, backend.JobCapabilities{Browse: true, GetByID: true, ClockControl: true}},
	} {
		for _, c := range group.cases {
			tests = append(tests, struct {
				name  string
				needs backend.JobCapabilities
				fn    func(t *testing.T, b *jq)
			}{c.name, group.needs, c.fn})
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := newStore(t)
			caps := backend.CapabilitiesOf(store)
			if missing := caps.Missing(tc.needs); len(missing) > 0 {
				t.Skipf("skipped by capability: the %s job store lacks %v", caps.Name, missing)
			}
			var opts []func(*queue.Config)
			if strings.HasPrefix(tc.name, "Drop") {
				// Cases of a service that deletes completed jobs at ack.
				opts = append(opts, func(c *queue.Config) { c.DropCompleted = true })
			}
			b := newJQ(t, store, opts...)
			b.caps = caps
			tc.fn(t, b)
		})
	}
}

func qname(t *testing.T) string { return testutil.Name(t, "q") }

func enqueue(t *testing.T, b *jq, q string, p backend.EnqueueParams) string {
	t.Helper()
	if p.Data == nil {
		p.Data = json.RawMessage(`{"n":1}`)
	}
	ids, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{p})
	must(t, err)
	return ids[0]
}

func dequeue(t *testing.T, b *jq, q string, p backend.DequeueParams) *backend.Job {
	t.Helper()
	j, err := b.Dequeue(ctx(t), q, p)
	must(t, err)
	return j
}

func getJob(t *testing.T, b *jq, id string) *backend.Job {
	t.Helper()
	j, err := b.GetJob(ctx(t), id)
	must(t, err)
	if j == nil {
		t.Fatalf("job %s not found", id)
	}
	return j
}

func wantStatus(t *testing.T, b *jq, id string, s backend.JobStatus) *backend.Job {
	t.Helper()
	j := getJob(t, b, id)
	if j.Status != s {
		t.Fatalf("job %s is %s, want %s", id, j.Status, s)
	}
	return j
}

func testJobLifecycle(t *testing.T, b *jq) {
	q := qname(t)
	before := b.now()
	id := enqueue(t, b, q, backend.EnqueueParams{Data: json.RawMessage(`{"planId":"plan-123"}`)})
	j := wantStatus(t, b, id, backend.StatusPending)
	if j.Queue != q || j.Attempts != 0 || j.MaxAttempts != backend.DefaultMaxAttempts || j.Priority != 0 || j.Lease != "" {
		t.Fatalf("new job: %+v", j)
	}
	if j.Backoff != backend.DefaultBackoff {
		t.Fatalf("default backoff %+v", j.Backoff)
	}
	if j.CreatedAt.Before(before) || j.RunAt.Before(before) {
		t.Fatalf("times before enqueue: %+v", j)
	}
	got := dequeue(t, b, q, backend.DequeueParams{})
	if got == nil || got.ID != id {
		t.Fatalf("dequeue got %+v, want %s", got, id)
	}
	if got.Status != backend.StatusProcessing || got.Attempts != 1 || got.Lease == "" || got.LeaseExpiresAt == nil || got.StartedAt == nil {
		t.Fatalf("claimed job: %+v", got)
	}
	if d := got.LeaseExpiresAt.Sub(*got.StartedAt); d != backend.DefaultLease {
		t.Fatalf("default lease %v", d)
	}
	var data map[string]any
	must(t, json.Unmarshal(got.Data, &data))
	if data["planId"] != "plan-123" {
		t.Fatalf("data %s", got.Data)
	}
	if j := wantStatus(t, b, id, backend.StatusProcessing); j.Lease != "" {
		t.Fatal("getJob must not reveal the lease token")
	}
	if again := dequeue(t, b, q, backend.DequeueParams{}); again != nil {
		t.Fatalf("a claimed job was delivered twice: %+v", again)
	}
	must(t, b.Acknowledge(ctx(t), id, got.Lease))
	done := wantStatus(t, b, id, backend.StatusCompleted)
	if done.FinishedAt == nil || done.LeaseExpiresAt != nil {
		t.Fatalf("completed job: %+v", done)
	}
	// A repeated ack of the same claim is harmless; the job never runs again.
	must(t, b.Acknowledge(ctx(t), id, got.Lease))
	if again := dequeue(t, b, q, backend.DequeueParams{}); again != nil {
		t.Fatalf("an acknowledged job was delivered again: %+v", again)
	}
	wantCode(t, b.Acknowledge(ctx(t), id, "another-lease"), backend.CodeConflict)
	wantCode(t, b.Acknowledge(ctx(t), "no-such-job", "x"), backend.CodeNotFound)
	if j, err := b.GetJob(ctx(t), "no-such-job"); err != nil || j != nil {
		t.Fatalf("getJob of a missing job: %v %v", j, err)
	}
}

func testDequeueEmpty(t *testing.T, b *jq) {
	if j := dequeue(t, b, qname(t), backend.DequeueParams{}); j != nil {
		t.Fatalf("empty queue gave %+v", j)
	}
}

func testClaimOrder(t *testing.T, b *jq) {
	q := qname(t)
	past := backend.Now().Add(-time.Hour)
	var want []string
	a := enqueue(t, b, q, backend.EnqueueParams{Priority: 0})
	c := enqueue(t, b, q, backend.EnqueueParams{Priority: 5})
	d := enqueue(t, b, q, backend.EnqueueParams{Priority: 0, RunAt: past})
	e := enqueue(t, b, q, backend.EnqueueParams{Priority: -3})
	f := enqueue(t, b, q, backend.EnqueueParams{Priority: 5})
	g := enqueue(t, b, q, backend.EnqueueParams{Priority: 0, RunAt: past})
	// Times before 1970 order like any others.
	h := enqueue(t, b, q, backend.EnqueueParams{Priority: 0, RunAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)})
	i := enqueue(t, b, q, backend.EnqueueParams{Priority: 0, RunAt: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)})
	// priority desc, then runAt asc, then id asc
	want = []string{c, f, i, h, d, g, a, e}
	var got []string
	for range want {
		j := dequeue(t, b, q, backend.DequeueParams{})
		if j == nil {
			t.Fatalf("queue ran dry after %v", got)
		}
		got = append(got, j.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("claim order\nwant %v\ngot  %v", want, got)
	}
}

func testRunAt(t *testing.T, b *jq) {
	q := qname(t)
	far := enqueue(t, b, q, backend.EnqueueParams{RunAt: b.now().Add(time.Hour)})
	soon := enqueue(t, b, q, backend.EnqueueParams{Delay: time.Minute})
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("a job ran before its time: %+v", j)
	}
	b.clock.Advance(2 * time.Minute)
	j := dequeue(t, b, q, backend.DequeueParams{})
	if j == nil || j.ID != soon {
		t.Fatalf("delayed job not ready after its delay: %+v", j)
	}
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("job %s ran an hour early", far)
	}
	if got := getJob(t, b, far); got.RunAt.Sub(got.CreatedAt) < 59*time.Minute {
		t.Fatalf("runAt not kept: %+v", got)
	}
}

func fixed0() backend.Backoff {
	return backend.Backoff{Type: backend.BackoffFixed, DelayMs: 0, MaxDelayMs: 0}
}

func testFailRetries(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 3, Backoff: fixed0()})
	for attempt := 1; attempt <= 3; attempt++ {
		j := dequeue(t, b, q, backend.DequeueParams{})
		if j == nil || j.ID != id || j.Attempts != attempt {
			t.Fatalf("attempt %d: %+v", attempt, j)
		}
		must(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: j.Lease, Retry: true,
			Error: backend.JobError{Name: "TypeError", Message: "boom", Stack: "at line 1"}}))
		j = getJob(t, b, id)
		if j.LastError == nil || *j.LastError != (backend.JobError{Name: "TypeError", Message: "boom", Stack: "at line 1"}) {
			t.Fatalf("lastError %+v", j.LastError)
		}
		if attempt < 3 && j.Status != backend.StatusPending {
			t.Fatalf("after attempt %d: %s, want pending", attempt, j.Status)
		}
	}
	j := wantStatus(t, b, id, backend.StatusFailed)
	if j.FinishedAt == nil || j.Attempts != 3 {
		t.Fatalf("dead letter %+v", j)
	}
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("a failed job was delivered: %+v", j)
	}
}

func testFailNoRetry(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 5})
	j := dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: j.Lease, Retry: false, Error: backend.JobError{Name: "Error", Message: "fatal"}}))
	if got := wantStatus(t, b, id, backend.StatusFailed); got.Attempts != 1 || got.LastError.Message != "fatal" {
		t.Fatalf("%+v", got)
	}
	wantCode(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: j.Lease}), backend.CodeConflict)
	wantCode(t, b.Fail(ctx(t), backend.FailParams{ID: "nope", Lease: "x"}), backend.CodeNotFound)
}

func testExponentialBackoff(t *testing.T, b *jq) {
	q := qname(t)
	bo := backend.Backoff{Type: backend.BackoffExponential, DelayMs: 10_000, MaxDelayMs: 25_000}
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 10, Backoff: bo})
	// Attempt n waits base*2^(n-1), capped, jittered down by at most 25%.
	j := dequeue(t, b, q, backend.DequeueParams{})
	before := b.now()
	must(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: j.Lease, Retry: true}))
	after := b.now()
	got := wantStatus(t, b, id, backend.StatusPending)
	lo, hi := before.Add(7500*time.Millisecond), after.Add(10*time.Second)
	if got.RunAt.Before(lo) || got.RunAt.After(hi) {
		t.Fatalf("first retry at %v, want within [%v, %v]", got.RunAt, lo, hi)
	}
	if bo.Delay(2) > 20*time.Second || bo.Delay(2) < 15*time.Second || bo.Delay(5) > 25*time.Second || bo.Delay(5) < 18750*time.Millisecond {
		t.Fatalf("delays %v %v", bo.Delay(2), bo.Delay(5))
	}
	// Fixed backoff is exact.
	id2 := enqueue(t, b, q, backend.EnqueueParams{Backoff: backend.Backoff{Type: backend.BackoffFixed, DelayMs: 5000, MaxDelayMs: 5000}, Priority: 1})
	j2 := dequeue(t, b, q, backend.DequeueParams{})
	if j2 == nil || j2.ID != id2 {
		t.Fatalf("got %+v", j2)
	}
	before = b.now()
	must(t, b.Fail(ctx(t), backend.FailParams{ID: id2, Lease: j2.Lease, Retry: true}))
	after = b.now()
	got = getJob(t, b, id2)
	if got.RunAt.Before(before.Add(5*time.Second)) || got.RunAt.After(after.Add(5*time.Second)) {
		t.Fatalf("fixed retry at %v, want now+5s", got.RunAt)
	}
}

func testDedupeKey(t *testing.T, b *jq) {
	q := qname(t)
	a := enqueue(t, b, q, backend.EnqueueParams{Key: "daily-report"})
	if again := enqueue(t, b, q, backend.EnqueueParams{Key: "daily-report", Priority: 9}); again != a {
		t.Fatalf("same key while pending gave a new job %s", again)
	}
	other := enqueue(t, b, qname(t), backend.EnqueueParams{Key: "daily-report"})
	if other == a {
		t.Fatal("keys are per queue")
	}
	j := dequeue(t, b, q, backend.DequeueParams{})
	if again := enqueue(t, b, q, backend.EnqueueParams{Key: "daily-report"}); again != a {
		t.Fatal("same key while processing gave a new job")
	}
	must(t, b.Acknowledge(ctx(t), j.ID, j.Lease))
	fresh := enqueue(t, b, q, backend.EnqueueParams{Key: "daily-report"})
	if fresh == a {
		t.Fatal("a completed job's key still deduplicates")
	}
	ids, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{{Key: "k2"}, {Key: "k2"}, {}, {Key: "daily-report"}})
	must(t, err)
	if ids[0] != ids[1] || ids[2] == ids[0] || ids[3] != fresh {
		t.Fatalf("batch dedupe: %v (fresh %s)", ids, fresh)
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Pending != 3 {
		t.Fatalf("pending %d, want 3", st.Pending)
	}
}

func testExpiredLease(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{})
	first := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	b.clock.Advance(2 * time.Minute)
	second := dequeue(t, b, q, backend.DequeueParams{})
	if second == nil || second.ID != id || second.Attempts != 2 || second.Lease == first.Lease {
		t.Fatalf("expired claim not re-delivered by the next dequeue: %+v", second)
	}
	wantCode(t, b.Acknowledge(ctx(t), id, first.Lease), backend.CodeConflict)
	must(t, b.Acknowledge(ctx(t), id, second.Lease))
	wantStatus(t, b, id, backend.StatusCompleted)
}

func testExpiredLeaseSpent(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
	dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	b.clock.Advance(2 * time.Minute)
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("a job with no attempts left was delivered: %+v", j)
	}
	j := wantStatus(t, b, id, backend.StatusFailed)
	if j.LastError == nil {
		t.Fatal("a job failed by lease expiry has no lastError")
	}
}

// testAckAfterExpiry: a claim whose lease ran out may still finish the job
// until another worker claims it (docs/decisions.md), even when a dequeue
// has already noticed the expiry and claimed something else.
func testAckAfterExpiry(t *testing.T, b *jq) {
	q := qname(t)
	for _, finish := range []string{"ack", "heartbeat"} {
		slow := enqueue(t, b, q, backend.EnqueueParams{})
		j := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
		urgent := enqueue(t, b, q, backend.EnqueueParams{Priority: 10})
		b.clock.Advance(2 * time.Minute)
		other := dequeue(t, b, q, backend.DequeueParams{Lease: time.Hour})
		if other == nil || other.ID != urgent {
			t.Fatalf("%s: want the urgent job first, got %+v", finish, other)
		}
		if finish == "ack" {
			must(t, b.Acknowledge(ctx(t), slow, j.Lease))
			wantStatus(t, b, slow, backend.StatusCompleted)
		} else {
			must(t, b.Heartbeat(ctx(t), backend.HeartbeatParams{ID: slow, Lease: j.Lease, Extend: time.Minute}))
			wantStatus(t, b, slow, backend.StatusProcessing)
		}
		if again := dequeue(t, b, q, backend.DequeueParams{}); again != nil {
			t.Fatalf("%s: a job finished by its holder was delivered again: %+v", finish, again)
		}
		must(t, b.Acknowledge(ctx(t), urgent, other.Lease))
		if finish == "heartbeat" {
			must(t, b.Acknowledge(ctx(t), slow, j.Lease))
		}
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Completed != 4 || st.Pending != 0 || st.Processing != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func testFencing(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{Backoff: fixed0()})
	slow := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	b.clock.Advance(2 * time.Minute)
	fast := dequeue(t, b, q, backend.DequeueParams{Lease: time.Hour})
	if fast == nil || fast.ID != id {
		t.Fatalf("re-claim failed: %+v", fast)
	}
	wantCode(t, b.Acknowledge(ctx(t), id, slow.Lease), backend.CodeConflict)
	wantCode(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: slow.Lease, Retry: true}), backend.CodeConflict)
	wantCode(t, b.Heartbeat(ctx(t), backend.HeartbeatParams{ID: id, Lease: slow.Lease}), backend.CodeConflict)
	wantCode(t, b.Acknowledge(ctx(t), id, ""), backend.CodeInvalidArgument)
	j := wantStatus(t, b, id, backend.StatusProcessing)
	if j.Attempts != 2 {
		t.Fatalf("a fenced call changed the job: %+v", j)
	}
	must(t, b.Acknowledge(ctx(t), id, fast.Lease))
	// An ack of a job that is pending (not claimed) is a conflict too.
	p := enqueue(t, b, q, backend.EnqueueParams{})
	wantCode(t, b.Acknowledge(ctx(t), p, fast.Lease), backend.CodeConflict)
	wantStatus(t, b, p, backend.StatusPending)
}

// testRelease: a released claim is pending again at once, in its old
// place in the claim order, with its attempt not counted; it wakes a
// waiting poll; a stale, finished or unknown claim is refused.
func testRelease(t *testing.T, b *jq) {
	q := qname(t)
	first := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
	second := enqueue(t, b, q, backend.EnqueueParams{})
	j := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	if j == nil || j.ID != first {
		t.Fatalf("claimed %+v, want %s", j, first)
	}
	must(t, b.Release(ctx(t), first, j.Lease))
	got := wantStatus(t, b, first, backend.StatusPending)
	if got.Attempts != 0 {
		t.Fatalf("released job has %d attempts, want 0", got.Attempts)
	}
	wantCode(t, b.Release(ctx(t), first, j.Lease), backend.CodeConflict)
	again := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	if again == nil || again.ID != first || again.Attempts != 1 {
		t.Fatalf("after release the next claim got %+v, want %s on attempt 1", again, first)
	}
	wantCode(t, b.Release(ctx(t), first, j.Lease), backend.CodeConflict)
	must(t, b.Acknowledge(ctx(t), first, again.Lease))
	wantCode(t, b.Release(ctx(t), first, again.Lease), backend.CodeConflict)
	wantCode(t, b.Release(ctx(t), second, again.Lease), backend.CodeConflict)
	wantCode(t, b.Release(ctx(t), "no-such-job", "x"), backend.CodeNotFound)

	// A poll waiting on an empty queue gets the released job.
	held := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	if held == nil || held.ID != second {
		t.Fatalf("claimed %+v, want %s", held, second)
	}
	got2 := make(chan *backend.Job, 1)
	go func() {
		j, err := b.Dequeue(ctx(t), q, backend.DequeueParams{Wait: 30 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got2 <- j
	}()
	time.Sleep(20 * time.Millisecond) // usually waiting by now; if not, it finds the job at once
	must(t, b.Release(ctx(t), second, held.Lease))
	if w := <-got2; w == nil || w.ID != second || w.Attempts != 1 {
		t.Fatalf("the waiting poll got %+v, want %s on attempt 1", w, second)
	}
}

func testHeartbeat(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{})
	j := dequeue(t, b, q, backend.DequeueParams{Lease: time.Minute})
	must(t, b.Heartbeat(ctx(t), backend.HeartbeatParams{ID: id, Lease: j.Lease, Extend: 10 * time.Minute}))
	got := getJob(t, b, id)
	if got.LeaseExpiresAt.Sub(b.now()) < 9*time.Minute {
		t.Fatalf("heartbeat did not extend the lease: %v", got.LeaseExpiresAt)
	}
	b.clock.Advance(5 * time.Minute)
	if other := dequeue(t, b, q, backend.DequeueParams{}); other != nil {
		t.Fatalf("a job with an extended lease was re-delivered: %+v", other)
	}
	// Without Extend the claim's own lease length is used again.
	before := b.now()
	must(t, b.Heartbeat(ctx(t), backend.HeartbeatParams{ID: id, Lease: j.Lease}))
	got = getJob(t, b, id)
	if d := got.LeaseExpiresAt.Sub(before); d < time.Minute || d > time.Minute+10*time.Second {
		t.Fatalf("heartbeat without leaseMs: lease ends %v after it, want the claim's minute", d)
	}
	b.clock.Advance(2 * time.Minute)
	other := dequeue(t, b, q, backend.DequeueParams{Lease: time.Hour})
	if other == nil || other.ID != id || other.Attempts != 2 {
		t.Fatalf("the claim's lease ran out but the job was not claimable: %+v", other)
	}
	j.Lease = other.Lease
	must(t, b.Acknowledge(ctx(t), id, j.Lease))
	wantCode(t, b.Heartbeat(ctx(t), backend.HeartbeatParams{ID: id, Lease: j.Lease}), backend.CodeConflict)
	wantCode(t, b.Heartbeat(ctx(t), backend.HeartbeatParams{ID: "nope", Lease: j.Lease}), backend.CodeNotFound)
}

func testCancel(t *testing.T, b *jq) {
	q := qname(t)
	pending := enqueue(t, b, q, backend.EnqueueParams{Key: "k"})
	must(t, b.Cancel(ctx(t), pending))
	must(t, b.Cancel(ctx(t), pending)) // idempotent
	wantStatus(t, b, pending, backend.StatusCancelled)
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("a cancelled job was delivered: %+v", j)
	}
	if again := enqueue(t, b, q, backend.EnqueueParams{Key: "k"}); again == pending {
		t.Fatal("a cancelled job's key still deduplicates")
	}
	running := enqueue(t, b, qname(t), backend.EnqueueParams{})
	j := dequeue(t, b, getJob(t, b, running).Queue, backend.DequeueParams{})
	must(t, b.Cancel(ctx(t), running))
	wantCode(t, b.Acknowledge(ctx(t), running, j.Lease), backend.CodeConflict)
	wantStatus(t, b, running, backend.StatusCancelled)

	q2 := qname(t)
	done := enqueue(t, b, q2, backend.EnqueueParams{})
	jd := dequeue(t, b, q2, backend.DequeueParams{})
	must(t, b.Acknowledge(ctx(t), done, jd.Lease))
	wantCode(t, b.Cancel(ctx(t), done), backend.CodeConflict)
	wantStatus(t, b, done, backend.StatusCompleted)
	wantCode(t, b.Cancel(ctx(t), "nope"), backend.CodeNotFound)
}

func testLongPoll(t *testing.T, b *jq) {
	q := qname(t)
	type result struct {
		j   *backend.Job
		err error
		at  time.Time
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		j, err := b.Dequeue(ctx(t), q, backend.DequeueParams{Wait: 20 * time.Second})
		res <- result{j, err, time.Now()}
	}()
	time.Sleep(100 * time.Millisecond)
	id := enqueue(t, b, q, backend.EnqueueParams{})
	r := <-res
	must(t, r.err)
	if r.j == nil || r.j.ID != id {
		t.Fatalf("long poll got %+v, want %s", r.j, id)
	}
	// Woken by the enqueue, not by the end of its wait.
	if r.at.Sub(start) > 10*time.Second {
		t.Fatalf("long poll returned after %v: not woken by the enqueue", r.at.Sub(start))
	}
}

func testLongPollTimeout(t *testing.T, b *jq) {
	start := time.Now()
	j := dequeue(t, b, qname(t), backend.DequeueParams{Wait: 150 * time.Millisecond})
	if j != nil {
		t.Fatalf("empty queue gave %+v", j)
	}
	if time.Since(start) < 140*time.Millisecond {
		t.Fatalf("long poll returned after %v, before its wait of 150ms", time.Since(start))
	}
}

func testLongPollDelayed(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{Delay: 200 * time.Millisecond})
	j := dequeue(t, b, q, backend.DequeueParams{Wait: 10 * time.Second})
	if j == nil || j.ID != id {
		t.Fatalf("long poll missed a job that became ready while waiting: %+v", j)
	}
}

func testEnqueueMany(t *testing.T, b *jq) {
	q := qname(t)
	var ps []backend.EnqueueParams
	for i := 0; i < 50; i++ {
		ps = append(ps, backend.EnqueueParams{Data: testutil.MustJSON(t, map[string]int{"i": i})})
	}
	ids, err := b.Enqueue(ctx(t), q, ps)
	must(t, err)
	if len(ids) != 50 {
		t.Fatalf("%d ids for 50 jobs", len(ids))
	}
	for i, id := range ids {
		var d map[string]int
		must(t, json.Unmarshal(getJob(t, b, id).Data, &d))
		if d["i"] != i {
			t.Fatalf("id %d belongs to job %d", i, d["i"])
		}
	}
	// A batch with one invalid job adds none.
	_, err = b.Enqueue(ctx(t), q, []backend.EnqueueParams{{}, {MaxAttempts: -1}})
	wantCode(t, err, backend.CodeInvalidArgument)
	if st, _ := b.Stats(ctx(t), q); st.Pending != 50 {
		t.Fatalf("a refused batch added jobs: %+v", st)
	}
}

// testEnqueueManyOptions: in a batch without keys, small or large, mixed
// or all alike (a store may send a column all jobs share once), each job
// keeps its own backoff (several, some repeated), delay or runAt,
// priority, attempts, timeout and trace context, and all are stamped
// with the call's time and, where the queue's feed is read, enqueued in
// the batch's order.
func testEnqueueManyOptions(t *testing.T, b *jq) {
	fixed := backend.Backoff{Type: backend.BackoffFixed, DelayMs: 5000, MaxDelayMs: 5000}
	exp := backend.Backoff{Type: backend.BackoffExponential, DelayMs: 10_000, MaxDelayMs: 25_000}
	now := b.now()
	early := time.Date(1999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
	type want struct {
		backoff  backend.Backoff
		runAt    time.Duration // after the job's creation, or
		at       time.Time     // this
		priority int
		attempts int
		timeout  int64
		trace    string
	}
	kinds := []struct {
		p backend.EnqueueParams
		w want
	}{
		{backend.EnqueueParams{}, want{backend.DefaultBackoff, 0, time.Time{}, 0, backend.DefaultMaxAttempts, 0, ""}},
		{backend.EnqueueParams{Backoff: fixed, Priority: 2, MaxAttempts: 7}, want{fixed, 0, time.Time{}, 2, 7, 0, ""}},
		{backend.EnqueueParams{Backoff: exp, Delay: 90 * time.Second, Timeout: 1500 * time.Millisecond},
			want{exp, 90 * time.Second, time.Time{}, 0, backend.DefaultMaxAttempts, 1500, ""}},
		{backend.EnqueueParams{Backoff: fixed, RunAt: now.Add(time.Hour), Traceparent: traceA},
			want{fixed, 0, now.Add(time.Hour), 0, backend.DefaultMaxAttempts, 0, traceA}},
		{backend.EnqueueParams{Delay: time.Millisecond, Priority: -1}, want{backend.DefaultBackoff, time.Millisecond, time.Time{}, -1, backend.DefaultMaxAttempts, 0, ""}},
		{backend.EnqueueParams{Backoff: exp, MaxAttempts: 1, RunAt: early}, want{exp, 0, early, 0, 1, 0, ""}},
	}
	// Batches of every kind in turn, small and large, and of each kind
	// alone (every column the same in every job).
	var batches [][]int
	for _, n := range []int{len(kinds), 130} {
		batch := make([]int, n)
		for i := range batch {
			batch[i] = i % len(kinds)
		}
		batches = append(batches, batch)
	}
	for k := range kinds {
		batches = append(batches, []int{k, k, k})
	}
	for _, batch := range batches {
		n := len(batch)
		q := qname(t)
		var cursor string
		if b.caps.Events {
			cursor = events(t, b.svc, q, "", 0).Next
		}
		ps := make([]backend.EnqueueParams, n)
		for i := range ps {
			ps[i] = kinds[batch[i]].p
			ps[i].Data = json.RawMessage(strconv.Itoa(i))
		}
		ids, err := b.Enqueue(ctx(t), q, ps)
		must(t, err)
		if len(ids) != n {
			t.Fatalf("%d ids for %d jobs", len(ids), n)
		}
		created := getJob(t, b, ids[0]).CreatedAt
		if created.Before(now) || created.After(b.now()) {
			t.Fatalf("created at %v, not during the call (%v to %v)", created, now, b.now())
		}
		for i, id := range ids {
			j, w := getJob(t, b, id), kinds[batch[i]].w
			runAt := w.at
			if runAt.IsZero() {
				runAt = created.Add(w.runAt)
			}
			if string(j.Data) != strconv.Itoa(i) || j.Backoff != w.backoff || !j.RunAt.Equal(runAt) || j.MaxAttempts != w.attempts ||
				j.TimeoutMs != w.timeout || j.Traceparent != w.trace || j.Attempts != 0 ||
				!j.CreatedAt.Equal(created) || !j.UpdatedAt.Equal(created) || j.Status != backend.StatusPending {
				t.Fatalf("job %d of %d: %+v; want %+v, created at %v", i, n, j, w, created)
			}
			if b.caps.Priorities && j.Priority != w.priority {
				t.Fatalf("job %d of %d: priority %d, want %d", i, n, j.Priority, w.priority)
			}
		}
		if b.caps.Events {
			evs, _ := eventsUntil(t, b.svc, q, cursor, n)
			for i, e := range evs {
				if e.Type != backend.EventEnqueued || e.JobID != ids[i] {
					t.Fatalf("event %d of %d: %s %s, want enqueued %s", i, n, e.Type, e.JobID, ids[i])
				}
			}
		}
	}
}

func testStats(t *testing.T, b *jq) {
	q := qname(t)
	for i := 0; i < 5; i++ {
		enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
	}
	j1 := dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Acknowledge(ctx(t), j1.ID, j1.Lease))
	j2 := dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Fail(ctx(t), backend.FailParams{ID: j2.ID, Lease: j2.Lease, Retry: true, Error: backend.JobError{Name: "E", Message: "first"}}))
	j3 := dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Fail(ctx(t), backend.FailParams{ID: j3.ID, Lease: j3.Lease, Error: backend.JobError{Name: "E", Message: "second"}}))
	dequeue(t, b, q, backend.DequeueParams{})
	j5 := dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Cancel(ctx(t), j5.ID))
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	want := backend.QueueStats{Queue: q, Pending: 0, Processing: 1, Completed: 1, Failed: 2, Cancelled: 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	failed, err := b.ListFailed(ctx(t), q, backend.ListParams{})
	must(t, err)
	if len(failed) != 2 {
		t.Fatalf("listFailed: %d jobs", len(failed))
	}
	got := []string{failed[0].ID, failed[1].ID}
	if !slices.Contains(got, j2.ID) || !slices.Contains(got, j3.ID) {
		t.Fatalf("listFailed %v, want %s and %s", got, j2.ID, j3.ID)
	}
	if failed[0].FinishedAt.Before(*failed[1].FinishedAt) {
		t.Fatal("listFailed is not newest first")
	}
	page, err := b.ListFailed(ctx(t), q, backend.ListParams{Limit: 1, Offset: 1})
	must(t, err)
	if len(page) != 1 || page[0].ID != failed[1].ID {
		t.Fatalf("listFailed paging: %+v", page)
	}
	empty, err := b.Stats(ctx(t), qname(t))
	must(t, err)
	if empty.Pending+empty.Processing+empty.Completed+empty.Failed+empty.Cancelled != 0 {
		t.Fatalf("unknown queue has stats %+v", empty)
	}
}

func testRetryFailed(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1, Key: "once"})
	j := dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Fail(ctx(t), backend.FailParams{ID: id, Lease: j.Lease, Retry: true}))
	wantStatus(t, b, id, backend.StatusFailed)
	must(t, b.RetryFailed(ctx(t), id))
	got := wantStatus(t, b, id, backend.StatusPending)
	if got.Attempts != 0 || got.FinishedAt != nil {
		t.Fatalf("retried job %+v", got)
	}
	if again := enqueue(t, b, q, backend.EnqueueParams{Key: "once"}); again != id {
		t.Fatal("a retried job does not hold its key again")
	}
	j = dequeue(t, b, q, backend.DequeueParams{})
	if j == nil || j.ID != id || j.Attempts != 1 {
		t.Fatalf("retried job not delivered: %+v", j)
	}
	wantCode(t, b.RetryFailed(ctx(t), id), backend.CodeConflict)
	wantCode(t, b.RetryFailed(ctx(t), "nope"), backend.CodeNotFound)
}

func testPurgeFailed(t *testing.T, b *jq) {
	q, other := qname(t), qname(t)
	var dead []string
	for _, name := range []string{q, q, other} {
		id := enqueue(t, b, name, backend.EnqueueParams{MaxAttempts: 1})
		j := dequeue(t, b, name, backend.DequeueParams{})
		must(t, b.Fail(ctx(t), backend.FailParams{ID: j.ID, Lease: j.Lease}))
		dead = append(dead, id)
	}
	live := enqueue(t, b, q, backend.EnqueueParams{})
	n, err := b.PurgeFailed(ctx(t), q)
	must(t, err)
	if n != 2 {
		t.Fatalf("purged %d, want 2", n)
	}
	for _, id := range dead[:2] {
		if j, _ := b.GetJob(ctx(t), id); j != nil {
			t.Fatalf("dead letter %s not purged", id)
		}
	}
	wantStatus(t, b, dead[2], backend.StatusFailed) // another queue's
	wantStatus(t, b, live, backend.StatusPending)
	if n, err := b.PurgeFailed(ctx(t), q); err != nil || n != 0 {
		t.Fatalf("second purge: %d %v", n, err)
	}
}

func testPrune(t *testing.T, b *jq) {
	q := qname(t)
	done := enqueue(t, b, q, backend.EnqueueParams{})
	j := dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Acknowledge(ctx(t), done, j.Lease))
	dead := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
	j = dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Fail(ctx(t), backend.FailParams{ID: dead, Lease: j.Lease}))
	live := enqueue(t, b, q, backend.EnqueueParams{})

	now := b.now()
	n, err := b.Prune(ctx(t), backend.PruneParams{CompletedBefore: now.Add(-time.Hour), FailedBefore: now.Add(-time.Hour)})
	must(t, err)
	if n != 0 {
		t.Fatalf("pruned %d recent jobs", n)
	}
	// Completed jobs go first; failed ones are kept longer.
	_, err = b.Prune(ctx(t), backend.PruneParams{CompletedBefore: now.Add(time.Hour), FailedBefore: now.Add(-time.Hour)})
	must(t, err)
	if j, _ := b.GetJob(ctx(t), done); j != nil {
		t.Fatal("completed job not pruned")
	}
	wantStatus(t, b, dead, backend.StatusFailed)
	_, err = b.Prune(ctx(t), backend.PruneParams{CompletedBefore: now.Add(time.Hour), FailedBefore: now.Add(time.Hour)})
	must(t, err)
	if j, _ := b.GetJob(ctx(t), dead); j != nil {
		t.Fatal("failed job not pruned")
	}
	wantStatus(t, b, live, backend.StatusPending)
}

func testQueuesSeparate(t *testing.T, b *jq) {
	q1, q2 := qname(t), qname(t)
	id := enqueue(t, b, q1, backend.EnqueueParams{})
	if j := dequeue(t, b, q2, backend.DequeueParams{}); j != nil {
		t.Fatalf("queue %s delivered a job of %s", q2, q1)
	}
	if j := dequeue(t, b, q1, backend.DequeueParams{}); j == nil || j.ID != id {
		t.Fatalf("got %+v", j)
	}
}

func testJobData(t *testing.T, b *jq) {
	q := qname(t)
	for _, data := range []string{`null`, `42`, `"text ✓ 😀"`, `[1,"a",null,{"b":[true]}]`, `{"planId":"p","nested":{"deep":[1.5,-2e-5]}}`} {
		id := enqueue(t, b, q, backend.EnqueueParams{Data: json.RawMessage(data)})
		j := dequeue(t, b, q, backend.DequeueParams{})
		var want, got any
		must(t, json.Unmarshal([]byte(data), &want))
		must(t, json.Unmarshal(j.Data, &got))
		if j.ID != id || testutil.MustJSON(t, want) == nil || string(testutil.MustJSON(t, want)) != string(testutil.MustJSON(t, got)) {
			t.Fatalf("data %s came back as %s", data, j.Data)
		}
		must(t, b.Acknowledge(ctx(t), id, j.Lease))
	}
}

func testJobInvalid(t *testing.T, b *jq) {
	q := qname(t)
	for _, p := range []backend.EnqueueParams{
		{MaxAttempts: -1},
		{Delay: -time.Second},
		{Delay: time.Second, RunAt: time.Now()},
		{Backoff: backend.Backoff{Type: "linear", DelayMs: 1}},
		{Backoff: backend.Backoff{Type: backend.BackoffFixed, DelayMs: -1}},
		{Backoff: backend.Backoff{Type: backend.BackoffExponential, DelayMs: 10, MaxDelayMs: 5}},
		{Key: "bad\x00key"},
	} {
		_, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{p})
		wantCode(t, err, backend.CodeInvalidArgument)
	}
	for _, p := range []backend.DequeueParams{{Wait: -1}, {Wait: backend.MaxWait + time.Second}, {Lease: -time.Second}} {
		_, err := b.Dequeue(ctx(t), q, p)
		wantCode(t, err, backend.CodeInvalidArgument)
	}
	if st, _ := b.Stats(ctx(t), q); st.Pending != 0 {
		t.Fatalf("invalid enqueues added jobs: %+v", st)
	}
}

func testConcurrentWorkers(t *testing.T, b *jq) {
	q := qname(t)
	// Eight workers race for every claim from the first one on; 150 jobs
	// give each of them about twenty claims.
	const jobs, workers = 150, 8
	var ps []backend.EnqueueParams
	for i := 0; i < jobs; i++ {
		ps = append(ps, backend.EnqueueParams{Priority: b.prio(i % 3)})
	}
	ids, err := b.Enqueue(ctx(t), q, ps)
	must(t, err)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := b.Dequeue(ctx(t), q, backend.DequeueParams{Lease: time.Minute})
				if err != nil {
					errs <- err
					return
				}
				if j == nil {
					return
				}
				mu.Lock()
				seen[j.ID]++
				mu.Unlock()
				if err := b.Acknowledge(ctx(t), j.ID, j.Lease); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("job %s delivered %d times", id, seen[id])
		}
	}
	b.wantCompleted(t, q, jobs)
}

// testBatchClaimOrder: one dequeue of many takes jobs in claim order,
// each with a lease of its own.
func testBatchClaimOrder(t *testing.T, b *jq) {
	q := qname(t)
	past := b.now().Add(-time.Hour)
	a := enqueue(t, b, q, backend.EnqueueParams{Priority: 0})
	c := enqueue(t, b, q, backend.EnqueueParams{Priority: 5})
	d := enqueue(t, b, q, backend.EnqueueParams{Priority: 0, RunAt: past})
	e := enqueue(t, b, q, backend.EnqueueParams{Priority: -3})
	f := enqueue(t, b, q, backend.EnqueueParams{Priority: 5})
	g := enqueue(t, b, q, backend.EnqueueParams{Priority: 0, RunAt: past})
	later := enqueue(t, b, q, backend.EnqueueParams{Priority: 9, Delay: time.Hour})
	want := []string{c, f, d, g, a, e}
	jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 4})
	must(t, err)
	jobs2, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 100})
	must(t, err)
	if len(jobs) != 4 || len(jobs2) != 2 {
		t.Fatalf("dequeue of 4 then 100 took %d and %d of 6 ready jobs", len(jobs), len(jobs2))
	}
	leases := map[string]bool{}
	var got []string
	for _, j := range append(jobs, jobs2...) {
		got = append(got, j.ID)
		if j.Lease == "" || leases[j.Lease] || j.Status != backend.StatusProcessing || j.Attempts != 1 {
			t.Fatalf("claim %+v: every claim needs a lease of its own", j)
		}
		leases[j.Lease] = true
	}
	if !slices.Equal(got, want) {
		t.Fatalf("batch claim order\nwant %v\ngot  %v", want, got)
	}
	if more, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 10}); err != nil || len(more) != 0 {
		t.Fatalf("a job ahead of its runAt was claimed: %v %v (%s)", more, err, later)
	}
}

// testPerItemOutcomes: in a batch, a stale lease or an unknown id is that
// item's refusal; every other item is settled.
func testPerItemOutcomes(t *testing.T, b *jq) {
	q := qname(t)
	ps := make([]backend.EnqueueParams, 100)
	_, err := b.Enqueue(ctx(t), q, ps)
	must(t, err)
	jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 100, Lease: time.Minute})
	must(t, err)
	if len(jobs) != 100 {
		t.Fatalf("claimed %d of 100", len(jobs))
	}
	refs := make([]backend.LeaseRef, len(jobs))
	for i, j := range jobs {
		refs[i] = backend.LeaseRef{ID: j.ID, Lease: j.Lease}
	}
	refs[37].Lease = jobs[36].Lease // a lease of another claim
	refs[50].ID = "no-such-job"
	outcomes, err := b.svc.Ack(ctx(t), refs)
	must(t, err)
	for i, o := range outcomes {
		switch i {
		case 37:
			wantCode(t, o, backend.CodeConflict)
		case 50:
			wantCode(t, o, backend.CodeNotFound)
		default:
			if o != nil {
				t.Fatalf("item %d: %v", i, o)
			}
		}
	}
	wantStatus(t, b, jobs[37].ID, backend.StatusProcessing)
	wantStatus(t, b, jobs[50].ID, backend.StatusProcessing)
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Completed != 98 || st.Processing != 2 {
		t.Fatalf("stats %+v, want 98 completed and 2 processing", st)
	}

	// The other settle-many calls answer per item the same way.
	fails, err := b.svc.Fail(ctx(t), []backend.FailParams{
		{ID: jobs[37].ID, Lease: jobs[37].Lease, Retry: true, Error: backend.JobError{Message: "again"}},
		{ID: jobs[0].ID, Lease: jobs[0].Lease, Retry: true},
	})
	must(t, err)
	if fails[0] != nil {
		t.Fatal(fails[0])
	}
	wantCode(t, fails[1], backend.CodeConflict)
	if j := wantStatus(t, b, jobs[37].ID, backend.StatusPending); j.LastError == nil || j.LastError.Name != "Error" || j.LastError.Message != "again" {
		t.Fatalf("retried job %+v", j)
	}
	beats, err := b.svc.Heartbeat(ctx(t), []backend.HeartbeatParams{{ID: jobs[50].ID, Lease: jobs[50].Lease, Extend: time.Hour}, {ID: jobs[1].ID, Lease: jobs[1].Lease}})
	must(t, err)
	if beats[0] != nil {
		t.Fatal(beats[0])
	}
	wantCode(t, beats[1], backend.CodeConflict)
	rel, err := b.svc.Release(ctx(t), []backend.LeaseRef{{ID: jobs[50].ID, Lease: jobs[50].Lease}, {ID: jobs[2].ID, Lease: jobs[2].Lease}})
	must(t, err)
	if rel[0] != nil {
		t.Fatal(rel[0])
	}
	wantCode(t, rel[1], backend.CodeConflict)
	if j := wantStatus(t, b, jobs[50].ID, backend.StatusPending); j.Attempts != 0 {
		t.Fatalf("released job %+v", j)
	}
	for _, bad := range [][]backend.LeaseRef{nil, make([]backend.LeaseRef, queue.MaxSettle+1), {{ID: "x"}}} {
		_, err := b.svc.Ack(ctx(t), bad)
		wantCode(t, err, backend.CodeInvalidArgument)
	}
}

// testRepeatedIDs: one batch may name a job twice; the items apply in
// order, as if sent one after the other.
func testRepeatedIDs(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{})
	j := dequeue(t, b, q, backend.DequeueParams{})
	outcomes, err := b.svc.Ack(ctx(t), []backend.LeaseRef{{ID: id, Lease: j.Lease}, {ID: id, Lease: j.Lease}})
	must(t, err)
	if outcomes[0] != nil || outcomes[1] != nil {
		t.Fatalf("an ack repeated in one batch: %v", outcomes)
	}
	id2 := enqueue(t, b, q, backend.EnqueueParams{})
	j2 := dequeue(t, b, q, backend.DequeueParams{})
	outcomes, err = b.svc.Release(ctx(t), []backend.LeaseRef{{ID: id2, Lease: j2.Lease}, {ID: id2, Lease: j2.Lease}})
	must(t, err)
	if outcomes[0] != nil {
		t.Fatal(outcomes[0])
	}
	wantCode(t, outcomes[1], backend.CodeConflict)
	if got := wantStatus(t, b, id2, backend.StatusPending); got.Attempts != 0 {
		t.Fatalf("released twice in one batch: %+v", got)
	}
}

// gatedStore holds every Claim until the test lets it go, so that a
// dequeue's caller can leave while its claim runs.
type gatedStore struct {
	backend.JobStore
	entered, proceed, claimed chan struct{}
}

func (g *gatedStore) Claim(ctx context.Context, p backend.ClaimParams) (backend.Claimed, error) {
	g.entered <- struct{}{}
	<-g.proceed
	defer close(g.claimed)
	return g.JobStore.Claim(ctx, p)
}

func (g *gatedStore) Watch(backend.Watcher) {}

// testAbandonedClaim: a dequeue whose context ends while its claim runs (a
// long poll cut by SIGTERM, a client gone) must not leave the job
// processing with an attempt spent: the claim is released, and with
// maxAttempts 1 the job is then delivered, not dead-lettered.
func testAbandonedClaim(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1})
	g := &gatedStore{JobStore: b.store, entered: make(chan struct{}), proceed: make(chan struct{}), claimed: make(chan struct{})}
	gated := queue.New(queue.Config{Store: g, Clock: b.clock.Now})
	c, cancel := context.WithCancel(ctx(t))
	res := make(chan []*backend.Job, 1)
	go func() {
		jobs, err := gated.Dequeue(c, q, backend.DequeueParams{Wait: 10 * time.Second, Lease: time.Hour})
		if err != nil {
			t.Error(err)
		}
		res <- jobs
	}()
	<-g.entered
	cancel()
	if jobs := <-res; len(jobs) != 0 {
		t.Fatalf("a dequeue that left got %v", jobs)
	}
	close(g.proceed) // the claim runs now, for nobody
	<-g.claimed
	deadline := time.Now().Add(10 * time.Second)
	for {
		j := getJob(t, b, id)
		if j.Status == backend.StatusPending && j.Attempts == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned claim was not released: %+v", j)
		}
		time.Sleep(10 * time.Millisecond)
	}
	j := dequeue(t, b, q, backend.DequeueParams{})
	if j == nil || j.ID != id || j.Attempts != 1 {
		t.Fatalf("after the release the job went to %+v", j)
	}
	must(t, b.Acknowledge(ctx(t), id, j.Lease))
}

// testLongPollMany: a long poll for many returns as soon as some are ready.
func testLongPollMany(t *testing.T, b *jq) {
	q := qname(t)
	res := make(chan []*backend.Job, 1)
	go func() {
		jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Wait: 20 * time.Second, Max: 50})
		if err != nil {
			t.Error(err)
		}
		res <- jobs
	}()
	time.Sleep(50 * time.Millisecond)
	_, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{{}, {}, {}})
	must(t, err)
	jobs := <-res
	if len(jobs) < 1 || len(jobs) > 3 {
		t.Fatalf("long poll for 50 got %d jobs", len(jobs))
	}
}

// testConcurrentBatchWorkers: workers that claim and acknowledge in
// batches complete every job exactly once.
func testConcurrentBatchWorkers(t *testing.T, b *jq) {
	q := qname(t)
	// The largest batch (66) still leaves four batches' worth for the
	// others to race for.
	const jobs, workers = 300, 6
	ps := make([]backend.EnqueueParams, jobs)
	for i := range ps {
		ps[i].Priority = b.prio(i % 4)
	}
	ids, err := b.Enqueue(ctx(t), q, ps)
	must(t, err)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 1 + w*13, Lease: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				refs := make([]backend.LeaseRef, len(got))
				mu.Lock()
				for i, j := range got {
					seen[j.ID]++
					refs[i] = backend.LeaseRef{ID: j.ID, Lease: j.Lease}
				}
				mu.Unlock()
				outcomes, err := b.svc.Ack(ctx(t), refs)
				if err != nil {
					t.Error(err)
					return
				}
				for _, o := range outcomes {
					if o != nil {
						t.Error(o)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("job %s delivered %d times", id, seen[id])
		}
	}
	b.wantCompleted(t, q, jobs)
}

// testRunAtYearOne: 0001-01-01T00:00:00Z is Go's zero time, which used to
// mean "runAt not given" (so "now"). Given, it is a date: stored as given,
// claimed first. The range every backend stores is 0001-01-01 to
// 9999-12-31; outside it, enqueue is invalid_argument everywhere.
func testRunAtYearOne(t *testing.T, b *jq) {
	q := qname(t)
	year1 := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	now := enqueue(t, b, q, backend.EnqueueParams{})
	last := enqueue(t, b, q, backend.EnqueueParams{RunAt: backend.MaxRunAt})
	first := enqueue(t, b, q, backend.EnqueueParams{RunAt: year1, RunAtGiven: true})
	second := enqueue(t, b, q, backend.EnqueueParams{RunAt: year1.Add(time.Millisecond)})
	for id, want := range map[string]time.Time{first: year1, second: year1.Add(time.Millisecond), last: backend.MaxRunAt} {
		if got := getJob(t, b, id).RunAt; !got.Equal(want) {
			t.Fatalf("runAt %v stored as %v", want, got)
		}
	}
	for _, want := range []string{first, second, now} {
		if j := dequeue(t, b, q, backend.DequeueParams{}); j == nil || j.ID != want {
			t.Fatalf("claimed %+v, want %s", j, want)
		}
	}
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("the job of year 9999 ran: %+v", j)
	}
	for _, at := range []time.Time{year1.Add(-time.Millisecond), backend.MaxRunAt.Add(time.Millisecond)} {
		_, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`1`), RunAt: at}})
		wantCode(t, err, backend.CodeInvalidArgument)
	}
}
