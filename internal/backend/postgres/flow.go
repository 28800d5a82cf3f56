package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.FlowStore = (*JobStore)(nil)

// Flow control (issue 16). A queue with settings has a row in
// storaged_queue_settings; the claim of every other queue pays one probe
// of that table's primary key inside its statement (noSettings) and
// nothing more. When the row is there the plain claim takes nothing and
// the store claims again in a transaction that locks the row first, so
// that the claims of that queue, on every daemon, take turns: each one
// counts the claims in flight and in the rate window after the one before
// it committed.

// noSettings keeps the plain claim off queues that have settings.
const noSettings = ` AND NOT EXISTS (SELECT 1 FROM storaged_queue_settings s WHERE s.queue = $2)`

// claimLimitedSQL is the claim with the limit computed by claimLimited.
var claimLimitedSQL = strings.ReplaceAll(claimSQL, noSettings, "")

// claimLimited claims for a queue that has settings.
func (b *JobStore) claimLimited(ctx context.Context, p backend.ClaimParams) (backend.Claimed, error) {
	var out backend.Claimed
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return out, translate(err)
	}
	defer tx.Rollback(context.Background())
	var set backend.QueueSettings
	var conc, rateMax *int
	var rateMs *int64
	var window int64
	var windowCount int
	var now time.Time
	err = tx.QueryRow(ctx, `SELECT paused, concurrency, rate_max, rate_ms, rate_window, rate_count
		FROM storaged_queue_settings WHERE queue = $1 FOR UPDATE`, p.Queue).
		Scan(&set.Paused, &conc, &rateMax, &rateMs, &window, &windowCount)
	if errors.Is(err, pgx.ErrNoRows) {
		// The settings went meanwhile: claim as any queue.
		tx.Rollback(ctx)
		return b.Claim(ctx, p)
	}
	if err != nil {
		return out, translate(err)
	}
	// The time is read once the lock is held, in a statement of its own: a
	// statement's time is when it began, so read with the lock it was
	// before the wait for the lock, and a claim that waited through a
	// window's turn counted itself in the window before, reset the count
	// of the new one, and let the next claimer take the new window's
	// allowance again (three daemons: 8 claims in a window of 4).
	if err := tx.QueryRow(ctx, `SELECT `+nowSQL, nowArg(p.Now)).Scan(&now); err != nil {
		return out, translate(err)
	}
	now = now.UTC()
	nowMs := now.UnixMilli()
	set.Concurrency = conc
	if rateMax != nil && rateMs != nil {
		set.RateLimit = &backend.RateLimit{Max: *rateMax, DurationMs: *rateMs}
		if window != set.RateLimit.Window(nowMs) {
			windowCount = 0
		}
	}
	inFlight := 0
	if set.Concurrency != nil {
		// A statement of its own, after the lock: it sees the claims of
		// whoever held the lock before.
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM storaged_jobs WHERE queue = $1 AND lease_expires_at > $2`,
			p.Queue, now).Scan(&inFlight); err != nil {
			return out, translate(err)
		}
	}
	want, next := set.Allowance(p.Max, inFlight, windowCount, nowMs)
	out.Next, out.Limited = next, want < p.Max
	if want > 0 {
		expired, _ := backend.Marshal(p.Expired)
		rows, err := tx.Query(ctx, claimLimitedSQL, now, p.Queue, p.Token, p.Lease.Milliseconds(), want, string(expired))
		if err != nil {
			return out, translate(err)
		}
		for rows.Next() {
			j, err := scanJob(rows)
			if err != nil {
				rows.Close()
				return out, translate(err)
			}
			out.Jobs = append(out.Jobs, j)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return out, translate(err)
		}
		slices.SortFunc(out.Jobs, claimOrder)
	}
	if set.RateLimit != nil && len(out.Jobs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE storaged_queue_settings SET rate_window = $2, rate_count = $3 WHERE queue = $1`,
			p.Queue, set.RateLimit.Window(nowMs), windowCount+len(out.Jobs)); err != nil {
			return out, translate(err)
		}
	}
	if len(out.Jobs) < p.Max && out.Next == 0 && !set.Paused {
		// The limit ran dry: a slot frees when a claim's lease runs out at
		// the latest. The queue ran dry: its next job or lease expiry.
		q := nextSQL
		if out.Limited && len(out.Jobs) == want {
			q = `SELECT extract(epoch FROM (SELECT min(lease_expires_at) FROM storaged_jobs
				WHERE queue = $2 AND lease_expires_at > $1) - $1) * 1000, true`
		}
		var ms *float64
		var ignore bool
		if err := tx.QueryRow(ctx, q, now, p.Queue).Scan(&ms, &ignore); err != nil {
			return out, translate(err)
		}
		if ms != nil {
			out.Next = max(time.Duration(*ms*float64(time.Millisecond)), time.Millisecond)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return backend.Claimed{}, translate(err)
	}
	return out, nil
}

