package queue

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"go.opentelemetry.io/otel/attribute"

	"github.com/storaged/storaged/internal/backend"
)

// Browsing jobs (issue 20): find, bulk actions, edits of pending jobs and
// the overview of every queue. A find walks each status asked for through
// the store (backend.BrowseStore), each walk along an index and bounded
// by FindScan jobs, and merges the walks into one keyset page.

// Limits of finds and bulk actions.
const (
	DefaultFindLimit = 50
	MaxFindLimit     = 1000
	// DefaultFindScan bounds the jobs one walk examines, so that a filter
	// matching little on a deep queue costs a bounded call (the page then
	// comes short, its cursor saying where to go on).
	DefaultFindScan = 10_000
	// DefaultBulkBudget bounds the time a bulk action by status and
	// filter works before it answers "more": each step is one store call
	// of at most MaxSettle jobs.
	DefaultBulkBudget = 10 * time.Second
	// Activity windows of the overview: the last hour in twelve.
	activityBucket  = 5 * time.Minute
	activityBuckets = 12
)

var allStatuses = []backend.JobStatus{backend.StatusPending, backend.StatusProcessing, backend.StatusCompleted,
	backend.StatusFailed, backend.StatusCancelled}

// FindParams select and order jobs of a queue (POST /v1/queues/{q}/jobs/find).
type FindParams struct {
	// Statuses to look in; none: every status the sort orders.
	Statuses []backend.JobStatus
	// Key, if set, keeps the jobs enqueued with that dedupe key.
	Key string
	// Filter is over the job's data, in the records' filter language
	// (nil: every job).
	Filter backend.Filter
	// Sort is createdAt (processing, failed, cancelled), runAt (pending)
	// or finishedAt (completed, failed, cancelled); no status means every
	// status the sort orders. The default is runAt for pending jobs,
	// finishedAt when every status asked for is finished, else createdAt.
	Sort backend.JobSort
	// Order is "asc" or "desc"; "" is desc (newest first), except for
	// runAt, asc (due soonest first).
	Order string
	// Limit is the page size, 1-MaxFindLimit (0: DefaultFindLimit).
	Limit int
	// After is the previous page's Next.
	After string
}

// FoundJobs is one page: Next is nil after the last page. A page may hold
// fewer jobs than the limit, even none, while Next is set: the walks
// stopped at their scan bound before filling it.
type FoundJobs struct {
	Jobs []*backend.Job `json:"jobs"`
	Next *string        `json:"next"`
}

// browseStore is the store's browse part, or the refusal naming what it
// lacks.
func (s *Service) browseStore() (backend.BrowseStore, error) {
	b, ok := s.store.(backend.BrowseStore)
	if c := backend.CapabilitiesOf(s.store); !ok || !c.Browse {
		return nil, backend.Errorf(backend.CodeInvalidArgument,
			"finding, bulk changes and edits of jobs are not available on the %s job queue: %s cannot list a queue's jobs (see capabilities in GET /v1/info)", c.Name, c.Name)
	}
	return b, nil
}

// ValidateStatuses checks a list of statuses (no repeats), which may only
// take some.
func validateStatuses(list []backend.JobStatus, allowed []backend.JobStatus, what string) error {
	seen := map[backend.JobStatus]bool{}
	for _, st := range list {
		if !slices.Contains(allStatuses, st) {
			return backend.Errorf(backend.CodeInvalidArgument, "status %q is not one of pending, processing, completed, failed, cancelled", truncate(string(st)))
		}
		if !slices.Contains(allowed, st) {
			if strings.HasPrefix(what, "sort ") {
				switch st {
				case backend.StatusCompleted:
					return backend.Errorf(backend.CodeInvalidArgument, "completed jobs are ordered by finishedAt only: sort finishedAt, or leave completed out")
				case backend.StatusPending:
					return backend.Errorf(backend.CodeInvalidArgument, "pending jobs are ordered by runAt only: sort runAt, or leave pending out")
				}
			}
			return backend.Errorf(backend.CodeInvalidArgument, "%s takes only %s jobs, not %s", what, statusList(allowed), st)
		}
		if seen[st] {
			return backend.Errorf(backend.CodeInvalidArgument, "status %q appears twice", st)
		}
		seen[st] = true
	}
	return nil
}

