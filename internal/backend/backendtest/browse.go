package backendtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
)

// browseTests are the cases of the job-browsing API (issue 20): find with
// keyset pages, bulk retry/cancel/delete, edits of pending jobs and the
// overview of every queue.
var browseTests = []struct {
	name string
	fn   func(t *testing.T, b *jq)
}{
	{"FindByStatusInCreationOrder", testFindByStatus},
	{"FindPagesEveryJobOnce", testFindPages},
	{"FindPagesCutShortByScanBound", testFindScanBound},
	{"FindFilterOnDataAndKey", testFindFilter},
	{"FindSortRunAtAndFinishedAt", testFindSorts},
	{"FindRefusals", testFindRefusals},
	{"FindProcessingSeesLapsedClaims", testFindLapsed},
	{"BulkByIDs", testBulkIDs},
	{"BulkByStatusAndFilter", testBulkFilter},
	{"BulkStopsAtItsBudget", testBulkBudget},
	{"BulkDeleteFreesKey", testBulkDeleteKey},
	{"UpdatePendingJob", testUpdateJob},
	{"UpdateJobRefusals", testUpdateJobRefusals},
	{"QueuesOverview", testQueuesOverview},
}

// tuned is the service over b's store with other limits, sharing the
// store's wake-ups with b's service (its own Watch is not called).
func tuned(b *jq, cfg queue.Config) *queue.Service {
	quiet := quietStore{b.store, b.store.(backend.BrowseStore), b.store.(backend.QueueLister)}
	cfg.Store = quiet
	if pp, ok := b.store.(backend.PendingPriorities); ok {
		cfg.Store = quietPrioStore{quiet, pp}
	}
	cfg.Clock = b.clock.Now
	return queue.New(cfg)
}

// quietPrioStore is a quietStore of a store that walks pending jobs a
// priority at a time.
type quietPrioStore struct {
	quietStore
	prios backend.PendingPriorities
}

func (s quietPrioStore) PendingPriorities(ctx context.Context, queue string) ([]int, error) {
	return s.prios.PendingPriorities(ctx, queue)
}

type quietStore struct {
	backend.JobStore
	backend.BrowseStore
	backend.QueueLister
}

func (quietStore) Watch(backend.Watcher) {}

// findAll pages through a find until its end and checks each page.
func findAll(t *testing.T, svc *queue.Service, q string, p queue.FindParams) []*backend.Job {
	t.Helper()
	var out []*backend.Job
	limit := p.Limit
	if limit == 0 {
		limit = queue.DefaultFindLimit
	}
	for i := 0; ; i++ {
		if i > 10_000 {
			t.Fatal("find does not end")
		}
		page, err := svc.FindJobs(ctx(t), q, p)
		must(t, err)
		if len(page.Jobs) > limit {
			t.Fatalf("page of %d jobs, limit %d", len(page.Jobs), limit)
		}
		for _, j := range page.Jobs {
			if j.Lease != "" {
				t.Fatal("a found job shows its lease")
			}
		}
		out = append(out, page.Jobs...)
		if page.Next == nil {
			return out
		}
		p.After = *page.Next
	}
}

func jobIDs(jobs []*backend.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// sorted returns the jobs with these ids as the store has them, in the
// order of sort (by PosOf, which is the definition).
func sorted(t *testing.T, b *jq, list []string, sort backend.JobSort, desc bool) []string {
	t.Helper()
	jobs, err := b.store.Get(ctx(t), list)
	must(t, err)
	slices.SortFunc(jobs, func(a, c *backend.Job) int {
		if backend.PosOf(a, sort).Before(backend.PosOf(c, sort), desc) {
			return -1
		}
		return 1
	})
	return jobIDs(jobs)
}

func wantIDs(t *testing.T, what string, got []*backend.Job, want []string) {
	t.Helper()
	if g := jobIDs(got); !slices.Equal(g, want) {
		t.Fatalf("%s: got %v, want %v", what, g, want)
	}
}

// mixedQueue makes jobs in every status, one clock step apart, and
// returns their ids by status.
func mixedQueue(t *testing.T, b *jq, q string) map[backend.JobStatus][]string {
	t.Helper()
	var all []string
	for i := 0; i < 9; i++ {
		all = append(all, enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1, Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}))
		b.clock.Advance(time.Millisecond)
	}
	by := map[backend.JobStatus][]string{}
	claims := claim(t, b, q, 5)
	must(t, b.Acknowledge(ctx(t), claims[0].ID, claims[0].Lease))
	b.clock.Advance(time.Millisecond)
	must(t, b.Acknowledge(ctx(t), claims[1].ID, claims[1].Lease))
	b.clock.Advance(time.Millisecond)
	must(t, b.Fail(ctx(t), backend.FailParams{ID: claims[2].ID, Lease: claims[2].Lease, Error: backend.JobError{Name: "E", Message: "boom", Stack: "at x"}}))
	must(t, b.Cancel(ctx(t), claims[3].ID))
	by[backend.StatusCompleted] = []string{claims[0].ID, claims[1].ID}
	by[backend.StatusFailed] = []string{claims[2].ID}
	by[backend.StatusCancelled] = []string{claims[3].ID}
	by[backend.StatusProcessing] = []string{claims[4].ID}
	claimed := jobIDs(claims)
	for _, id := range all {
		if !slices.Contains(claimed, id) {
			by[backend.StatusPending] = append(by[backend.StatusPending], id)
		}
	}
	return by
}

