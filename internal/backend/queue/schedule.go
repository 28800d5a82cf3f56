package queue

import (
	"context"
	"strings"
	"sync"
	"time"

	cron "github.com/netresearch/go-cron"
	"go.opentelemetry.io/otel/attribute"

	"github.com/storaged/storaged/internal/backend"
)

// Recurring schedules (issue 16). The service parses and validates specs,
// computes slots, and fires due schedules through the store, which makes
// each slot fire once however many daemons share it (FireSchedule).

// Limits of schedules.
const (
	MinEvery       = time.Second
	MaxEvery       = 366 * 24 * time.Hour
	MaxBackfill    = 31 * 24 * time.Hour
	maxFiredAtOnce = 1000 // jobs one fire inserts, backfill included
	maxSlotWalk    = 100_000
)

// cronParser takes five fields, or six with seconds first, and the
// descriptors (@daily, ...) except @every, which everyMs replaces.
var cronParser = cron.MustNewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ScheduleLagObserver hears, if the Observer implements it, how late each
// fired slot was (the schedule-lag metric).
type ScheduleLagObserver interface {
	ScheduleLag(queue string, lag time.Duration)
}

// when is a parsed schedule: the slot after t.
type when struct {
	cron  cron.Schedule
	loc   *time.Location
	every time.Duration
}

// next is the first slot strictly after t. Cron slots are computed on the
// wall clock of the time zone by the library (a wall time skipped by a
// DST change fires right after the gap, as ISC cron does); a wall time
// that a DST change repeats fires once, at its first occurrence.
func (w when) next(t time.Time) time.Time {
	if w.every > 0 {
		ms := w.every.Milliseconds()
		return time.UnixMilli((t.UnixMilli()/ms + 1) * ms).UTC()
	}
	local := t.In(w.loc)
	n := w.cron.Next(local)
	for i := 0; i < 4 && !n.IsZero() && n.Format(time.DateTime) == local.Format(time.DateTime) && !n.Equal(local); i++ {
		n = w.cron.Next(n)
	}
	return n.UTC().Truncate(time.Millisecond)
}

// parseWhen validates the timing of a spec.
func parseWhen(sp *backend.ScheduleSpec) (when, error) {
	var w when
	switch {
	case sp.Cron != "" && sp.EveryMs != 0:
		return w, backend.Errorf(backend.CodeInvalidArgument, "give cron or everyMs, not both")
	case sp.Cron == "" && sp.EveryMs == 0:
		return w, backend.Errorf(backend.CodeInvalidArgument, "a schedule needs cron or everyMs")
	case sp.EveryMs != 0:
		if sp.TZ != "" {
			return w, backend.Errorf(backend.CodeInvalidArgument, "tz goes with cron, not everyMs")
		}
		if sp.EveryMs < MinEvery.Milliseconds() || sp.EveryMs > MaxEvery.Milliseconds() {
			return w, backend.Errorf(backend.CodeInvalidArgument, "everyMs must be between %d and %d", MinEvery.Milliseconds(), MaxEvery.Milliseconds())
		}
		w.every = time.Duration(sp.EveryMs) * time.Millisecond
		return w, nil
	}
	c := strings.TrimSpace(sp.Cron)
	if len(c) > 256 || strings.Contains(c, "TZ=") || strings.HasPrefix(c, "@every") {
		return w, backend.Errorf(backend.CodeInvalidArgument, "cron must be 5 or 6 fields or a descriptor such as @daily (the time zone goes in tz, intervals in everyMs)")
	}
	sched, err := cronParser.Parse(c)
	if err != nil {
		return w, backend.Errorf(backend.CodeInvalidArgument, "cron %q: %v", c, err)
	}
	sp.Cron = c
	if sp.TZ == "" {
		sp.TZ = "UTC"
	}
	loc, err := loadLocation(sp.TZ)
	if err != nil {
		return w, backend.Errorf(backend.CodeInvalidArgument, "tz %q is not a time zone of the IANA database (such as Europe/Paris)", sp.TZ)
	}
	w.cron, w.loc = sched, loc
	if w.next(time.Now()).IsZero() {
		return w, backend.Errorf(backend.CodeInvalidArgument, "cron %q never fires", c)
	}
	return w, nil
}

