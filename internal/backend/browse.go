package backend

import (
	"context"
	"encoding/base64"
	"time"

	json "github.com/goccy/go-json"
)

// Browsing jobs (issue 20): the API behind the dashboard finds the jobs of
// a queue by status, key and data, keyset-paged in a time order, changes
// them in bulk (retry, cancel, delete) and edits a pending one. The queue
// service owns the rules (what may be sorted how, which statuses an action
// takes, the merge of per-status walks into one page); stores walk one
// status of one queue in one order along an index and apply the changes.

// JobSort names the time a find orders jobs by.
type JobSort string

// The orders of a find.
const (
	SortCreatedAt  JobSort = "createdAt"
	SortRunAt      JobSort = "runAt"
	SortFinishedAt JobSort = "finishedAt"
)

// JobPos is a job's place in a walk: its sort time and its id (the
// tie-break, in the walk's direction).
type JobPos struct {
	At time.Time
	ID string
}

// Before reports whether p comes before o in a walk ordered ascending, or
// descending when desc is set.
func (p JobPos) Before(o JobPos, desc bool) bool {
	if !p.At.Equal(o.At) {
		return p.At.Before(o.At) != desc
	}
	if p.ID == o.ID {
		return false
	}
	return (p.ID < o.ID) != desc
}

// PosOf is the place of j in a walk by sort (a finishedAt walk only ever
// sees finished jobs, which have one).
func PosOf(j *Job, sort JobSort) JobPos {
	at := j.CreatedAt
	switch sort {
	case SortRunAt:
		at = j.RunAt
	case SortFinishedAt:
		if j.FinishedAt != nil {
			at = *j.FinishedAt
		}
	}
	return JobPos{At: at, ID: j.ID}
}

// JobWalk is one walk of a store: the jobs of Queue in Status (and with
// Key, if set) after After in the order of Sort (descending if Desc, the
// id breaking ties in the same direction), keeping those whose data
// matches Filter. The walk stops when it has Limit matches or has
// examined Scan jobs, whichever comes first.
type JobWalk struct {
	Queue  string
	Status JobStatus
	// Priority, if set, keeps the pending jobs of that priority only
	// (stores that are PendingPriorities).
	Priority *int
	Key      string
	Filter   Filter
	Sort     JobSort
	Desc     bool
	After    *JobPos
	Limit    int
	Scan     int
}

// Walked is what a walk found: the matching jobs in walk order, and Cut,
// the place of the last job it examined when it stopped before the end of
// the walk (nil when it reached the end): every job up to Cut was looked
// at, none after it.
type Walked struct {
	Jobs []*Job
	Cut  *JobPos
}

// UpdateJobParams change a pending job (PATCH /v1/jobs/{id}); nil fields
// stay as they are.
type UpdateJobParams struct {
	ID       string
	RunAt    *time.Time
	Priority *int
	Data     json.RawMessage
	Now      time.Time
}

// ActivityParams count the jobs of each queue that finished as completed
// or failed in Buckets consecutive windows of Bucket ending at Until.
type ActivityParams struct {
	Queues  []string
	Until   time.Time
	Bucket  time.Duration
	Buckets int
}

// Since is when the first window starts.
func (p ActivityParams) Since() time.Time { return p.Until.Add(-p.Bucket * time.Duration(p.Buckets)) }

// BucketOf is the window a finish time falls in, -1 outside them all.
func (p ActivityParams) BucketOf(t time.Time) int {
	since := p.Since()
	if t.Before(since) || !t.Before(p.Until) {
		return -1
	}
	return int(t.Sub(since) / p.Bucket)
}

// Activity is one queue's finished jobs per window, oldest first.
type Activity struct {
	Queue     string  `json:"-"`
	Since     string  `json:"since"`
	BucketMs  int64   `json:"bucketMs"`
	Completed []int64 `json:"completed"`
	Failed    []int64 `json:"failed"`
}

// ListedQueue is a queue a store knows: one with jobs, settings or
// schedules, and how many schedules it has.
type ListedQueue struct {
	Queue     string
	Schedules int
}

