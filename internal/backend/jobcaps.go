package backend

// JobCapabilities says which parts of the job API a store honours exactly.
// Every SQL and Redis store honours all of them; a store over a managed
// queue (SQS) cannot, and says so here instead of answering approximately
// without a word: the service refuses what a store lacks with a 400 that
// names the store and the feature, GET /v1/info lists the capabilities,
// and the conformance suite skips by capability the cases a store cannot
// meet.
type JobCapabilities struct {
	// Name names the store in refusals ("SQS"); "" for the stores that
	// lack nothing.
	Name string `json:"-"`
	// Priorities: claims go by priority. Without it a non-zero priority
	// is refused.
	Priorities bool `json:"priorities"`
	// GetByID: getJob answers for any job. Without it getJob is refused
	// (the store may still know its own open claims, for fail).
	GetByID bool `json:"getJob"`
	// Cancel: a pending or processing job can be cancelled by id.
	Cancel bool `json:"cancel"`
	// Dedupe: a key deduplicates against every active job of its queue.
	Dedupe bool `json:"dedupeKeys"`
	// ExactStats: stats are exact counts, completed and cancelled
	// included; without it they are the server's approximations and
	// finished jobs are not counted.
	ExactStats bool `json:"exactStats"`
	// Fencing: a stale lease (the job was claimed again) is refused
	// whichever process settles it. Without it only the process that made
	// both claims is sure to refuse.
	Fencing bool `json:"fencing"`
	// ExactlyOnce: a job is held by one claim at a time, so that workers
	// of any number of processes see each job once (barring expired
	// leases). A standard SQS queue delivers at least once: now and then
	// a message goes to two receivers.
	ExactlyOnce bool `json:"exactlyOnce"`
	// SettleAnywhere: fail and release of a claim work through any process
	// sharing the store, and after a restart. Without it they must reach
	// the process that made the claim.
	SettleAnywhere bool `json:"settleAnywhere"`
	// AtomicBatches: an enqueue batch is added whole or not at all.
	AtomicBatches bool `json:"atomicBatches"`
	// Milliseconds: runAt, delays and leases keep milliseconds (SQS
	// counts whole seconds).
	Milliseconds bool `json:"milliseconds"`
	// FlowControl: the store keeps queue settings (pause, concurrency,
	// rate limits) and enforces them in its claims (FlowStore).
	FlowControl bool `json:"flowControl"`
	// Schedules: the store keeps recurring schedules and fires each slot
	// once (ScheduleStore).
	Schedules bool `json:"schedules"`
	// Events: the store keeps each queue's event feed (EventStore).
	Events bool `json:"events"`
	// Browse: jobs can be found by queue, status, key and data, changed
	// in bulk (retry, cancel, delete) and edited while pending
	// (BrowseStore, issue 20).
	Browse bool `json:"browse"`
	// ClockControl: the store keeps time by the Now its callers pass, so
	// tests can move time instead of sleeping. Not part of the API.
	ClockControl bool `json:"-"`
}

// AllJobCapabilities is what the SQL and Redis stores offer.
var AllJobCapabilities = JobCapabilities{Priorities: true, GetByID: true, Cancel: true, Dedupe: true, ExactStats: true,
	Fencing: true, ExactlyOnce: true, SettleAnywhere: true, AtomicBatches: true, Milliseconds: true, FlowControl: true,
	Schedules: true, Events: true, Browse: true, ClockControl: true}

// JobCapabler is a JobStore that lacks some capabilities.
type JobCapabler interface {
	JobCapabilities() JobCapabilities
}

// CapabilitiesOf returns what store honours: all of it unless it says
// otherwise.
func CapabilitiesOf(store JobStore) JobCapabilities {
	c := AllJobCapabilities
	if d, ok := store.(JobCapabler); ok {
		c = d.JobCapabilities()
	}
	if _, ok := store.(BrowseStore); !ok {
		c.Browse = false
	}
	return c
}

// Missing lists the capabilities of need that c lacks, by their API names.
func (c JobCapabilities) Missing(need JobCapabilities) []string {
	var out []string
	check := func(want, have bool, name string) {
		if want && !have {
			out = append(out, name)
		}
	}
	check(need.Priorities, c.Priorities, "priorities")
	check(need.GetByID, c.GetByID, "getJob")
	check(need.Cancel, c.Cancel, "cancel")
	check(need.Dedupe, c.Dedupe, "dedupeKeys")
	check(need.ExactStats, c.ExactStats, "exactStats")
	check(need.Fencing, c.Fencing, "fencing")
	check(need.ExactlyOnce, c.ExactlyOnce, "exactlyOnce")
	check(need.SettleAnywhere, c.SettleAnywhere, "settleAnywhere")
	check(need.AtomicBatches, c.AtomicBatches, "atomicBatches")
	check(need.Milliseconds, c.Milliseconds, "milliseconds")
	check(need.FlowControl, c.FlowControl, "flowControl")
	check(need.Schedules, c.Schedules, "schedules")
	check(need.Events, c.Events, "events")
	check(need.Browse, c.Browse, "browse")
	check(need.ClockControl, c.ClockControl, "clockControl")
	return out
}