func testFindByStatus(t *testing.T, b *jq) {
	q := qname(t)
	by := mixedQueue(t, b, q)
	var created []string // what createdAt orders: processing, failed, cancelled
	for _, st := range []backend.JobStatus{backend.StatusPending, backend.StatusProcessing, backend.StatusCompleted, backend.StatusFailed, backend.StatusCancelled} {
		// Pending jobs come due soonest first, finished ones latest
		// finished first, the claims in flight newest first.
		sort, desc := backend.SortCreatedAt, true
		switch {
		case st == backend.StatusPending:
			sort, desc = backend.SortRunAt, false
		case st.Finished():
			sort = backend.SortFinishedAt
		}
		got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{st}})
		wantIDs(t, string(st), got, sorted(t, b, by[st], sort, desc))
		for _, j := range got {
			if j.Status != st || j.Queue != q {
				t.Fatalf("find of %s answered %+v", st, j)
			}
		}
		if slices.Contains(queue.Sortable(backend.SortCreatedAt), st) {
			created = append(created, by[st]...)
			got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{st}, Sort: backend.SortCreatedAt, Order: "asc"})
			wantIDs(t, string(st)+" oldest first", got, sorted(t, b, by[st], backend.SortCreatedAt, false))
		}
	}
	got := findAll(t, b.svc, q, queue.FindParams{})
	wantIDs(t, "every status createdAt orders, newest first", got, sorted(t, b, created, backend.SortCreatedAt, true))
	got = findAll(t, b.svc, q, queue.FindParams{Order: "asc", Limit: 2})
	wantIDs(t, "the same, oldest first, pages of 2", got, sorted(t, b, created, backend.SortCreatedAt, false))
	finished := append(append(slices.Clone(by[backend.StatusCompleted]), by[backend.StatusFailed]...), by[backend.StatusCancelled]...)
	got = findAll(t, b.svc, q, queue.FindParams{Sort: backend.SortFinishedAt, Limit: 1})
	wantIDs(t, "every finished status", got, sorted(t, b, finished, backend.SortFinishedAt, true))
	two := []backend.JobStatus{backend.StatusFailed, backend.StatusCompleted}
	got = findAll(t, b.svc, q, queue.FindParams{Statuses: two, Limit: 1})
	wantIDs(t, "completed and failed", got, sorted(t, b, append(slices.Clone(by[backend.StatusCompleted]), by[backend.StatusFailed]...), backend.SortFinishedAt, true))
	// The failed job shows what an operator needs.
	failed := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusFailed}})
	if e := failed[0].LastError; e == nil || e.Message != "boom" || e.Stack != "at x" || string(failed[0].Data) == "" {
		t.Fatalf("found failed job %+v", failed[0])
	}
	none := findAll(t, b.svc, qname(t), queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}})
	if len(none) != 0 {
		t.Fatalf("an unknown queue has jobs %v", jobIDs(none))
	}
}

