package postgres

import (
	"context"
	"errors"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.ScheduleStore = (*JobStore)(nil)

// Schedules live in storaged_schedules. A fire moves the schedule's next
// slot with UPDATE … WHERE next_run_at = slot in the transaction that
// inserts the slot's job: the update locks the row, so a daemon firing
// the same slot at the same time waits, then finds the slot moved (READ
// COMMITTED re-checks the condition on the row it waited for) and fires
// nothing. Exactly one job per slot, however many daemons.

const scheduleColumns = `queue, name, spec, next_run_at, last_job_id, last_run_at, created_at, updated_at`

func scanSchedule(row pgx.Row) (backend.Schedule, error) {
	var out backend.Schedule
	var spec string
	var last *string
	if err := row.Scan(&out.Queue, &out.Name, &spec, &out.Next, &last, &out.LastRunAt, &out.CreatedAt, &out.UpdatedAt); err != nil {
		return out, err
	}
	if err := json.Unmarshal([]byte(spec), &out.ScheduleSpec); err != nil {
		return out, err
	}
	if last != nil {
		out.LastJobID = *last
	}
	out.Next, out.CreatedAt, out.UpdatedAt = out.Next.UTC(), out.CreatedAt.UTC(), out.UpdatedAt.UTC()
	if out.LastRunAt != nil {
		t := out.LastRunAt.UTC()
		out.LastRunAt = &t
	}
	return out, nil
}

// PutSchedule implements backend.ScheduleStore: one statement that
// inserts, or replaces a different spec, and answers the row as it is.
func (b *JobStore) PutSchedule(ctx context.Context, s backend.Schedule) (backend.Schedule, bool, error) {
	key := backend.SpecKey(s.ScheduleSpec)
	row := b.pool.QueryRow(ctx, `WITH up AS (
			INSERT INTO storaged_schedules (queue, name, spec, next_run_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
			ON CONFLICT (queue, name) DO UPDATE SET spec = excluded.spec, next_run_at = excluded.next_run_at, updated_at = excluded.updated_at
				WHERE storaged_schedules.spec <> excluded.spec
			RETURNING `+scheduleColumns+`)
		SELECT *, true FROM up
		UNION ALL
		SELECT `+scheduleColumns+`, false FROM storaged_schedules WHERE queue = $1 AND name = $2 AND NOT EXISTS (SELECT 1 FROM up)`,
		s.Queue, s.Name, key, s.Next, s.UpdatedAt)
	var out backend.Schedule
	var spec string
	var last *string
	var changed bool
	if err := row.Scan(&out.Queue, &out.Name, &spec, &out.Next, &last, &out.LastRunAt, &out.CreatedAt, &out.UpdatedAt, &changed); err != nil {
		return out, false, translate(err)
	}
	if err := json.Unmarshal([]byte(spec), &out.ScheduleSpec); err != nil {
		return out, false, translate(err)
	}
	if last != nil {
		out.LastJobID = *last
	}
	out.Next, out.CreatedAt, out.UpdatedAt = out.Next.UTC(), out.CreatedAt.UTC(), out.UpdatedAt.UTC()
	return out, changed, nil
}

func (b *JobStore) querySchedules(ctx context.Context, q string, args ...any) ([]backend.Schedule, error) {
	rows, err := b.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []backend.Schedule{}
	for rows.Next() {
		s, err := scanSchedule(rows)
		if err != nil {
			return nil, translate(err)
		}
		out = append(out, s)
	}
	return out, translate(rows.Err())
}

// Schedules implements backend.ScheduleStore.
func (b *JobStore) Schedules(ctx context.Context, queue string) ([]backend.Schedule, error) {
	return b.querySchedules(ctx, `SELECT `+scheduleColumns+` FROM storaged_schedules WHERE queue = $1 ORDER BY name`, queue)
}

// GetSchedule implements backend.ScheduleStore.
func (b *JobStore) GetSchedule(ctx context.Context, queue, name string) (*backend.Schedule, error) {
	got, err := b.querySchedules(ctx, `SELECT `+scheduleColumns+` FROM storaged_schedules WHERE queue = $1 AND name = $2`, queue, name)
	if err != nil || len(got) == 0 {
		return nil, err
	}
	return &got[0], nil
}

// DeleteSchedule implements backend.ScheduleStore.
func (b *JobStore) DeleteSchedule(ctx context.Context, queue, name string) (bool, error) {
	tag, err := b.pool.Exec(ctx, `DELETE FROM storaged_schedules WHERE queue = $1 AND name = $2`, queue, name)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() > 0, nil
}

// DueSchedules implements backend.ScheduleStore, on the database's clock
// unless now is given.
func (b *JobStore) DueSchedules(ctx context.Context, now time.Time, limit int) ([]backend.Schedule, time.Time, error) {
	if now.IsZero() {
		if err := b.pool.QueryRow(ctx, `SELECT `+nowSQL, nil).Scan(&now); err != nil {
			return nil, now, translate(err)
		}
	}
	now = now.UTC()
	out, err := b.querySchedules(ctx, `SELECT `+scheduleColumns+` FROM storaged_schedules WHERE next_run_at <= $1 ORDER BY next_run_at LIMIT $2`,
		now, limit)
	return out, now, err
}

// FireSchedule implements backend.ScheduleStore.
func (b *JobStore) FireSchedule(ctx context.Context, p backend.FireParams) (backend.Fired, error) {
	out, err := b.fire(ctx, p)
	if err != nil {
		return backend.Fired{}, translate(err)
	}
	return out, nil
}

func (b *JobStore) fire(ctx context.Context, p backend.FireParams) (backend.Fired, error) {
	var out backend.Fired
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return out, err
	}
	defer tx.Rollback(context.Background())
	var last *string
	err = tx.QueryRow(ctx, `UPDATE storaged_schedules SET next_run_at = $4, last_run_at = `+nowSQL+`
		WHERE queue = $2 AND name = $3 AND next_run_at = $5 RETURNING last_job_id`,
		nowArg(p.Now), p.Queue, p.Name, p.Next, p.Slot).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.Fired = true
	if p.Skip && last != nil {
		var active bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM storaged_jobs WHERE id = $1 AND status IN ('pending', 'processing'))`,
			*last).Scan(&active); err != nil {
			return out, err
		}
		if active {
			p.Jobs = nil
		}
	}
	if len(p.Jobs) > 0 {
		res, err := b.insert(ctx, tx, backend.InsertParams{Queue: p.Queue, Jobs: p.Jobs, Now: p.Now})
		if err != nil {
			return backend.Fired{}, err
		}
		for _, r := range res {
			out.Inserted = append(out.Inserted, r.ID)
		}
		if _, err := tx.Exec(ctx, `UPDATE storaged_schedules SET last_job_id = $3 WHERE queue = $1 AND name = $2`,
			p.Queue, p.Name, out.Inserted[len(out.Inserted)-1]); err != nil {
			return backend.Fired{}, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return backend.Fired{}, err
	}
	return out, nil
}
