package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	goredis "github.com/redis/go-redis/v9"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.ScheduleStore = (*JobStore)(nil)

var scheduleScript = script("schedule")

// Schedules (issue 16) are hashes changed only by lua/schedule.lua; a
// fire checks the slot, inserts the job and moves the slot in that one
// script.

func (b *JobStore) scheduleKey(queue, name string) string {
	return b.prefix + ":sched:" + queue + "/" + name
}

func scheduleFromMap(queue, name string, m map[string]string) (backend.Schedule, error) {
	s := backend.Schedule{Queue: queue, Name: name, LastJobID: m["last"]}
	if err := json.Unmarshal([]byte(m["spec"]), &s.ScheduleSpec); err != nil {
		return s, backend.Errorf(backend.CodeInternal, "redis: schedule %s/%s has a corrupt spec", queue, name)
	}
	at := func(f string) time.Time {
		n, _ := strconv.ParseInt(m[f], 10, 64)
		return time.UnixMilli(n).UTC()
	}
	s.Next, s.CreatedAt, s.UpdatedAt = at("next"), at("created"), at("updated")
	if m["lastRun"] != "" {
		t := at("lastRun")
		s.LastRunAt = &t
	}
	return s, nil
}

// PutSchedule implements backend.ScheduleStore.
func (b *JobStore) PutSchedule(ctx context.Context, s backend.Schedule) (backend.Schedule, bool, error) {
	res, err := scheduleScript.Run(ctx, b.rdb, nil, b.prefix, nowArg(s.UpdatedAt), "put", s.Queue, s.Name,
		backend.SpecKey(s.ScheduleSpec), s.Next.UnixMilli()).Slice()
	if err != nil {
		return s, false, translate(err)
	}
	changed, _ := res[0].(int64)
	m := map[string]string{}
	for i := 1; i+1 < len(res); i += 2 {
		m[str(res[i])] = str(res[i+1])
	}
	out, err := scheduleFromMap(s.Queue, s.Name, m)
	return out, changed == 1, err
}

func (b *JobStore) readSchedules(ctx context.Context, refs [][2]string) ([]backend.Schedule, error) {
	out := []backend.Schedule{}
	if len(refs) == 0 {
		return out, nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(refs))
	for i, r := range refs {
		cmds[i] = pipe.HGetAll(ctx, b.scheduleKey(r[0], r[1]))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, translate(err)
	}
	for i, r := range refs {
		c := cmds[i]
		if len(c.Val()) == 0 {
			continue // deleted meanwhile
		}
		s, err := scheduleFromMap(r[0], r[1], c.Val())
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Schedules implements backend.ScheduleStore.
func (b *JobStore) Schedules(ctx context.Context, queue string) ([]backend.Schedule, error) {
	names, err := b.rdb.SMembers(ctx, b.prefix+":qsched:"+queue).Result()
	if err != nil {
		return nil, translate(err)
	}
	slices.Sort(names)
	refs := make([][2]string, len(names))
	for i, n := range names {
		refs[i] = [2]string{queue, n}
	}
	return b.readSchedules(ctx, refs)
}

// GetSchedule implements backend.ScheduleStore.
func (b *JobStore) GetSchedule(ctx context.Context, queue, name string) (*backend.Schedule, error) {
	got, err := b.readSchedules(ctx, [][2]string{{queue, name}})
	if err != nil || len(got) == 0 {
		return nil, err
	}
	return &got[0], nil
}

// DeleteSchedule implements backend.ScheduleStore.
func (b *JobStore) DeleteSchedule(ctx context.Context, queue, name string) (bool, error) {
	n, err := scheduleScript.Run(ctx, b.rdb, nil, b.prefix, "", "delete", queue, name).Int()
	return n > 0, translate(err)
}

// DueSchedules implements backend.ScheduleStore, on Redis's clock unless
// now is given.
func (b *JobStore) DueSchedules(ctx context.Context, now time.Time, limit int) ([]backend.Schedule, time.Time, error) {
	if now.IsZero() {
		t, err := b.rdb.Time(ctx).Result()
		if err != nil {
			return nil, now, translate(err)
		}
		now = t
	}
	now = now.UTC().Truncate(time.Millisecond)
	//nolint:staticcheck // SA1019: ZRANGEBYSCORE works on every Redis; ZRANGE ... BYSCORE needs 6.2
	members, err := b.rdb.ZRangeByScore(ctx, b.prefix+":schedules", &goredis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit)}).Result()
	if err != nil {
		return nil, now, translate(err)
	}
	refs := make([][2]string, 0, len(members))
	for _, m := range members {
		if q, n, ok := strings.Cut(m, "/"); ok {
			refs = append(refs, [2]string{q, n})
		}
	}
	out, err := b.readSchedules(ctx, refs)
	return out, now, err
}

// FireSchedule implements backend.ScheduleStore.
func (b *JobStore) FireSchedule(ctx context.Context, p backend.FireParams) (backend.Fired, error) {
	skip := "0"
	if p.Skip {
		skip = "1"
	}
	args := []any{b.prefix, nowArg(p.Now), "fire", p.Queue, p.Name, strconv.FormatInt(p.Slot.UnixMilli(), 10), p.Next.UnixMilli(), skip}
	for _, j := range p.Jobs {
		args = append(args, j.ID, []byte(j.Data), j.Priority, j.MaxAttempts, string(j.Backoff.Type), j.Backoff.DelayMs,
			j.Backoff.MaxDelayMs, j.RunAt.UnixMilli())
	}
	res, err := scheduleScript.Run(ctx, b.rdb, nil, args...).Slice()
	if err != nil {
		return backend.Fired{}, translate(err)
	}
	var out backend.Fired
	if ok, _ := res[0].(int64); ok != 1 {
		return out, nil
	}
	out.Fired = true
	for _, v := range res[1:] {
		out.Inserted = append(out.Inserted, str(v))
	}
	return out, nil
}
