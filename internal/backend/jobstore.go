package backend

import (
	"context"
	"time"

	json "github.com/goccy/go-json"
)

// JobStore is the narrow port a job queue adapter implements (DESIGN §6).
// It keeps jobs and applies state changes atomically; it decides nothing.
// Validation, defaults, the retry-or-dead-letter decision, backoff, the
// words of every refusal, long polls and the coalescing of concurrent
// calls belong to the queue service (package queue), written once above
// every store.
//
// Time: every params struct carries Now. A zero Now means "the store's
// own clock": PostgreSQL's and Redis's, so that daemons sharing them agree
// on leases and run times; the process clock for memory and SQLite. The
// conformance suite passes a clock it moves itself, so no test sleeps for
// a lease to run out.
//
// Errors: methods return nil or an *Error (translated at the store's edge:
// CodeUnavailable for a lost or busy database, CodeInternal otherwise).
// Per-job outcomes (a stale lease, an unknown id) are results, not errors.
type JobStore interface {
	// Insert adds jobs to one queue in one atomic step. A job whose Key
	// is held by an active (pending or processing) job of the queue is not
	// added: its result names the holder; so do repeats of a key within
	// one call. Shared stores wake long polls of every process at commit.
	Insert(ctx context.Context, p InsertParams) ([]Inserted, error)
	// Claim claims up to p.Max ready jobs of p.Queue in claim order
	// (priority descending, then runAt, then id): pending jobs that are
	// due, and processing jobs whose lease has expired. Expired claims
	// whose attempts are spent are failed with p.Expired instead. Each
	// claimed job counts an attempt and gets a lease made unique from
	// p.Token (Job.Lease).
	Claim(ctx context.Context, p ClaimParams) (Claimed, error)
	// Settle applies state changes to jobs, each on its own: an item whose
	// precondition does not hold changes nothing and reports the job's
	// state instead. The ids of one call are distinct.
	Settle(ctx context.Context, p SettleParams) ([]Settled, error)
	// Get returns the jobs with these ids, in order, nil for a missing
	// one. Job.Lease is the current (or last) claim's token: the service
	// needs it, callers of the API never see it.
	Get(ctx context.Context, ids []string) ([]*Job, error)
	// Stats counts the jobs of each queue by status, in the order asked.
	Stats(ctx context.Context, queues []string) ([]QueueStats, error)
	// ListFailed pages through a queue's dead letters, newest first.
	ListFailed(ctx context.Context, queue string, p ListParams) ([]*Job, error)
	// DeleteFinished deletes finished jobs (purge and retention pruning)
	// and returns how many, in steps small enough not to stall the store.
	DeleteFinished(ctx context.Context, p DeleteParams) (int, error)
	// Watch registers the functions that wake long polls. Stores shared
	// by several processes call w.Ready when another process may have
	// made a job of queue ready, w.Finished when it may have finished one
	// (completed, failed, cancelled), and both with "" (every queue) when
	// notifications may have been lost. Local changes are the service's
	// to announce. Called once, before any other method.
	Watch(w Watcher)
	// PollInterval bounds a long poll's sleep without a wake-up: 0 when
	// Watch sees every change (one process owns the store), else how often
	// to look again in case a notification was lost.
	PollInterval() time.Duration
	Ping(ctx context.Context) error
	Close() error
}

// WaitingClaimer is a JobStore whose claim itself can wait for a job,
// for stores that hear of no other process's inserts (Watch never fires)
// but whose server can hold a request open until a message comes: SQS's
// long polling. Asking again every PollInterval instead would cost one
// request per waiting poll and interval, and a job enqueued through
// another daemon would wait up to an interval. When the store implements
// it, the service's long polls (DequeueParams.Wait > 0) claim through
// ClaimWait instead of sleeping between Claims.
type WaitingClaimer interface {
	// ClaimWait is Claim that, when no job is ready, waits up to wait
	// (the store rounds it down to what its server takes, at most
	// MaxClaimWait; the service asks only for MinClaimWait or more) and
	// returns as soon as it has claimed some. It
	// returns no jobs and no error when none came. ctx ending cuts the
	// wait; what the store claimed before that is returned, never
	// dropped, so that the service can release it.
	ClaimWait(ctx context.Context, p ClaimParams, wait time.Duration) (Claimed, error)
}