func testFindPages(t *testing.T, b *jq) {
	q := qname(t)
	var all []string
	for i := 0; i < 4; i++ {
		// Batches: jobs created in the same millisecond, ordered by id.
		all = append(all, enqueueN(t, b, q, 6)...)
		b.clock.Advance(time.Millisecond)
	}
	want := sorted(t, b, all, backend.SortRunAt, false)
	for _, limit := range []int{1, 5, 7, 24, 1000} {
		got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Limit: limit})
		wantIDs(t, fmt.Sprintf("limit %d", limit), got, want)
	}
	first, err := b.svc.FindJobs(ctx(t), q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Limit: 10})
	must(t, err)
	if len(first.Jobs) != 10 || first.Next == nil {
		t.Fatalf("a first page of 10 of 24: %d jobs, next %v", len(first.Jobs), first.Next)
	}
	// Jobs claimed between pages leave the pending pages; none repeats.
	claim(t, b, q, 3)
	rest := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, After: *first.Next, Limit: 10})
	seen := map[string]bool{}
	for _, j := range append(first.Jobs, rest...) {
		if seen[j.ID] {
			t.Fatalf("job %s on two pages", j.ID)
		}
		seen[j.ID] = true
	}
	if len(seen) != 21 && len(seen) != 24 {
		t.Fatalf("pages after 3 claims hold %d jobs", len(seen))
	}
	last, err := b.svc.FindJobs(ctx(t), q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Limit: 24, Order: "desc"})
	must(t, err)
	if last.Next != nil {
		t.Fatalf("a page holding every job has a next page %q", *last.Next)
	}
}

func testFindScanBound(t *testing.T, b *jq) {
	q := qname(t)
	var all, odd []string
	for i := 0; i < 30; i++ {
		// Three priorities: a store that walks pending jobs one priority
		// at a time (backend.PendingPriorities) has its walks merged and
		// cut by the bound like walks of several statuses.
		id := enqueue(t, b, q, backend.EnqueueParams{Data: json.RawMessage(fmt.Sprintf(`{"odd":%v}`, i%2 == 1)), Priority: b.prio(i % 3)})
		all = append(all, id)
		if i%2 == 1 {
			odd = append(odd, id)
		}
		b.clock.Advance(time.Millisecond)
	}
	svc := tuned(b, queue.Config{FindScan: 4})
	f, err := backend.ParseFilter([]byte(`{"odd":true}`))
	must(t, err)
	pages, short := 0, 0
	// Six: a page holds the odd jobs up to the earliest cut, five when
	// three walks of one priority each stop at their fourth job.
	p := queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Filter: f, Limit: 6}
	var got []*backend.Job
	for {
		page, err := svc.FindJobs(ctx(t), q, p)
		must(t, err)
		pages++
		if len(page.Jobs) < 6 && page.Next != nil {
			short++
		}
		got = append(got, page.Jobs...)
		if page.Next == nil {
			break
		}
		p.After = *page.Next
	}
	wantIDs(t, "odd jobs through walks of 4", got, sorted(t, b, odd, backend.SortRunAt, false))
	if short == 0 {
		t.Fatalf("walks of 4 jobs over 30 never cut a page short (%d pages)", pages)
	}
	// Every status walks on its own, each cut by the bound.
	wantIDs(t, "every job through walks of 4", findAll(t, svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Limit: 3, Order: "desc"}), sorted(t, b, all, backend.SortRunAt, true))
}

func testFindFilter(t *testing.T, b *jq) {
	q := qname(t)
	data := []string{
		`{"kind":"mail","n":1,"to":{"domain":"a.example"}}`,
		`{"kind":"mail","n":5,"to":{"domain":"b.example"}}`,
		`{"kind":"sms","n":3,"tags":["x","y"]}`,
		`"just a string"`,
		`[1,2,3]`,
		`null`,
		`{"kind":"mail","n":"5"}`,
	}
	var all []string
	for _, d := range data {
		all = append(all, enqueue(t, b, q, backend.EnqueueParams{Data: json.RawMessage(d)}))
		b.clock.Advance(time.Millisecond)
	}
	keyed := enqueue(t, b, q, backend.EnqueueParams{Key: "k-1", Data: json.RawMessage(`{"kind":"mail","n":9}`)})
	cases := []struct {
		filter string
		want   []int // indexes into all; 7 is keyed
	}{
		{`{}`, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{`{"kind":"mail"}`, []int{0, 1, 6, 7}},
		{`{"n":{"$gte":3}}`, []int{1, 2, 7}},
		{`{"to.domain":{"$startsWith":"b."}}`, []int{1}},
		{`{"tags":{"$contains":"y"}}`, []int{2}},
		{`{"$or":[{"kind":"sms"},{"n":1}]}`, []int{0, 2}},
		{`{"kind":{"$ne":"mail"}}`, []int{2, 3, 4, 5}},
		{`{"kind":null}`, []int{3, 4, 5}},
		{`{"kind":{"$exists":true}}`, []int{0, 1, 2, 6, 7}},
		{`{"id":"x"}`, nil},
	}
	all = append(all, keyed)
	for _, c := range cases {
		f, err := backend.ParseFilter([]byte(c.filter))
		must(t, err)
		var want []string
		for _, i := range c.want {
			want = append(want, all[i])
		}
		got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Filter: f})
		wantIDs(t, "filter "+c.filter, got, sorted(t, b, want, backend.SortRunAt, false))
	}
	got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Key: "k-1"})
	wantIDs(t, "key k-1", got, []string{keyed})
	f, _ := backend.ParseFilter([]byte(`{"kind":"sms"}`))
	if got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Key: "k-1", Filter: f}); len(got) != 0 {
		t.Fatalf("key and a filter it fails: %v", jobIDs(got))
	}
	if got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Key: "nobody"}); len(got) != 0 {
		t.Fatalf("unknown key: %v", jobIDs(got))
	}
}

