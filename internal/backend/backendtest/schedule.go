package backendtest

import (
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/testutil"
)

// scheduleTests are the cases of recurring schedules (issue 16), run with
// the suite's clock: FireDue is what a daemon's scheduler calls every
// second.
var scheduleTests = []struct {
	name string
	fn   func(t *testing.T, b *jq)
}{
	{"SchedulePutIsIdempotent", testSchedulePut},
	{"ScheduleFiresEachSlotOnce", testScheduleFires},
	{"ScheduleBackfill", testScheduleBackfill},
	{"ScheduleOverlapSkip", testScheduleOverlap},
	{"ScheduleCronInTimeZone", testScheduleCron},
	{"ScheduleConcurrentFiresOnce", testScheduleConcurrent},
	{"ScheduleInvalid", testScheduleInvalid},
}

func putSchedule(t *testing.T, b *jq, q, name string, sp backend.ScheduleSpec) backend.Schedule {
	t.Helper()
	s, err := b.svc.PutSchedule(ctx(t), q, name, sp)
	must(t, err)
	return s
}

// fireDue fires what is due and returns how many jobs that added to q
// (the store is shared with other cases, whose schedules fire too).
func fireDue(t *testing.T, b *jq, q string) int {
	t.Helper()
	before := jobsIn(t, b, q)
	_, err := b.svc.FireDue(ctx(t))
	must(t, err)
	return jobsIn(t, b, q) - before
}

func jobsIn(t *testing.T, b *jq, q string) int {
	t.Helper()
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	return int(st.Pending + st.Processing + st.Completed + st.Failed + st.Cancelled)
}

// toNextMinute moves the clock to 1 s past the next minute.
func toNextMinute(b *jq) {
	now := b.now()
	b.clock.Advance(now.Truncate(time.Minute).Add(time.Minute + time.Second).Sub(now))
}

func testSchedulePut(t *testing.T, b *jq) {
	q := qname(t)
	sp := backend.ScheduleSpec{EveryMs: 60_000, Data: json.RawMessage(`{"report": "daily"}`), Overlap: "skip"}
	s := putSchedule(t, b, q, "report", sp)
	if s.Queue != q || s.Name != "report" || s.Next.IsZero() || s.Next.UnixMilli()%60_000 != 0 || !s.Next.After(b.now().Add(-time.Second)) {
		t.Fatalf("put: %+v", s)
	}
	if s.MaxAttempts != backend.DefaultMaxAttempts || s.Backoff != backend.DefaultBackoff || s.Overlap != "skip" {
		t.Fatalf("defaults: %+v", s)
	}
	b.clock.Advance(10 * time.Second)
	// The same spec again (data spaced differently) changes nothing.
	again := putSchedule(t, b, q, "report", backend.ScheduleSpec{EveryMs: 60_000, Data: json.RawMessage(`{"report":"daily"}`), Overlap: "skip"})
	if !again.Next.Equal(s.Next) || !again.UpdatedAt.Equal(s.UpdatedAt) || !again.CreatedAt.Equal(s.CreatedAt) {
		t.Fatalf("a repeated put changed the schedule: %+v, was %+v", again, s)
	}
	changed := putSchedule(t, b, q, "report", backend.ScheduleSpec{EveryMs: 120_000, Data: json.RawMessage(`{"report":"daily"}`)})
	if changed.EveryMs != 120_000 || changed.Next.UnixMilli()%120_000 != 0 || !changed.CreatedAt.Equal(s.CreatedAt) || changed.Overlap != "allow" {
		t.Fatalf("a changed put: %+v", changed)
	}
	putSchedule(t, b, q, "another", backend.ScheduleSpec{Cron: "0 9 * * *"})
	list, err := b.svc.Schedules(ctx(t), q)
	must(t, err)
	if len(list) != 2 || list[0].Name != "another" || list[1].Name != "report" {
		t.Fatalf("list: %+v", list)
	}
	if other, err := b.svc.Schedules(ctx(t), q+"-other"); err != nil || len(other) != 0 {
		t.Fatalf("another queue's list: %+v, %v", other, err)
	}
	got, err := b.svc.GetSchedule(ctx(t), q, "report")
	must(t, err)
	if got == nil || got.EveryMs != 120_000 || !sameJSON(t, got.Data, `{"report":"daily"}`) {
		t.Fatalf("get: %+v", got)
	}
	must(t, b.svc.DeleteSchedule(ctx(t), q, "report"))
	if got, err := b.svc.GetSchedule(ctx(t), q, "report"); err != nil || got != nil {
		t.Fatalf("get after delete: %+v, %v", got, err)
	}
	wantCode(t, b.svc.DeleteSchedule(ctx(t), q, "report"), backend.CodeNotFound)
}

