package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.ScheduleStore = (*JobStore)(nil)

type mschedule struct {
	s   backend.Schedule
	key string // backend.SpecKey of its spec
}

func scheduleID(queue, name string) string { return queue + "\x00" + name }

// PutSchedule implements backend.ScheduleStore.
func (b *JobStore) PutSchedule(_ context.Context, s backend.Schedule) (backend.Schedule, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return s, false, err
	}
	if b.schedules == nil {
		b.schedules = map[string]*mschedule{}
	}
	key := backend.SpecKey(s.ScheduleSpec)
	cur := b.schedules[scheduleID(s.Queue, s.Name)]
	if cur != nil && cur.key == key {
		return cur.s, false, nil
	}
	if cur != nil {
		s.CreatedAt, s.LastJobID, s.LastRunAt = cur.s.CreatedAt, cur.s.LastJobID, cur.s.LastRunAt
	}
	b.schedules[scheduleID(s.Queue, s.Name)] = &mschedule{s: s, key: key}
	return s, true, nil
}

// Schedules implements backend.ScheduleStore.
func (b *JobStore) Schedules(_ context.Context, queue string) ([]backend.Schedule, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []backend.Schedule{}
	for _, m := range b.schedules {
		if m.s.Queue == queue {
			out = append(out, m.s)
		}
	}
	slices.SortFunc(out, func(a, b backend.Schedule) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// GetSchedule implements backend.ScheduleStore.
func (b *JobStore) GetSchedule(_ context.Context, queue, name string) (*backend.Schedule, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.schedules[scheduleID(queue, name)]; m != nil {
		s := m.s
		return &s, nil
	}
	return nil, nil
}

// DeleteSchedule implements backend.ScheduleStore.
func (b *JobStore) DeleteSchedule(_ context.Context, queue, name string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := scheduleID(queue, name)
	_, ok := b.schedules[id]
	delete(b.schedules, id)
	return ok, nil
}

// DueSchedules implements backend.ScheduleStore.
func (b *JobStore) DueSchedules(_ context.Context, now time.Time, limit int) ([]backend.Schedule, time.Time, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now = backend.NowOr(now)
	var out []backend.Schedule
	for _, m := range b.schedules {
		if !m.s.Next.After(now) {
			out = append(out, m.s)
		}
	}
	slices.SortFunc(out, func(a, b backend.Schedule) int { return a.Next.Compare(b.Next) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, now, nil
}

// FireSchedule implements backend.ScheduleStore: under the store's lock,
// the check of the slot, the insert and the move are one step.
func (b *JobStore) FireSchedule(_ context.Context, p backend.FireParams) (backend.Fired, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return backend.Fired{}, err
	}
	m := b.schedules[scheduleID(p.Queue, p.Name)]
	if m == nil || !m.s.Next.Equal(p.Slot) {
		return backend.Fired{}, nil
	}
	now := backend.NowOr(p.Now)
	out := backend.Fired{Fired: true}
	if p.Skip && m.s.LastJobID != "" {
		if j := b.jobs[m.s.LastJobID]; j != nil && (j.Status == backend.StatusPending || j.Status == backend.StatusProcessing) {
			p.Jobs = nil
		}
	}
	if len(p.Jobs) > 0 {
		for _, r := range b.insert(backend.InsertParams{Queue: p.Queue, Jobs: p.Jobs, Now: now}, nil) {
			out.Inserted = append(out.Inserted, r.ID)
		}
		m.s.LastJobID = out.Inserted[len(out.Inserted)-1]
	}
	m.s.Next = p.Next
	m.s.LastRunAt = &now
	return out, nil
}