// LeaseGetter is a JobStore that can read a claim's job from its lease
// where Get by id cannot: SQS, whose lease tokens carry the claim. The
// service's fail decision (attempts left, backoff) uses it when present,
// so that a claim can be failed through any daemon.
type LeaseGetter interface {
	// GetByLease returns the job of each lease's claim, in order, nil
	// where neither the store nor the token knows it.
	GetByLease(ctx context.Context, refs []LeaseRef) ([]*Job, error)
}

// MaxClaimWait bounds one ClaimWait: SQS holds a receive open 20 s at
// most. A longer long poll makes several calls.
const MaxClaimWait = 20 * time.Second

// MinClaimWait is the shortest wait worth a waiting claim (SQS counts
// whole seconds); a long poll with less time left claims and sleeps as on
// other stores.
const MinClaimWait = time.Second

// ClaimWaitSlack is the moment by which a ClaimWait may outlast the wait
// asked, and the rest of a long poll not worth another call after one.
const ClaimWaitSlack = 100 * time.Millisecond

// Watcher is what a shared store calls when another process changed jobs.
type Watcher struct {
	Ready    func(queue string)
	Finished func(queue string)
}

// NewJob is one job to insert, validated and resolved by the service.
type NewJob struct {
	ID          string
	Data        json.RawMessage
	Priority    int
	MaxAttempts int
	Backoff     Backoff
	Key         string // "" for none
	// Hold and Period extend what holds Key beyond the active jobs of
	// the queue (backend.Unique): the last job enqueued with the key
	// holds it while its status is in Hold or it is younger than Period.
	// Mode is what a duplicate does to a pending holder: replace sets its
	// data and runAt to this job's, debounce its runAt.
	Hold   HoldMask
	Period time.Duration
	Mode   UniqueMode
	// RunAt is when the job becomes ready if HasRunAt, else Delay after
	// the store's now (RunAt's zero value is a valid date: year 1).
	RunAt    time.Time
	HasRunAt bool
	Delay    time.Duration
	// Timeout and Trace are kept with the job (Job.TimeoutMs,
	// Job.Traceparent); zero and "" for none.
	Timeout time.Duration
	Trace   string
}

// InsertParams insert jobs into one queue.
type InsertParams struct {
	Queue string
	Jobs  []NewJob
	Now   time.Time
}

// Inserted is the outcome of one NewJob: its own id, or the id of the
// active job that holds its key (Deduplicated).
type Inserted struct {
	ID           string
	Deduplicated bool
}

// ClaimParams claim jobs of one queue.
type ClaimParams struct {
	Queue string
	Max   int
	Lease time.Duration
	// Token is fresh for every call; the store derives each claim's
	// lease from it so that no two claims ever share one.
	Token string
	// Expired is the lastError of a claim failed because its lease ran
	// out with no attempts left.
	Expired JobError
	Now     time.Time
}

// Claimed is what a claim got: jobs in claim order, each with its Lease,
// and, when fewer than Max were ready, how long until the queue's next
// scheduled job or lease expiry (0: unknown or none). A store may leave
// Next unknown when it claimed some jobs (PostgreSQL does: it would cost
// another statement); the service looks again at once in that case.
type Claimed struct {
	Jobs []*Job
	Next time.Duration
	// Limited says the queue's flow control (FlowStore) held jobs back:
	// it is paused or at its concurrency or rate. The service then wakes
	// the queue's polls when one of its jobs finishes here.
	Limited bool
}

// SettleKind names a state change of Settle and its precondition.
type SettleKind int

const (
	// Complete settles processing under Lease → completed.
	Complete SettleKind = iota + 1
	// Retry settles processing under Lease → pending at now+Delay, with Error.
	Retry
	// Fail settles processing under Lease → failed, with Error.
	Fail
	// Extend keeps processing under Lease; the lease ends at now+Delay (Delay 0:
	// the claim's own lease length).
	Extend
	// Release settles processing under Lease → pending at its old runAt, the
	// claim's attempt not counted.
	Release
	// Cancel settles pending or processing (any lease) → cancelled.
	Cancel
	// Revive settles failed or cancelled → pending now, attempts back to 0, as
	// long as no other active job holds its key.
	Revive
	// Progress keeps processing under Lease: progress is Value, and the lease
	// ends at now+Delay as with Extend.
	Progress
)