// QueueLister is a job store that can list its queues. Every store of
// storaged implements it.
type QueueLister interface {
	// Queues lists, by name, every queue that has jobs (of any status),
	// flow control settings or schedules.
	Queues(ctx context.Context) ([]ListedQueue, error)
}

// BrowseStore is a job store whose jobs can be found and changed by queue
// (capability Browse). Every store but SQS implements it.
type BrowseStore interface {
	// FindJobs walks one status of one queue (JobWalk), along an index:
	// never more than Scan jobs.
	FindJobs(ctx context.Context, w JobWalk) (Walked, error)
	// DeleteJobs deletes the jobs of queue with these ids that are not
	// processing (a claim in flight must be cancelled first), each on its
	// own; an outcome per id, in order (Settled.Applied: deleted; else
	// Found and Status say why not). A deleted job's dedupe key is free.
	DeleteJobs(ctx context.Context, queue string, ids []string) ([]Settled, error)
	// UpdateJob changes a pending job: Applied, or the job's state (Found
	// false: no such job). A new runAt moves the job in the claim order
	// at once and wakes the long polls of its queue on every daemon.
	UpdateJob(ctx context.Context, p UpdateJobParams) (Settled, error)
	// Activity counts finished jobs per window (ActivityParams), one
	// Activity per queue in order.
	Activity(ctx context.Context, p ActivityParams) ([]Activity, error)
}

// PendingPriorities is a browse store that walks pending jobs by runAt
// along its claim index, which orders them by priority first: the service
// walks each priority the queue's pending jobs have (JobWalk.Priority)
// and merges the walks, so that pending jobs need no index of their own
// (an entry per enqueue and per claim on the queue's hot path).
type PendingPriorities interface {
	// PendingPriorities lists the distinct priorities of the pending jobs
	// of queue (a few index seeks, not a scan).
	PendingPriorities(ctx context.Context, queue string) ([]int, error)
}

// JobCursor is the keyset cursor of a job find: base64url of JSON
// {"s": sort, "d": desc, "t": ms, "id"}. The sort and direction are kept
// to refuse a cursor replayed with another order.
type jobCursorJSON struct {
	Sort JobSort `json:"s"`
	Desc bool    `json:"d"`
	At   int64   `json:"t"`
	ID   string  `json:"id"`
}

// JobCursor encodes the place after which the next page starts.
func JobCursor(sort JobSort, desc bool, p JobPos) string {
	b, _ := Marshal(jobCursorJSON{Sort: sort, Desc: desc, At: p.At.UnixMilli(), ID: p.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseJobCursor reads a cursor of JobCursor made with the same order.
func ParseJobCursor(sort JobSort, desc bool, s string) (JobPos, error) {
	bad := Errorf(CodeInvalidArgument, "after is not a cursor this API gave out")
	if len(s) > 4096 {
		return JobPos{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return JobPos{}, bad
	}
	var c jobCursorJSON
	if err := json.Unmarshal(raw, &c); err != nil || ValidateID(c.ID) != nil {
		return JobPos{}, bad
	}
	if c.Sort != sort || c.Desc != desc {
		order := "asc"
		if c.Desc {
			order = "desc"
		}
		return JobPos{}, Errorf(CodeInvalidArgument, "after is a cursor of another order (sort %q, order %q); send the order it was made with", truncate(string(c.Sort)), order)
	}
	at := time.UnixMilli(c.At).UTC()
	if at.Before(MinRunAt) || at.After(MaxRunAt) {
		return JobPos{}, bad
	}
	return JobPos{At: at, ID: c.ID}, nil
}

// CollectionInfo is a collection as GET /v1/repos lists it.
type CollectionInfo struct {
	Name    string
	Indexes []IndexSpec
}

// Catalog is a records backend that can list its collections (every
// backend of storaged; the read cache lists through the backend under it).
type Catalog interface {
	// Collections lists every collection by name, with its indexes by
	// name.
	Collections(ctx context.Context) ([]CollectionInfo, error)
}