func testFindSorts(t *testing.T, b *jq) {
	q := qname(t)
	now := b.now()
	var pending []string
	for i, d := range []time.Duration{5 * time.Hour, time.Hour, 3 * time.Hour, time.Hour, 2 * time.Hour} {
		pending = append(pending, enqueue(t, b, q, backend.EnqueueParams{RunAt: now.Add(d), Priority: b.prio(i % 2)}))
	}
	got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}, Sort: backend.SortRunAt, Limit: 2})
	wantIDs(t, "runAt, due soonest first", got, sorted(t, b, pending, backend.SortRunAt, false))
	got = findAll(t, b.svc, q, queue.FindParams{Sort: backend.SortRunAt, Order: "desc", Limit: 3})
	wantIDs(t, "runAt, latest first", got, sorted(t, b, pending, backend.SortRunAt, true))

	done := qname(t)
	var finished []string
	for i := 0; i < 6; i++ {
		enqueue(t, b, done, backend.EnqueueParams{MaxAttempts: 1})
	}
	// Claimed in one order, finished in another: finishedAt differs from
	// createdAt order.
	claims := claim(t, b, done, 6)
	for i := len(claims) - 1; i >= 0; i-- {
		c := claims[i]
		if i%2 == 0 {
			must(t, b.Acknowledge(ctx(t), c.ID, c.Lease))
		} else {
			must(t, b.Fail(ctx(t), backend.FailParams{ID: c.ID, Lease: c.Lease, Error: backend.JobError{Message: "x"}}))
		}
		finished = append(finished, c.ID)
		b.clock.Advance(time.Millisecond)
	}
	both := []backend.JobStatus{backend.StatusCompleted, backend.StatusFailed}
	got = findAll(t, b.svc, done, queue.FindParams{Statuses: both, Sort: backend.SortFinishedAt, Limit: 4})
	wantIDs(t, "finishedAt, latest first", got, sorted(t, b, finished, backend.SortFinishedAt, true))
	if got[0].ID != claims[0].ID {
		t.Fatalf("the job finished last is %s, found %s first", claims[0].ID, got[0].ID)
	}
	got = findAll(t, b.svc, done, queue.FindParams{Statuses: both, Sort: backend.SortFinishedAt, Order: "asc", Limit: 5})
	wantIDs(t, "finishedAt, earliest first", got, sorted(t, b, finished, backend.SortFinishedAt, false))
}

// A claim whose lease ran out is still processing until it is claimed
// again (or failed), and a find shows it so, whatever the store does with
// it meanwhile; here its queue is paused, so nothing claims it again.
func testFindLapsed(t *testing.T, b *jq) {
	q := qname(t)
	ids := enqueueN(t, b, q, 3)
	claimed := claim(t, b, q, 2)
	b.clock.Advance(2 * backend.DefaultLease)
	must(t, b.svc.Pause(ctx(t), q))
	if more := claim(t, b, q, 5); len(more) != 0 {
		t.Fatalf("a paused queue handed out %d jobs", len(more))
	}
	got := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusProcessing}, Order: "asc"})
	wantIDs(t, "lapsed claims", got, sorted(t, b, jobIDs(claimed), backend.SortCreatedAt, false))
	for _, j := range got {
		if j.LeaseExpiresAt == nil || !j.LeaseExpiresAt.Before(b.now()) {
			t.Fatalf("a lapsed claim shows lease %v", j.LeaseExpiresAt)
		}
	}
	must(t, b.svc.Resume(ctx(t), q))
	again := claim(t, b, q, 5)
	if len(again) != 3 {
		t.Fatalf("after resume %d jobs claimed, want the 2 lapsed and 1 pending of %v", len(again), ids)
	}
	got = findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusProcessing}})
	if len(got) != 3 {
		t.Fatalf("processing after the claims again: %v", jobIDs(got))
	}
}