func statusList(sts []backend.JobStatus) string {
	out := ""
	for i, st := range sts {
		switch {
		case i == 0:
		case i == len(sts)-1:
			out += " or "
		default:
			out += ", "
		}
		out += string(st)
	}
	return out
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func validateKey(key string) error {
	if key == "" {
		return nil
	}
	if len(key) > backend.MaxKeyLength {
		return backend.Errorf(backend.CodeInvalidArgument, "key must be at most %d bytes", backend.MaxKeyLength)
	}
	if err := backend.ValidateID(key); err != nil {
		return backend.Errorf(backend.CodeInvalidArgument, "key: %s", backend.AsError(err).Message)
	}
	return nil
}

// findPlan is a validated find.
type findPlan struct {
	queue    string
	statuses []backend.JobStatus
	key      string
	filter   backend.Filter
	sort     backend.JobSort
	desc     bool
	limit    int
	after    *backend.JobPos
}

// sortable is what each sort orders, and so what a find with that sort
// looks in when it names no status. Every order is an index a store keeps
// per status, and the indexes cost the queue's hot path as little as can
// be: pending jobs (the deep end of a queue) are ordered by runAt only,
// completed ones (a day of them) by finishedAt only, so that an enqueue,
// a claim and an acknowledgement each add at most one index entry for
// browsing. createdAt orders the claims in flight (few) and the failed
// and cancelled jobs (indexed when they fail or are cancelled).
var sortable = map[backend.JobSort][]backend.JobStatus{
	backend.SortCreatedAt:  {backend.StatusProcessing, backend.StatusFailed, backend.StatusCancelled},
	backend.SortRunAt:      {backend.StatusPending},
	backend.SortFinishedAt: {backend.StatusCompleted, backend.StatusFailed, backend.StatusCancelled},
}

// Sortable is the statuses a sort orders.
func Sortable(sort backend.JobSort) []backend.JobStatus { return slices.Clone(sortable[sort]) }

// naturalSort is a find's sort when it names none: runAt for pending
// jobs, finishedAt when every status asked for is finished, else
// createdAt.
func naturalSort(statuses []backend.JobStatus) backend.JobSort {
	if len(statuses) == 1 && statuses[0] == backend.StatusPending {
		return backend.SortRunAt
	}
	if len(statuses) == 0 {
		return backend.SortCreatedAt
	}
	for _, st := range statuses {
		if !st.Finished() {
			return backend.SortCreatedAt
		}
	}
	return backend.SortFinishedAt
}

func planFind(queue string, p FindParams) (findPlan, error) {
	f := findPlan{queue: queue, key: p.Key, filter: p.Filter, sort: p.Sort, limit: p.Limit}
	if err := backend.ValidateName("queue", queue); err != nil {
		return f, err
	}
	if f.sort == "" {
		f.sort = naturalSort(p.Statuses)
	}
	allowed, ok := sortable[f.sort]
	if !ok {
		return f, backend.Errorf(backend.CodeInvalidArgument, `sort must be "createdAt", "runAt" or "finishedAt"`)
	}
	if err := validateStatuses(p.Statuses, allowed, "sort "+string(f.sort)); err != nil {
		return f, err
	}
	f.statuses = p.Statuses
	if len(f.statuses) == 0 {
		f.statuses = allowed
	}
	switch p.Order {
	case "":
		f.desc = f.sort != backend.SortRunAt
	case "asc", "desc":
		f.desc = p.Order == "desc"
	default:
		return f, backend.Errorf(backend.CodeInvalidArgument, `order must be "asc" or "desc"`)
	}
	if f.limit == 0 {
		f.limit = DefaultFindLimit
	}
	if f.limit < 1 || f.limit > MaxFindLimit {
		return f, backend.Errorf(backend.CodeInvalidArgument, "limit must be between 1 and %d", MaxFindLimit)
	}
	if err := validateKey(f.key); err != nil {
		return f, err
	}
	if f.filter == nil {
		f.filter = backend.MatchAll
	}
	if p.After != "" {
		pos, err := backend.ParseJobCursor(f.sort, f.desc, p.After)
		if err != nil {
			return f, err
		}
		f.after = &pos
	}
	return f, nil
}

// FindJobs pages through a queue's jobs.
func (s *Service) FindJobs(ctx context.Context, queue string, p FindParams) (out FoundJobs, err error) {
	ctx, done := s.observe(ctx, "findJobs", attribute.String("queue", queue))
	defer func() { done(err) }()
	f, err := planFind(queue, p)
	if err != nil {
		return out, err
	}
	b, err := s.browseStore()
	if err != nil {
		return out, err
	}
	return s.find(ctx, b, f)
}

// find walks each status (pending jobs of a PendingPriorities store, each
// of their priorities) and merges the walks: the page is the first
// limit jobs in order among those every walk has looked at. A walk that
// stopped early (Cut) saw nothing after its cut, so nothing after the
// earliest cut can be shown yet; the next page starts there.
func (s *Service) find(ctx context.Context, b backend.BrowseStore, f findPlan) (FoundJobs, error) {
	out := FoundJobs{Jobs: []*backend.Job{}}
	var frontier *backend.JobPos
	var all []*backend.Job
	seen := map[string]bool{}
	var walks []backend.JobWalk
	for _, st := range f.statuses {
		w := backend.JobWalk{Queue: f.queue, Status: st, Key: f.key, Filter: f.filter, Sort: f.sort,
			Desc: f.desc, After: f.after, Limit: f.limit + 1, Scan: s.findScan}
		pp, ok := b.(backend.PendingPriorities)
		if st != backend.StatusPending || !ok {
			walks = append(walks, w)
			continue
		}
		prios, err := pp.PendingPriorities(ctx, f.queue)
		if err != nil {
			return out, err
		}
		for _, prio := range prios {
			w.Priority = &prio
			walks = append(walks, w)
		}
	}
	for _, walk := range walks {
		w, err := b.FindJobs(ctx, walk)
		if err != nil {
			return out, err
		}
		if w.Cut != nil && (frontier == nil || w.Cut.Before(*frontier, f.desc)) {
			c := *w.Cut
			frontier = &c
		}
		for _, j := range w.Jobs {
			// A job that changed status between two walks may be in both.
			if !seen[j.ID] {
				seen[j.ID] = true
				all = append(all, j)
			}
		}
	}
	slices.SortFunc(all, func(a, c *backend.Job) int {
		if backend.PosOf(a, f.sort).Before(backend.PosOf(c, f.sort), f.desc) {
			return -1
		}
		return 1
	})
	if frontier != nil {
		n := 0
		for n < len(all) && !frontier.Before(backend.PosOf(all[n], f.sort), f.desc) {
			n++
		}
		all = all[:n]
	}
	var next *backend.JobPos
	switch {
	case len(all) > f.limit:
		all = all[:f.limit]
		p := backend.PosOf(all[f.limit-1], f.sort)
		next = &p
	case frontier != nil:
		next = frontier
	}
	for _, j := range all {
		j.Lease = ""
		out.Jobs = append(out.Jobs, j)
	}
	if next != nil {
		c := backend.JobCursor(f.sort, f.desc, *next)
		out.Next = &c
	}
	return out, nil
}

// BulkAction is what a bulk call does to the jobs it selects.
type BulkAction string

// The bulk calls.
const (
	BulkRetry  BulkAction = "retry"
	BulkCancel BulkAction = "cancel"
	BulkDelete BulkAction = "delete"
)

// statuses an action takes: retry brings back dead letters and cancelled
// jobs, cancel stops active ones, delete removes anything but a claim in
// flight (cancel it first, as River and BullMQ refuse to delete a running
// job).
var bulkStatuses = map[BulkAction][]backend.JobStatus{
	BulkRetry:  {backend.StatusFailed, backend.StatusCancelled},
	BulkCancel: {backend.StatusPending, backend.StatusProcessing},
	BulkDelete: {backend.StatusPending, backend.StatusCompleted, backend.StatusFailed, backend.StatusCancelled},
}

// BulkParams select the jobs of a bulk action: IDs, or Statuses with
// optional Key and Filter (as a find selects them).
type BulkParams struct {
	IDs      []string
	Statuses []backend.JobStatus
	Key      string
	Filter   backend.Filter
}

// BulkResult says how many jobs the action changed; More when it stopped
// at its time budget with jobs still selected (call again to go on).
type BulkResult struct {
	Affected int  `json:"affected"`
	More     bool `json:"more,omitempty"`
}

// Bulk retries, cancels or deletes jobs of a queue. Jobs named by id that
// are of another queue or in a status the action does not take are left
// alone (not counted), as are retries whose key another active job holds.
func (s *Service) Bulk(ctx context.Context, queue string, action BulkAction, p BulkParams) (out BulkResult, err error) {
	ctx, done := s.observe(ctx, "bulk"+string(action), attribute.String("queue", queue))
	defer func() { done(err) }()
	allowed, ok := bulkStatuses[action]
	if !ok {
		return out, backend.Errorf(backend.CodeInvalidArgument, "unknown bulk action %q", truncate(string(action)))
	}
	if err := backend.ValidateName("queue", queue); err != nil {
		return out, err
	}
	byIDs := p.IDs != nil
	switch {
	case byIDs && (p.Statuses != nil || p.Key != "" || p.Filter != nil):
		return out, backend.Errorf(backend.CodeInvalidArgument, "give ids, or status with key and filter, not both")
	case byIDs:
		if len(p.IDs) < 1 || len(p.IDs) > MaxSettle {
			return out, backend.Errorf(backend.CodeInvalidArgument, "ids holds 1 to %d ids", MaxSettle)
		}
		for i, id := range p.IDs {
			if err := backend.ValidateID(id); err != nil {
				return out, itemError(i, len(p.IDs), err)
			}
		}
	case len(p.Statuses) == 0:
		return out, backend.Errorf(backend.CodeInvalidArgument, "give ids, or status (with key and filter to narrow it): %s takes %s jobs", action, statusList(allowed))
	default:
		if err := validateStatuses(p.Statuses, allowed, string(action)); err != nil {
			return out, err
		}
		if err := validateKey(p.Key); err != nil {
			return out, err
		}
	}
	b, err := s.browseStore()
	if err != nil {
		return out, err
	}
	if byIDs {
		n, err := s.bulkIDs(ctx, b, queue, action, dedupe(p.IDs), allowed)
		return BulkResult{Affected: n}, err
	}
	deadline := time.Now().Add(s.bulkBudget)
	// Status by status, each in an order of its own that every store
	// keeps per status (pending jobs by runAt, finished ones by
	// finishedAt): the jobs an action changes leave the walk, so a call
	// that stopped at its budget starts the next where it left off.
	for _, st := range p.Statuses {
		sort := naturalSort([]backend.JobStatus{st})
		f := findPlan{queue: queue, statuses: []backend.JobStatus{st}, key: p.Key, filter: p.Filter, sort: sort, limit: MaxSettle}
		if f.filter == nil {
			f.filter = backend.MatchAll
		}
		for {
			page, err := s.find(ctx, b, f)
			if err != nil {
				return out, err
			}
			if len(page.Jobs) > 0 {
				ids := make([]string, len(page.Jobs))
				for i, j := range page.Jobs {
					ids[i] = j.ID
				}
				n, err := s.apply(ctx, b, queue, action, ids)
				out.Affected += n
				if err != nil {
					return out, err
				}
			}
			if time.Now().After(deadline) && (page.Next != nil || st != p.Statuses[len(p.Statuses)-1]) {
				out.More = true
				return out, nil
			}
			if page.Next == nil {
				break
			}
			pos, err := backend.ParseJobCursor(f.sort, f.desc, *page.Next)
			if err != nil {
				return out, err
			}
			f.after = &pos
		}
	}
	return out, nil
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// bulkIDs applies an action to the jobs named that are of the queue and
// in a status it takes (as read just before; the change itself checks
// the status again).
func (s *Service) bulkIDs(ctx context.Context, b backend.BrowseStore, queue string, action BulkAction, ids []string, allowed []backend.JobStatus) (int, error) {
	jobs, err := s.store.Get(ctx, ids)
	if err != nil {
		return 0, err
	}
	var take []string
	for _, j := range jobs {
		if j != nil && j.Queue == queue && slices.Contains(allowed, j.Status) {
			take = append(take, j.ID)
		}
	}
	if len(take) == 0 {
		return 0, nil
	}
	return s.apply(ctx, b, queue, action, take)
}

// apply makes one step of a bulk action and counts the jobs it changed.
func (s *Service) apply(ctx context.Context, b backend.BrowseStore, queue string, action BulkAction, ids []string) (int, error) {
	if action == BulkDelete {
		res, err := b.DeleteJobs(ctx, queue, ids)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, r := range res {
			if r.Applied {
				n++
			}
		}
		if n > 0 {
			// A deleted job that was waited for is gone: waits end.
			s.finish(queue)
			s.slotFreed(s, queue)
		}
		return n, nil
	}
	kind := backend.Revive
	if action == BulkCancel {
		kind = backend.Cancel
	}
	items := make([]backend.SettleItem, len(ids))
	for i, id := range ids {
		items[i] = backend.SettleItem{Kind: kind, ID: id}
	}
	res, err := s.settleRounds(ctx, s.store, [][]backend.SettleItem{items})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range res[0] {
		if !r.Applied {
			continue
		}
		n++
		if kind == backend.Cancel {
			s.finish(r.Queue)
			s.slotFreed(s, r.Queue)
		}
	}
	if n > 0 && kind == backend.Revive {
		s.wake(queue)
	}
	return n, nil
}

// JobPatch is PATCH /v1/jobs/{id}: what to change in a pending job (nil:
// unchanged).
type JobPatch struct {
	RunAt    *time.Time
	Priority *int
	Data     json.RawMessage
}

// UpdateJob reschedules, reprioritises or rewrites a pending job and
// returns it. Errors: not_found, conflict (not pending).
func (s *Service) UpdateJob(ctx context.Context, id string, p JobPatch) (job *backend.Job, err error) {
	ctx, done := s.observe(ctx, "updateJob")
	defer func() { done(err) }()
	if err := backend.ValidateID(id); err != nil {
		return nil, err
	}
	if p.RunAt == nil && p.Priority == nil && p.Data == nil {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "give runAt, priority or data to change")
	}
	if p.RunAt != nil {
		t := p.RunAt.UTC().Truncate(time.Millisecond)
		if t.Before(backend.MinRunAt) || t.After(backend.MaxRunAt) {
			return nil, backend.Errorf(backend.CodeInvalidArgument, "runAt must be between %s and %s",
				backend.MinRunAt.Format(time.RFC3339Nano), backend.MaxRunAt.Format(time.RFC3339Nano))
		}
		p.RunAt = &t
	}
	if p.Priority != nil && (*p.Priority < math.MinInt32 || *p.Priority > math.MaxInt32) {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "priority must be a 32-bit integer")
	}
	b, err := s.browseStore()
	if err != nil {
		return nil, err
	}
	if c := backend.CapabilitiesOf(s.store); p.Priority != nil && *p.Priority != 0 && !c.Priorities {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "priorities are not available on the %s job queue", c.Name)
	}
	r, err := b.UpdateJob(ctx, backend.UpdateJobParams{ID: id, RunAt: p.RunAt, Priority: p.Priority, Data: p.Data, Now: s.now()})
	if err != nil {
		return nil, err
	}
	if !r.Found {
		return nil, backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	}
	if !r.Applied {
		return nil, backend.Errorf(backend.CodeConflict, "job %q is %s; only pending jobs can be changed", id, r.Status)
	}
	s.wake(r.Queue) // its new runAt may be the queue's next event
	jobs, err := s.store.Get(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if jobs[0] == nil {
		return nil, backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	}
	jobs[0].Lease = ""
	return jobs[0], nil
}