// Finishes reports whether a change of this kind ends a job (completed,
// failed or cancelled): what POST /v1/jobs/{id}/wait waits for.
func (k SettleKind) Finishes() bool { return k == Complete || k == Fail || k == Cancel }

// SettleItem is one state change.
type SettleItem struct {
	Kind  SettleKind
	ID    string
	Lease string
	Delay time.Duration
	Error *JobError
	// Value is the result of Complete (nil: none) and the progress of
	// Progress, as valid JSON.
	Value json.RawMessage
}

// SettleParams are the changes of one Settle call.
type SettleParams struct {
	Items []SettleItem
	// Drop deletes the jobs that Complete items complete, in the same
	// atomic step, instead of keeping them completed: a completed-job
	// retention of 0 (STORAGED_RETENTION_COMPLETED=0). Their results are
	// not kept, and they leave no completed event. Stores that never keep
	// completed jobs (SQS) ignore it.
	Drop bool
	Now  time.Time
}

// Settled is the outcome of one SettleItem: Applied, or the state that
// kept it from applying (Found false: no such job). Queue is the job's
// queue whenever it was found. KeyHolder is the job that holds the key a
// Revive needed.
type Settled struct {
	Applied   bool
	Found     bool
	Queue     string
	Status    JobStatus
	Lease     string
	KeyHolder string
	// Trace is an applied job's Traceparent, for the span of the call
	// that settled it.
	Trace string
}

// DeleteParams select finished jobs to delete: those of Queue ("" for
// every queue) whose status is one of Statuses and that finished before
// Before (zero: whenever).
type DeleteParams struct {
	Queue    string
	Statuses []JobStatus
	Before   time.Time
}

// LeaseExpired is the lastError of a job whose last attempt's lease ran
// out before it was acknowledged.
var LeaseExpired = JobError{Name: "LeaseExpired", Message: "the lease of the last attempt expired before the job was acknowledged"}

// NowOr returns now, or the process clock when now is zero: the clock of
// the stores that have no clock of their own.
func NowOr(now time.Time) time.Time {
	if now.IsZero() {
		return Now()
	}
	return now.UTC().Truncate(time.Millisecond)
}

// TxJobStore is a JobStore whose jobs can be written inside a transaction
// of a records backend that lives in the same database (DESIGN §4,
// transactional jobs): memory with memory, SQLite on the same file,
// PostgreSQL on the same database. What the writer does then commits or
// rolls back with the records; nobody sees it before commit.
type TxJobStore interface {
	JobStore
	// SharesDatabase reports whether transactions of records (which may
	// be a decorator: see UnwrapRepository) reach this store's jobs.
	// Asked once, at start.
	SharesDatabase(records RepositoryBackend) bool
	// InTx returns the store's writes bound to tx, a transaction of a
	// records backend that SharesDatabase accepted. Errors:
	// invalid_argument (tx is not of such a backend), tx_not_found (tx
	// has ended).
	InTx(tx Tx) (JobWriter, error)
}

// JobWriter is what a transaction may do to jobs: insert them and settle
// claims, as JobStore's methods of the same names. A change of a job made
// in an open transaction holds that job (or, for an insert, its dedupe
// key) until the transaction ends: other writers wait for it, claims pass
// over it.
type JobWriter interface {
	Insert(ctx context.Context, p InsertParams) ([]Inserted, error)
	Settle(ctx context.Context, p SettleParams) ([]Settled, error)
}

// UnwrapRepository returns the backend under any decorators of b (the
// read cache), which is the one that knows its database.
func UnwrapRepository(b RepositoryBackend) RepositoryBackend {
	for {
		u, ok := b.(interface{ Unwrap() RepositoryBackend })
		if !ok {
			return b
		}
		b = u.Unwrap()
	}
}

// UnwrapTx returns the transaction under any decorators of tx.
func UnwrapTx(tx Tx) Tx {
	for {
		u, ok := tx.(interface{ Unwrap() Tx })
		if !ok {
			return tx
		}
		tx = u.Unwrap()
	}
}