func testFindRefusals(t *testing.T, b *jq) {
	q := qname(t)
	enqueueN(t, b, q, 3)
	pending := []backend.JobStatus{backend.StatusPending}
	page, err := b.svc.FindJobs(ctx(t), q, queue.FindParams{Statuses: pending, Limit: 1})
	must(t, err)
	cases := []struct {
		name string
		q    string
		p    queue.FindParams
	}{
		{"bad queue name", "no/slash", queue.FindParams{}},
		{"unknown status", q, queue.FindParams{Statuses: []backend.JobStatus{"done"}}},
		{"status twice", q, queue.FindParams{Statuses: []backend.JobStatus{"failed", "failed"}}},
		{"unknown sort", q, queue.FindParams{Sort: "priority"}},
		{"runAt of failed jobs", q, queue.FindParams{Sort: backend.SortRunAt, Statuses: []backend.JobStatus{"failed"}}},
		{"finishedAt of pending jobs", q, queue.FindParams{Sort: backend.SortFinishedAt, Statuses: pending}},
		{"createdAt of completed jobs", q, queue.FindParams{Sort: backend.SortCreatedAt, Statuses: []backend.JobStatus{"pending", "completed"}}},
		{"pending and completed, no sort", q, queue.FindParams{Statuses: []backend.JobStatus{"pending", "completed"}}},
		{"bad order", q, queue.FindParams{Order: "up"}},
		{"limit too large", q, queue.FindParams{Limit: queue.MaxFindLimit + 1}},
		{"negative limit", q, queue.FindParams{Limit: -1}},
		{"key with a control character", q, queue.FindParams{Key: "a\x01"}},
		{"key too long", q, queue.FindParams{Key: strings.Repeat("k", backend.MaxKeyLength+1)}},
		{"cursor not ours", q, queue.FindParams{After: "garbage!"}},
		{"cursor of another order", q, queue.FindParams{Statuses: pending, After: *page.Next, Order: "desc"}},
		{"cursor of another sort", q, queue.FindParams{After: *page.Next, Sort: backend.SortCreatedAt, Statuses: []backend.JobStatus{"failed"}, Order: "asc"}},
		{"createdAt of pending jobs", q, queue.FindParams{Sort: backend.SortCreatedAt, Statuses: pending}},
	}
	for _, c := range cases {
		_, err := b.svc.FindJobs(ctx(t), c.q, c.p)
		if !backend.IsCode(err, backend.CodeInvalidArgument) {
			t.Errorf("%s: got %v, want invalid_argument", c.name, err)
		}
	}
}

func bulk(t *testing.T, b *jq, q string, a queue.BulkAction, p queue.BulkParams) int {
	t.Helper()
	r, err := b.svc.Bulk(ctx(t), q, a, p)
	must(t, err)
	if r.More {
		t.Fatalf("bulk %s of a few jobs answered more", a)
	}
	return r.Affected
}

