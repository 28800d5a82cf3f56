package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.ScheduleStore = (*JobStore)(nil)

// Schedules live in the schedules table. Every change goes through the
// writer, so a fire's check of the slot, its insert and its move of the
// slot are one transaction that nothing interleaves with.

const scheduleColumns = `queue, name, spec, next_run_at, last_job_id, last_run_at, created_at, updated_at`

func scanSchedule(s scanner) (backend.Schedule, error) {
	var out backend.Schedule
	var spec string
	var next, created, updated int64
	var last sql.NullString
	var lastRun sql.NullInt64
	if err := s.Scan(&out.Queue, &out.Name, &spec, &next, &last, &lastRun, &created, &updated); err != nil {
		return out, err
	}
	if err := json.Unmarshal([]byte(spec), &out.ScheduleSpec); err != nil {
		return out, err
	}
	out.Next, out.CreatedAt, out.UpdatedAt = ms(next), ms(created), ms(updated)
	out.LastJobID, out.LastRunAt = last.String, nullMs(lastRun)
	return out, nil
}

// PutSchedule implements backend.ScheduleStore.
func (b *JobStore) PutSchedule(ctx context.Context, s backend.Schedule) (out backend.Schedule, changed bool, err error) {
	key := backend.SpecKey(s.ScheduleSpec)
	err = b.inWriter(ctx, func(tx *sql.Tx) error {
		cur, err := scanSchedule(tx.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE queue = ? AND name = ?`, s.Queue, s.Name))
		switch {
		case err == nil && backend.SpecKey(cur.ScheduleSpec) == key:
			out = cur
			return nil
		case err == nil:
			s.CreatedAt, s.LastJobID, s.LastRunAt = cur.CreatedAt, cur.LastJobID, cur.LastRunAt
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO schedules (queue, name, spec, next_run_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (queue, name) DO UPDATE SET spec = excluded.spec, next_run_at = excluded.next_run_at, updated_at = excluded.updated_at`,
			s.Queue, s.Name, key, s.Next.UnixMilli(), s.CreatedAt.UnixMilli(), s.UpdatedAt.UnixMilli())
		out, changed = s, true
		return err
	})
	return out, changed, err
}

func (b *JobStore) querySchedules(ctx context.Context, q string, args ...any) ([]backend.Schedule, error) {
	rows, err := b.db.reader.QueryContext(ctx, q, args...)
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
	return b.querySchedules(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE queue = ? ORDER BY name`, queue)
}

// GetSchedule implements backend.ScheduleStore.
func (b *JobStore) GetSchedule(ctx context.Context, queue, name string) (*backend.Schedule, error) {
	got, err := b.querySchedules(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE queue = ? AND name = ?`, queue, name)
	if err != nil || len(got) == 0 {
		return nil, err
	}
	return &got[0], nil
}

// DeleteSchedule implements backend.ScheduleStore.
func (b *JobStore) DeleteSchedule(ctx context.Context, queue, name string) (found bool, err error) {
	err = b.inWriter(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM schedules WHERE queue = ? AND name = ?`, queue, name)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		found = n > 0
		return err
	})
	return found, err
}

// DueSchedules implements backend.ScheduleStore.
func (b *JobStore) DueSchedules(ctx context.Context, now time.Time, limit int) ([]backend.Schedule, time.Time, error) {
	now = backend.NowOr(now)
	out, err := b.querySchedules(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE next_run_at <= ? ORDER BY next_run_at LIMIT ?`,
		now.UnixMilli(), limit)
	return out, now, err
}

// FireSchedule implements backend.ScheduleStore.
func (b *JobStore) FireSchedule(ctx context.Context, p backend.FireParams) (out backend.Fired, err error) {
	now := backend.NowOr(p.Now)
	err = b.inWriter(ctx, func(tx *sql.Tx) error {
		var last sql.NullString
		err := tx.QueryRowContext(ctx, `UPDATE schedules SET next_run_at = ?, last_run_at = ? WHERE queue = ? AND name = ? AND next_run_at = ?
			RETURNING last_job_id`, p.Next.UnixMilli(), now.UnixMilli(), p.Queue, p.Name, p.Slot.UnixMilli()).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // moved by someone else first
		}
		if err != nil {
			return err
		}
		out.Fired = true
		if p.Skip && last.Valid {
			var status backend.JobStatus
			err := tx.QueryRowContext(ctx, `SELECT status FROM jobs WHERE id = ?`, last.String).Scan(&status)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if status == backend.StatusPending || status == backend.StatusProcessing {
				return nil
			}
		}
		if len(p.Jobs) == 0 {
			return nil
		}
		res, err := b.insertTx(ctx, tx, backend.InsertParams{Queue: p.Queue, Jobs: p.Jobs, Now: now})
		if err != nil {
			return err
		}
		for _, r := range res {
			out.Inserted = append(out.Inserted, r.ID)
		}
		_, err = tx.ExecContext(ctx, `UPDATE schedules SET last_job_id = ? WHERE queue = ? AND name = ?`, out.Inserted[len(out.Inserted)-1], p.Queue, p.Name)
		return err
	})
	if err != nil {
		return backend.Fired{}, err
	}
	return out, nil
}