// Overview is one queue of GET /v1/queues.
type Overview struct {
	Queue string             `json:"queue"`
	Stats backend.QueueStats `json:"stats"`
	// Settings are nil where the store keeps none (no flow control).
	Settings  *backend.QueueSettings `json:"settings"`
	Schedules int                    `json:"schedules"`
	// LastHour counts jobs completed and failed in the last hour, in
	// windows of five minutes (nil where the store cannot browse).
	LastHour *backend.Activity `json:"lastHour"`
}

// Queues lists every queue the store knows (with jobs, settings or
// schedules), by name, with its stats, settings, schedules and the last
// hour's activity.
func (s *Service) Queues(ctx context.Context) (out []Overview, err error) {
	ctx, done := s.observe(ctx, "listQueues")
	defer func() { done(err) }()
	lister, ok := s.store.(backend.QueueLister)
	if !ok {
		name := backend.CapabilitiesOf(s.store).Name
		return nil, backend.Errorf(backend.CodeInvalidArgument,
			"the list of queues is not available on the %s job queue: this store cannot list its queues (see capabilities in GET /v1/info)", name)
	}
	listed, err := lister.Queues(ctx)
	if err != nil {
		return nil, err
	}
	out = make([]Overview, len(listed))
	if len(listed) == 0 {
		return out, nil
	}
	names := make([]string, len(listed))
	for i, l := range listed {
		names[i] = l.Queue
		out[i] = Overview{Queue: l.Queue, Schedules: l.Schedules}
	}
	stats, err := s.store.Stats(ctx, names)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Stats = stats[i]
	}
	if f, ok := s.store.(backend.FlowStore); ok && backend.CapabilitiesOf(s.store).FlowControl {
		set, err := f.QueueSettings(ctx, names)
		if err != nil {
			return nil, err
		}
		for i := range out {
			st := set[i]
			out[i].Settings = &st
			out[i].Stats.Paused = st.Paused
		}
	}
	if b, err := s.browseStore(); err == nil {
		until := s.now()
		if until.IsZero() {
			until = backend.Now()
		}
		// The windows end just after now: a job finished this very
		// millisecond is in the last one.
		p := backend.ActivityParams{Queues: names, Until: until.Add(time.Millisecond), Bucket: activityBucket, Buckets: activityBuckets}
		acts, err := b.Activity(ctx, p)
		if err != nil {
			return nil, err
		}
		for i := range out {
			a := acts[i]
			a.Since = p.Since().Format(time.RFC3339Nano)
			a.BucketMs = activityBucket.Milliseconds()
			out[i].LastHour = &a
		}
	}
	return out, nil
}