func testBulkIDs(t *testing.T, b *jq) {
	q := qname(t)
	by := mixedQueue(t, b, q)
	other := qname(t)
	foreign := enqueue(t, b, other, backend.EnqueueParams{})
	failed, cancelled := by[backend.StatusFailed][0], by[backend.StatusCancelled][0]
	completed, processing := by[backend.StatusCompleted][0], by[backend.StatusProcessing][0]
	// Retry takes failed and cancelled jobs of this queue; the rest of
	// the list is left alone and not counted.
	n := bulk(t, b, q, queue.BulkRetry, queue.BulkParams{IDs: []string{failed, cancelled, completed, foreign, "missing", failed}})
	if n != 2 {
		t.Fatalf("retry affected %d, want 2", n)
	}
	for _, id := range []string{failed, cancelled} {
		if j := wantStatus(t, b, id, backend.StatusPending); j.Attempts != 0 {
			t.Fatalf("retried job %+v", j)
		}
	}
	wantStatus(t, b, completed, backend.StatusCompleted)
	// Cancel takes pending and processing jobs.
	pend := by[backend.StatusPending][0]
	if n := bulk(t, b, q, queue.BulkCancel, queue.BulkParams{IDs: []string{pend, processing, completed, foreign}}); n != 2 {
		t.Fatalf("cancel affected %d, want 2", n)
	}
	wantStatus(t, b, pend, backend.StatusCancelled)
	wantStatus(t, b, processing, backend.StatusCancelled)
	wantStatus(t, b, foreign, backend.StatusPending)
	// Delete takes anything but a claim in flight.
	claimed := claim(t, b, q, 1)[0]
	second := by[backend.StatusPending][1]
	if second == claimed.ID {
		second = by[backend.StatusPending][2]
	}
	if n := bulk(t, b, q, queue.BulkDelete, queue.BulkParams{IDs: []string{completed, pend, claimed.ID, foreign, second}}); n != 3 {
		t.Fatalf("delete affected %d, want 3", n)
	}
	jobs, err := b.store.Get(ctx(t), []string{completed, pend, claimed.ID, foreign, second})
	must(t, err)
	if jobs[0] != nil || jobs[1] != nil || jobs[2] == nil || jobs[3] == nil || jobs[4] != nil {
		t.Fatalf("after delete: %v", jobs)
	}
	if got := findAll(t, b.svc, q, queue.FindParams{Sort: backend.SortFinishedAt}); slices.Contains(jobIDs(got), completed) {
		t.Fatal("find shows a deleted job")
	}
	// The claim still settles.
	must(t, b.Acknowledge(ctx(t), claimed.ID, claimed.Lease))
	for _, p := range []queue.BulkParams{{}, {IDs: []string{}}, {IDs: []string{""}}, {IDs: []string{"a"}, Statuses: []backend.JobStatus{"failed"}}} {
		if _, err := b.svc.Bulk(ctx(t), q, queue.BulkRetry, p); !backend.IsCode(err, backend.CodeInvalidArgument) {
			t.Errorf("bulk %+v: %v, want invalid_argument", p, err)
		}
	}
	if _, err := b.svc.Bulk(ctx(t), q, "purge", queue.BulkParams{IDs: []string{"a"}}); !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Errorf("unknown action: %v", err)
	}
	many := make([]string, queue.MaxSettle+1)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	if _, err := b.svc.Bulk(ctx(t), q, queue.BulkDelete, queue.BulkParams{IDs: many}); !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Errorf("1001 ids: %v", err)
	}
}

func testBulkFilter(t *testing.T, b *jq) {
	q := qname(t)
	var group1 []string
	for i := 0; i < 30; i++ {
		id := enqueue(t, b, q, backend.EnqueueParams{MaxAttempts: 1, Data: json.RawMessage(fmt.Sprintf(`{"group":%d}`, i%3))})
		if i%3 == 1 {
			group1 = append(group1, id)
		}
		b.clock.Advance(time.Millisecond)
	}
	for _, j := range claim(t, b, q, 30) {
		must(t, b.Fail(ctx(t), backend.FailParams{ID: j.ID, Lease: j.Lease, Error: backend.JobError{Message: "x"}}))
	}
	f, _ := backend.ParseFilter([]byte(`{"group":1}`))
	failed := []backend.JobStatus{backend.StatusFailed}
	if n := bulk(t, b, q, queue.BulkRetry, queue.BulkParams{Statuses: failed, Filter: f}); n != 10 {
		t.Fatalf("retry of group 1 affected %d, want 10", n)
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Pending != 10 || st.Failed != 20 {
		t.Fatalf("stats after retrying group 1: %+v", st)
	}
	pending := findAll(t, b.svc, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusPending}})
	wantIDs(t, "retried", pending, sorted(t, b, group1, backend.SortRunAt, false))
	// A status the action does not take is refused, and changes nothing.
	if _, err := b.svc.Bulk(ctx(t), q, queue.BulkRetry, queue.BulkParams{Statuses: []backend.JobStatus{backend.StatusPending}}); !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Fatalf("retry of pending jobs: %v", err)
	}
	if _, err := b.svc.Bulk(ctx(t), q, queue.BulkDelete, queue.BulkParams{Statuses: []backend.JobStatus{backend.StatusProcessing}}); !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Fatalf("delete of processing jobs: %v", err)
	}
	if n := bulk(t, b, q, queue.BulkCancel, queue.BulkParams{Statuses: []backend.JobStatus{backend.StatusPending, backend.StatusProcessing}}); n != 10 {
		t.Fatalf("cancel of every active job affected %d", n)
	}
	if n := bulk(t, b, q, queue.BulkDelete, queue.BulkParams{Statuses: []backend.JobStatus{backend.StatusFailed, backend.StatusCancelled}}); n != 30 {
		t.Fatalf("delete of failed and cancelled jobs affected %d", n)
	}
	st, err = b.Stats(ctx(t), q)
	must(t, err)
	if st != (backend.QueueStats{Queue: q}) {
		t.Fatalf("stats after deleting everything: %+v", st)
	}
}