func testScheduleFires(t *testing.T, b *jq) {
	q := qname(t)
	toNextMinute(b)
	s := putSchedule(t, b, q, "tick", backend.ScheduleSpec{EveryMs: 60_000, Data: json.RawMessage(`{"t":1}`), Priority: 5})
	if n := fireDue(t, b, q); n != 0 {
		t.Fatalf("fired %d before the first slot", n)
	}
	b.clock.Advance(time.Minute)
	if n := fireDue(t, b, q); n != 1 {
		t.Fatalf("fired %d at the first slot", n)
	}
	if n := fireDue(t, b, q); n != 0 {
		t.Fatalf("fired the slot again: %d", n)
	}
	j := dequeue(t, b, q, backend.DequeueParams{})
	if j == nil || !j.RunAt.Equal(s.Next) || j.Priority != 5 || !sameJSON(t, j.Data, `{"t":1}`) {
		t.Fatalf("the slot's job: %+v (slot %v)", j, s.Next)
	}
	must(t, b.Acknowledge(ctx(t), j.ID, j.Lease))
	got, err := b.svc.GetSchedule(ctx(t), q, "tick")
	must(t, err)
	if !got.Next.Equal(s.Next.Add(time.Minute)) || got.LastJobID != j.ID {
		t.Fatalf("after firing: %+v", got)
	}
	b.clock.Advance(time.Minute)
	if n := fireDue(t, b, q); n != 1 {
		t.Fatalf("fired %d at the second slot", n)
	}
	// Without backfill, ten missed slots run once, for the latest.
	b.clock.Advance(10 * time.Minute)
	if n := fireDue(t, b, q); n != 1 {
		t.Fatalf("fired %d after ten missed slots, want the latest only", n)
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Pending != 2 || st.Completed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func testScheduleBackfill(t *testing.T, b *jq) {
	q := qname(t)
	toNextMinute(b)
	putSchedule(t, b, q, "tick", backend.ScheduleSpec{EveryMs: 60_000, BackfillMs: (5*time.Minute + 30*time.Second).Milliseconds()})
	b.clock.Advance(20 * time.Minute)
	// Slots within the last 5.5 minutes: the 15th to the 20th minute.
	if n := fireDue(t, b, q); n != 6 {
		t.Fatalf("backfilled %d slots, want 6", n)
	}
	jobs := claim(t, b, q, 10)
	seen := map[time.Time]bool{}
	for _, j := range jobs {
		if j.RunAt.UnixMilli()%60_000 != 0 || seen[j.RunAt] || j.RunAt.Before(b.now().Add(-6*time.Minute)) {
			t.Fatalf("backfilled job at %v", j.RunAt)
		}
		seen[j.RunAt] = true
	}
	if n := fireDue(t, b, q); n != 0 {
		t.Fatalf("fired %d again", n)
	}
}

func testScheduleOverlap(t *testing.T, b *jq) {
	q := qname(t)
	toNextMinute(b)
	putSchedule(t, b, q, "sync", backend.ScheduleSpec{EveryMs: 60_000, Overlap: backend.OverlapSkip, BackfillMs: time.Hour.Milliseconds()})
	b.clock.Advance(time.Minute)
	if n := fireDue(t, b, q); n != 1 {
		t.Fatalf("first slot fired %d", n)
	}
	j := dequeue(t, b, q, backend.DequeueParams{})
	b.clock.Advance(time.Minute)
	if n := fireDue(t, b, q); n != 0 {
		t.Fatalf("fired %d while the previous job runs, with overlap skip", n)
	}
	must(t, b.Acknowledge(ctx(t), j.ID, j.Lease))
	// Three missed slots with backfill: one job at most while skipping overlaps.
	b.clock.Advance(3 * time.Minute)
	if n := fireDue(t, b, q); n != 1 {
		t.Fatalf("fired %d after the previous job finished", n)
	}
	// allow fires whatever runs.
	q2 := q + "-allow"
	putSchedule(t, b, q2, "sync", backend.ScheduleSpec{EveryMs: 60_000, Overlap: backend.OverlapAllow})
	b.clock.Advance(time.Minute)
	fireDue(t, b, q2)
	b.clock.Advance(time.Minute)
	fireDue(t, b, q2)
	st, err := b.Stats(ctx(t), q2)
	must(t, err)
	if st.Pending != 2 {
		t.Fatalf("overlap allow: %+v", st)
	}
}

func testScheduleCron(t *testing.T, b *jq) {
	q := qname(t)
	s := putSchedule(t, b, q, "nine", backend.ScheduleSpec{Cron: "0 9 * * *", TZ: "Europe/Paris"})
	paris, err := time.LoadLocation("Europe/Paris")
	must(t, err)
	local := s.Next.In(paris)
	if local.Hour() != 9 || local.Minute() != 0 || !s.Next.After(b.now()) || s.Next.Sub(b.now()) > 24*time.Hour {
		t.Fatalf("next of 0 9 * * * in Paris: %v", local)
	}
	every10 := putSchedule(t, b, q, "ten-seconds", backend.ScheduleSpec{Cron: "*/10 * * * * *"})
	if every10.Next.Second()%10 != 0 || every10.Next.Sub(b.now()) > 10*time.Second || every10.TZ != "UTC" {
		t.Fatalf("next of */10 seconds: %+v", every10)
	}
	b.clock.Advance(s.Next.Sub(b.now()) + time.Second)
	fireDue(t, b, q)
	got, err := b.svc.GetSchedule(ctx(t), q, "nine")
	must(t, err)
	if next := got.Next.In(paris); !got.Next.After(s.Next) || next.Hour() != 9 || next.YearDay() == local.YearDay() {
		t.Fatalf("after firing, next %v", next)
	}
}

func testScheduleConcurrent(t *testing.T, b *jq) {
	q := qname(t)
	toNextMinute(b)
	putSchedule(t, b, q, "once", backend.ScheduleSpec{EveryMs: 60_000, BackfillMs: (3*time.Minute + 30*time.Second).Milliseconds()})
	b.clock.Advance(10 * time.Minute)
	// Four schedulers of one daemon at once (several daemons: the
	// PostgreSQL and Redis tests).
	svcs := []*queue.Service{b.svc}
	for range 3 {
		svcs = append(svcs, queue.New(queue.Config{Store: b.store, Clock: b.clock.Now}))
	}
	var wg sync.WaitGroup
	for _, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := svc.FireDue(ctx(t)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := jobsIn(t, b, q); n != 4 {
		t.Fatalf("schedulers fired %d jobs, want 4 slots once each", n)
	}
	seen := map[time.Time]bool{}
	for _, j := range claim(t, b, q, 10) {
		if seen[j.RunAt] {
			t.Fatalf("slot %v fired twice", j.RunAt)
		}
		seen[j.RunAt] = true
	}
}

func testScheduleInvalid(t *testing.T, b *jq) {
	q := qname(t)
	for _, sp := range []backend.ScheduleSpec{
		{},
		{Cron: "* * * * *", EveryMs: 60_000},
		{Cron: "not a cron"},
		{Cron: "* * * * * * * *"},
		{Cron: "@every 1m"},
		{Cron: "TZ=Europe/Paris 0 9 * * *"},
		{Cron: "0 9 * * *", TZ: "Mars/Olympus"},
		{Cron: "0 9 * * *", TZ: "../../etc/passwd"},
		{EveryMs: 999},
		{EveryMs: 60_000, TZ: "UTC"},
		{EveryMs: 60_000, Overlap: "sometimes"},
		{EveryMs: 60_000, BackfillMs: -1},
		{EveryMs: 60_000, MaxAttempts: -1},
		{EveryMs: 60_000, Backoff: backend.Backoff{Type: "linear"}},
	} {
		_, err := b.svc.PutSchedule(ctx(t), q, "s", sp)
		wantCode(t, err, backend.CodeInvalidArgument)
	}
	_, err := b.svc.PutSchedule(ctx(t), q, "bad name/", backend.ScheduleSpec{EveryMs: 60_000})
	wantCode(t, err, backend.CodeInvalidArgument)
	list, err := b.svc.Schedules(ctx(t), q)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("refused puts stored %+v", list)
	}
}

// RunScheduleDaemons checks that a schedule fires exactly one job per slot
// with three daemons (services over stores of their own) on one database,
// each running its scheduler as the daemon does: slots a second apart for
// a few seconds of the database's clock, every slot once, none missed.
func RunScheduleDaemons(t *testing.T, newStore NewJobStore) {
	q := testutil.Name(t, "q")
	svcs := make([]*queue.Service, 3)
	for i := range svcs {
		svcs[i] = queue.New(queue.Config{Store: newStore(t)})
	}
	s, err := svcs[0].PutSchedule(ctx(t), q, "every-second", backend.ScheduleSpec{EveryMs: 1000})
	must(t, err)
	first := s.Next
	end := first.Add(4 * time.Second)
	var wg sync.WaitGroup
	fired := make([]int, len(svcs))
	for i, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end.Add(500 * time.Millisecond)) {
				n, err := svc.FireDue(ctx(t))
				if err != nil {
					t.Error(err)
					return
				}
				fired[i] += n
				time.Sleep(50 * time.Millisecond) // the daemons' scheduler ticks (faster here)
			}
		}()
	}
	wg.Wait()
	must(t, svcs[0].DeleteSchedule(ctx(t), q, "every-second"))
	jobs, err := svcs[1].Dequeue(ctx(t), q, backend.DequeueParams{Max: 1000})
	must(t, err)
	seen := map[int64]int{}
	for _, j := range jobs {
		seen[j.RunAt.UnixMilli()]++
	}
	for at := first; !at.After(end); at = at.Add(time.Second) {
		if seen[at.UnixMilli()] != 1 {
			t.Errorf("slot %v fired %d times", at, seen[at.UnixMilli()])
		}
	}
	if len(jobs) < 5 || len(seen) != len(jobs) {
		t.Fatalf("%d jobs for %d slots", len(jobs), len(seen))
	}
	t.Logf("jobs fired per daemon: %v", fired)
}
