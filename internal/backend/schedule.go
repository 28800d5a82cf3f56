package backend

import (
	"bytes"
	"context"
	"time"

	json "github.com/goccy/go-json"
)

// Recurring schedules (issue 16). A schedule belongs to a queue and has a
// name; it enqueues a job into its queue at each slot of its cron
// expression (in a time zone) or of its interval. The queue service owns
// the rules (parsing, the next slot, overlap, backfill); stores keep
// schedules and fire them: one slot is fired by exactly one daemon, by a
// compare-and-set of the schedule's next slot done in the same transaction
// (or script) as the insert of its job.

// ScheduleSpec is what a client puts: when, and the job to enqueue.
type ScheduleSpec struct {
	Cron        string          `json:"cron,omitempty"`
	TZ          string          `json:"tz,omitempty"`
	EveryMs     int64           `json:"everyMs,omitempty"`
	Data        json.RawMessage `json:"data"`
	Priority    int             `json:"priority"`
	MaxAttempts int             `json:"maxAttempts"`
	Backoff     Backoff         `json:"backoff"`
	// Overlap is "skip" (no job while the schedule's previous one is
	// pending or processing) or "allow".
	Overlap string `json:"overlap"`
	// BackfillMs is how far back missed slots are caught up after
	// downtime; 0: only the latest missed slot runs.
	BackfillMs int64 `json:"backfillMs"`
}

// Overlap policies.
const (
	OverlapSkip  = "skip"
	OverlapAllow = "allow"
)

// Schedule is a stored schedule.
type Schedule struct {
	Queue string `json:"queue"`
	Name  string `json:"name"`
	ScheduleSpec
	// Next is the schedule's next slot.
	Next      time.Time  `json:"next"`
	LastJobID string     `json:"lastJobId,omitempty"`
	LastRunAt *time.Time `json:"lastRunAt,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
}

// FireParams fire one slot of a schedule: if its next slot is still Slot,
// the store inserts Jobs (none when Overlap is skip and the job LastJobID
// names is pending or processing), sets the next slot to Next and the
// last job to the last of Jobs, all in one atomic step.
type FireParams struct {
	Queue string
	Name  string
	Slot  time.Time
	Next  time.Time
	Jobs  []NewJob
	Skip  bool // overlap skip
	Now   time.Time
}

// Fired is what a fire did: Fired false when another daemon (or a PUT)
// moved the schedule first; Inserted the jobs it added (none if the
// previous job was still running under overlap skip).
type Fired struct {
	Fired    bool
	Inserted []string
}

// ScheduleStore keeps schedules. Every store of storaged implements it.
type ScheduleStore interface {
	// PutSchedule creates s, or replaces the schedule of that name when
	// its spec differs; an identical spec changes nothing. It returns the
	// stored schedule and whether anything changed.
	PutSchedule(ctx context.Context, s Schedule) (Schedule, bool, error)
	// Schedules lists a queue's schedules by name; GetSchedule returns
	// one, nil if there is none.
	Schedules(ctx context.Context, queue string) ([]Schedule, error)
	GetSchedule(ctx context.Context, queue, name string) (*Schedule, error)
	// DeleteSchedule deletes one and says whether it existed.
	DeleteSchedule(ctx context.Context, queue, name string) (bool, error)
	// DueSchedules returns up to limit schedules whose next slot is at or
	// before now (zero: the store's clock), earliest first, and the now
	// it compared with.
	DueSchedules(ctx context.Context, now time.Time, limit int) ([]Schedule, time.Time, error)
	// FireSchedule fires one slot (FireParams).
	FireSchedule(ctx context.Context, p FireParams) (Fired, error)
}

// SpecKey is a spec as stores compare it, to tell a repeated PUT from a
// change: its JSON with the job's data compacted.
func SpecKey(sp ScheduleSpec) string {
	var buf bytes.Buffer
	if json.Compact(&buf, sp.Data) == nil {
		sp.Data = buf.Bytes()
	}
	b, _ := json.Marshal(sp)
	return string(b)
}