func testBulkBudget(t *testing.T, b *jq) {
	q := qname(t)
	enqueueN(t, b, q, 40)
	// A walk of 7 jobs per step and no time to spare: one step per call.
	svc := tuned(b, queue.Config{FindScan: 7, BulkBudget: time.Nanosecond})
	total, calls := 0, 0
	for {
		r, err := svc.Bulk(ctx(t), q, queue.BulkCancel, queue.BulkParams{Statuses: []backend.JobStatus{backend.StatusPending}})
		must(t, err)
		total += r.Affected
		calls++
		if !r.More {
			break
		}
		if calls > 40 {
			t.Fatal("bulk never ends")
		}
	}
	if total != 40 || calls < 2 {
		t.Fatalf("cancelled %d jobs in %d calls, want 40 in several", total, calls)
	}
}

func testBulkDeleteKey(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{Key: "only"})
	if again := enqueue(t, b, q, backend.EnqueueParams{Key: "only"}); again != id {
		t.Fatal("key not held")
	}
	if n := bulk(t, b, q, queue.BulkDelete, queue.BulkParams{IDs: []string{id}}); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	if fresh := enqueue(t, b, q, backend.EnqueueParams{Key: "only"}); fresh == id {
		t.Fatal("a deleted job still holds its key")
	}
	j := dequeue(t, b, q, backend.DequeueParams{})
	if j == nil || j.ID == id {
		t.Fatalf("dequeue after delete: %+v", j)
	}
}