var locations sync.Map // name → *time.Location

func loadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	if strings.ContainsAny(name, " \\") || strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "bad time zone")
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}

// validateSpec checks a spec and fills in its defaults.
func validateSpec(sp *backend.ScheduleSpec) (when, error) {
	w, err := parseWhen(sp)
	if err != nil {
		return w, err
	}
	job := backend.EnqueueParams{Data: sp.Data, Priority: sp.Priority, MaxAttempts: sp.MaxAttempts, Backoff: sp.Backoff}
	if err := job.Validate(); err != nil {
		return w, err
	}
	sp.Data, sp.MaxAttempts, sp.Backoff = job.Data, job.MaxAttempts, job.Backoff
	switch sp.Overlap {
	case "":
		sp.Overlap = backend.OverlapAllow
	case backend.OverlapAllow, backend.OverlapSkip:
	default:
		return w, backend.Errorf(backend.CodeInvalidArgument, `overlap must be "skip" or "allow"`)
	}
	if sp.BackfillMs < 0 || sp.BackfillMs > MaxBackfill.Milliseconds() {
		return w, backend.Errorf(backend.CodeInvalidArgument, "backfillMs must be between 0 and %d", MaxBackfill.Milliseconds())
	}
	return w, nil
}

func (s *Service) scheduleStore() (backend.ScheduleStore, error) {
	st, ok := s.store.(backend.ScheduleStore)
	if !ok {
		name := backend.CapabilitiesOf(s.store).Name
		return nil, backend.Errorf(backend.CodeInvalidArgument,
			"schedules are not available on the %s job queue (see capabilities in GET /v1/info)", name)
	}
	return st, nil
}

func checkScheduleName(queue, name string) error {
	if err := backend.ValidateName("queue", queue); err != nil {
		return err
	}
	return backend.ValidateName("schedule", name)
}