// QueueSettings implements backend.FlowStore.
func (b *JobStore) QueueSettings(ctx context.Context, queues []string) ([]backend.QueueSettings, error) {
	rows, err := b.pool.Query(ctx, `SELECT queue, paused, concurrency, rate_max, rate_ms FROM storaged_queue_settings
		WHERE queue = ANY($1)`, queues)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	got := map[string]backend.QueueSettings{}
	for rows.Next() {
		var q string
		var s backend.QueueSettings
		var rateMax *int
		var rateMs *int64
		if err := rows.Scan(&q, &s.Paused, &s.Concurrency, &rateMax, &rateMs); err != nil {
			return nil, translate(err)
		}
		if rateMax != nil && rateMs != nil {
			s.RateLimit = &backend.RateLimit{Max: *rateMax, DurationMs: *rateMs}
		}
		got[q] = s
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	out := make([]backend.QueueSettings, len(queues))
	for i, q := range queues {
		out[i] = got[q].Clone()
	}
	return out, nil
}

// SetQueueSettings implements backend.FlowStore: the row is replaced (its
// rate window's count kept), or deleted when s limits nothing, and every
// daemon's polls of the queue are woken at commit.
func (b *JobStore) SetQueueSettings(ctx context.Context, queue string, s backend.QueueSettings) error {
	batch := &pgx.Batch{}
	if s.IsZero() {
		batch.Queue(`DELETE FROM storaged_queue_settings WHERE queue = $1`, queue)
	} else {
		var rateMax *int
		var rateMs *int64
		if r := s.RateLimit; r != nil {
			rateMax, rateMs = &r.Max, &r.DurationMs
		}
		batch.Queue(`INSERT INTO storaged_queue_settings (queue, paused, concurrency, rate_max, rate_ms) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, concurrency = excluded.concurrency,
				rate_max = excluded.rate_max, rate_ms = excluded.rate_ms`, queue, s.Paused, s.Concurrency, rateMax, rateMs)
	}
	batch.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, queue)
	return translate(b.pool.SendBatch(ctx, batch).Close())
}

// SetPaused implements backend.FlowStore. Resuming a queue whose row
// then limits nothing deletes the row, so that its claims take the fast
// path again.
func (b *JobStore) SetPaused(ctx context.Context, queue string, paused bool) error {
	batch := &pgx.Batch{}
	if paused {
		batch.Queue(`INSERT INTO storaged_queue_settings (queue, paused) VALUES ($1, true)
			ON CONFLICT (queue) DO UPDATE SET paused = true`, queue)
	} else {
		batch.Queue(`UPDATE storaged_queue_settings SET paused = false WHERE queue = $1`, queue)
		batch.Queue(`DELETE FROM storaged_queue_settings WHERE queue = $1 AND NOT paused AND concurrency IS NULL AND rate_max IS NULL`, queue)
	}
	batch.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, queue)
	return translate(b.pool.SendBatch(ctx, batch).Close())
}