func testUpdateJob(t *testing.T, b *jq) {
	q := qname(t)
	now := b.now()
	a := enqueue(t, b, q, backend.EnqueueParams{Data: json.RawMessage(`{"v":1}`)})
	c := enqueue(t, b, q, backend.EnqueueParams{})
	// Reschedule a into the future: c comes first, a not before its time.
	later := now.Add(time.Hour)
	j, err := b.svc.UpdateJob(ctx(t), a, queue.JobPatch{RunAt: &later})
	must(t, err)
	if !j.RunAt.Equal(later) || j.Status != backend.StatusPending || j.Lease != "" {
		t.Fatalf("rescheduled job %+v", j)
	}
	got := dequeue(t, b, q, backend.DequeueParams{})
	if got == nil || got.ID != c {
		t.Fatalf("dequeue after rescheduling: %+v", got)
	}
	if more := dequeue(t, b, q, backend.DequeueParams{}); more != nil {
		t.Fatalf("a job rescheduled an hour ahead was claimed: %+v", more)
	}
	// Back to now, with new data: claimable at once.
	_, err = b.svc.UpdateJob(ctx(t), a, queue.JobPatch{RunAt: &now, Data: json.RawMessage(`{"v":2}`)})
	must(t, err)
	got = dequeue(t, b, q, backend.DequeueParams{})
	if got == nil || got.ID != a || !sameJSON(t, got.Data, `{"v":2}`) {
		t.Fatalf("dequeue after moving back: %+v", got)
	}
	// Reprioritise: the later job jumps ahead.
	if b.caps.Priorities {
		q2 := qname(t)
		first := enqueue(t, b, q2, backend.EnqueueParams{})
		second := enqueue(t, b, q2, backend.EnqueueParams{RunAt: now.Add(time.Millisecond)})
		b.clock.Advance(time.Second)
		p := 5
		j, err := b.svc.UpdateJob(ctx(t), second, queue.JobPatch{Priority: &p})
		must(t, err)
		if j.Priority != 5 {
			t.Fatalf("reprioritised job %+v", j)
		}
		if got := dequeue(t, b, q2, backend.DequeueParams{}); got == nil || got.ID != second {
			t.Fatalf("claim after reprioritising: %+v, want %s before %s", got, second, first)
		}
	}
	// A long poll sleeping until the job's old runAt wakes for its new one.
	q3 := qname(t)
	far := enqueue(t, b, q3, backend.EnqueueParams{RunAt: b.now().Add(time.Hour)})
	res := make(chan *backend.Job, 1)
	go func() {
		jobs, _ := b.svc.Dequeue(ctx(t), q3, backend.DequeueParams{Wait: 10 * time.Second})
		if len(jobs) > 0 {
			res <- jobs[0]
		}
		close(res)
	}()
	time.Sleep(100 * time.Millisecond)
	soon := b.now()
	_, err = b.svc.UpdateJob(ctx(t), far, queue.JobPatch{RunAt: &soon})
	must(t, err)
	select {
	case j := <-res:
		if j == nil || j.ID != far {
			t.Fatalf("long poll after rescheduling: %+v", j)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a long poll was not woken by a job moved to now")
	}
}

func testUpdateJobRefusals(t *testing.T, b *jq) {
	q := qname(t)
	id := enqueue(t, b, q, backend.EnqueueParams{})
	p := 1
	_, err := b.svc.UpdateJob(ctx(t), "missing-job", queue.JobPatch{Priority: &p})
	wantCode(t, err, backend.CodeNotFound)
	_, err = b.svc.UpdateJob(ctx(t), id, queue.JobPatch{})
	wantCode(t, err, backend.CodeInvalidArgument)
	early := backend.MinRunAt.Add(-time.Millisecond)
	_, err = b.svc.UpdateJob(ctx(t), id, queue.JobPatch{RunAt: &early})
	wantCode(t, err, backend.CodeInvalidArgument)
	huge := 1 << 40
	_, err = b.svc.UpdateJob(ctx(t), id, queue.JobPatch{Priority: &huge})
	wantCode(t, err, backend.CodeInvalidArgument)
	j := dequeue(t, b, q, backend.DequeueParams{})
	zero := 0
	_, err = b.svc.UpdateJob(ctx(t), id, queue.JobPatch{Priority: &zero})
	wantCode(t, err, backend.CodeConflict)
	must(t, b.Acknowledge(ctx(t), j.ID, j.Lease))
	_, err = b.svc.UpdateJob(ctx(t), id, queue.JobPatch{Data: json.RawMessage(`1`)})
	wantCode(t, err, backend.CodeConflict)
	if got := getJob(t, b, id); got.Status != backend.StatusCompleted || !sameJSON(t, got.Data, `{"n":1}`) {
		t.Fatalf("a refused edit changed the job: %+v", got)
	}
}

func testQueuesOverview(t *testing.T, b *jq) {
	q := qname(t)
	mixedQueue(t, b, q)
	paused := qname(t)
	must(t, b.svc.Pause(ctx(t), paused))
	scheduled := qname(t)
	if b.caps.Schedules {
		_, err := b.svc.PutSchedule(ctx(t), scheduled, "every-hour", backend.ScheduleSpec{EveryMs: 3_600_000})
		must(t, err)
		_, err = b.svc.PutSchedule(ctx(t), scheduled, "nightly", backend.ScheduleSpec{Cron: "0 3 * * *"})
		must(t, err)
	}
	list, err := b.svc.Queues(ctx(t))
	must(t, err)
	by := map[string]queue.Overview{}
	var names []string
	for _, o := range list {
		by[o.Queue] = o
		names = append(names, o.Queue)
	}
	if !slices.IsSorted(names) {
		t.Fatalf("queues not by name: %v", names)
	}
	o, ok := by[q]
	if !ok {
		t.Fatalf("queue %s with jobs is not listed", q)
	}
	want := backend.QueueStats{Queue: q, Pending: 4, Processing: 1, Completed: 2, Failed: 1, Cancelled: 1}
	if o.Stats != want {
		t.Fatalf("overview stats %+v, want %+v", o.Stats, want)
	}
	if o.Settings == nil || o.Settings.Paused || o.LastHour == nil {
		t.Fatalf("overview %+v", o)
	}
	sum := func(v []int64) (n int64) {
		for _, x := range v {
			n += x
		}
		return n
	}
	if len(o.LastHour.Completed) != 12 || sum(o.LastHour.Completed) != 2 || sum(o.LastHour.Failed) != 1 || o.LastHour.BucketMs != 300_000 {
		t.Fatalf("last hour %+v, want 2 completed and 1 failed in 12 windows", o.LastHour)
	}
	if last := o.LastHour.Completed[11]; last != 2 {
		t.Fatalf("jobs completed just now are not in the last window: %v", o.LastHour.Completed)
	}
	if p, ok := by[paused]; !ok || p.Settings == nil || !p.Settings.Paused || !p.Stats.Paused {
		t.Fatalf("a paused queue without jobs: %+v (listed %v)", p, ok)
	}
	if b.caps.Schedules {
		if s, ok := by[scheduled]; !ok || s.Schedules != 2 {
			t.Fatalf("a queue with two schedules: %+v (listed %v)", s, ok)
		}
	}
	// A queue whose jobs are all gone, without settings, is not listed.
	gone := qname(t)
	id := enqueue(t, b, gone, backend.EnqueueParams{})
	bulk(t, b, gone, queue.BulkDelete, queue.BulkParams{IDs: []string{id}})
	list, err = b.svc.Queues(ctx(t))
	must(t, err)
	for _, o := range list {
		if o.Queue == gone {
			t.Fatalf("a queue without jobs, settings or schedules is listed: %+v", o)
		}
	}
}