// PutSchedule creates or replaces a schedule. Putting the same spec again
// changes nothing (its next slot stays), so that an app may put its
// schedules at every start.
func (s *Service) PutSchedule(ctx context.Context, queue, name string, sp backend.ScheduleSpec) (out backend.Schedule, err error) {
	ctx, done := s.observe(ctx, "putSchedule", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := checkScheduleName(queue, name); err != nil {
		return out, err
	}
	w, err := validateSpec(&sp)
	if err != nil {
		return out, err
	}
	st, err := s.scheduleStore()
	if err != nil {
		return out, err
	}
	now := s.now()
	if now.IsZero() {
		now = backend.Now()
	}
	out, _, err = st.PutSchedule(ctx, backend.Schedule{Queue: queue, Name: name, ScheduleSpec: sp, Next: w.next(now), CreatedAt: now, UpdatedAt: now})
	return out, err
}

// Schedules lists a queue's schedules.
func (s *Service) Schedules(ctx context.Context, queue string) (out []backend.Schedule, err error) {
	ctx, done := s.observe(ctx, "listSchedules", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return nil, err
	}
	st, err := s.scheduleStore()
	if err != nil {
		return nil, err
	}
	return st.Schedules(ctx, queue)
}

// GetSchedule returns one schedule, nil if there is none.
func (s *Service) GetSchedule(ctx context.Context, queue, name string) (out *backend.Schedule, err error) {
	ctx, done := s.observe(ctx, "getSchedule", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := checkScheduleName(queue, name); err != nil {
		return nil, err
	}
	st, err := s.scheduleStore()
	if err != nil {
		return nil, err
	}
	return st.GetSchedule(ctx, queue, name)
}

// DeleteSchedule deletes a schedule (not_found if there is none).
func (s *Service) DeleteSchedule(ctx context.Context, queue, name string) (err error) {
	ctx, done := s.observe(ctx, "deleteSchedule", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := checkScheduleName(queue, name); err != nil {
		return err
	}
	st, err := s.scheduleStore()
	if err != nil {
		return err
	}
	found, err := st.DeleteSchedule(ctx, queue, name)
	if err == nil && !found {
		err = backend.Errorf(backend.CodeNotFound, "queue %q has no schedule %q", queue, name)
	}
	return err
}

// FireDue fires every due slot of every schedule and returns how many
// jobs it enqueued. Daemons call it about once a second (RunSchedules);
// tests call it after moving their clock.
func (s *Service) FireDue(ctx context.Context) (int, error) {
	st, ok := s.store.(backend.ScheduleStore)
	if !ok {
		return 0, nil
	}
	total := 0
	for range 100 {
		due, now, err := st.DueSchedules(ctx, s.now(), 100)
		if err != nil || len(due) == 0 {
			return total, err
		}
		fired := 0
		for _, sc := range due {
			n, moved, err := s.fire(ctx, st, sc, now)
			if err != nil {
				return total, err
			}
			total += n
			if moved {
				fired++
			}
		}
		if fired == 0 {
			return total, nil // every one was moved by another daemon first
		}
	}
	return total, nil
}

// fire fires the due slots of one schedule: the latest, and the older
// ones within its backfill window.
func (s *Service) fire(ctx context.Context, st backend.ScheduleStore, sc backend.Schedule, now time.Time) (int, bool, error) {
	sp := sc.ScheduleSpec
	w, err := parseWhen(&sp)
	if err != nil {
		// A spec stored by a daemon whose library parsed it; skip it
		// rather than stop every other schedule.
		s.log.Warn("a stored schedule does not parse; it does not fire", "queue", sc.Queue, "schedule", sc.Name, "err", err)
		return 0, false, nil
	}
	var slots []time.Time
	var latest time.Time
	next := sc.Next
	cutoff := now.Add(-time.Duration(sp.BackfillMs) * time.Millisecond)
	for i := 0; !next.After(now); i++ {
		if i >= maxSlotWalk {
			next = w.next(now) // a long outage of a frequent schedule: jump
			break
		}
		latest = next
		if sp.BackfillMs > 0 && !next.Before(cutoff) {
			slots = append(slots, next)
		}
		if next = w.next(next); next.IsZero() {
			next = backend.MaxRunAt // no slot left: the schedule rests
			break
		}
	}
	// The latest due slot always runs, however late; older ones only
	// within the backfill window, and never more than one while
	// overlaps are skipped.
	if !latest.IsZero() && (len(slots) == 0 || !slots[len(slots)-1].Equal(latest)) {
		slots = append(slots, latest)
	}
	if len(slots) > maxFiredAtOnce {
		slots = slots[len(slots)-maxFiredAtOnce:]
	}
	if sp.Overlap == backend.OverlapSkip && len(slots) > 1 {
		slots = slots[len(slots)-1:]
	}
	jobs := make([]backend.NewJob, len(slots))
	for i, at := range slots {
		jobs[i] = backend.NewJob{ID: backend.NewID(), Data: sp.Data, Priority: sp.Priority, MaxAttempts: sp.MaxAttempts,
			Backoff: sp.Backoff, RunAt: at, HasRunAt: true}
	}
	res, err := st.FireSchedule(ctx, backend.FireParams{Queue: sc.Queue, Name: sc.Name, Slot: sc.Next, Next: next, Jobs: jobs,
		Skip: sp.Overlap == backend.OverlapSkip, Now: s.now()})
	if err != nil || !res.Fired {
		return 0, false, err
	}
	if lo, ok := s.obs.(ScheduleLagObserver); ok && len(slots) > 0 {
		lo.ScheduleLag(sc.Queue, now.Sub(slots[len(slots)-1]))
	}
	if len(res.Inserted) > 0 {
		s.wake(sc.Queue)
		s.count("enqueued", sc.Queue, len(res.Inserted))
	}
	return len(res.Inserted), true, nil
}

// RunSchedules fires due schedules every interval until ctx ends.
func (s *Service) RunSchedules(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.FireDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("firing schedules failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
