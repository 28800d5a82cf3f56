package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.FlowStore = (*JobStore)(nil)

// Queue settings are kept in queue_settings and, since only this process
// writes the file, mirrored in memory: a claim of a queue with no settings
// pays a map lookup, not a statement.

// flowRow is a configured queue's settings and its rate window.
type flowRow struct {
	s           backend.QueueSettings
	window      int64
	windowCount int
}

func (f *flowRow) count(nowMs int64) int {
	if f.s.RateLimit == nil || f.window != f.s.RateLimit.Window(nowMs) {
		return 0
	}
	return f.windowCount
}

// loadFlow reads every queue's settings once.
func (b *JobStore) loadFlow(ctx context.Context) error {
	b.flowMu.Lock()
	defer b.flowMu.Unlock()
	if b.flow != nil {
		return nil
	}
	rows, err := b.db.reader.QueryContext(ctx, `SELECT queue, paused, concurrency, rate_max, rate_ms, rate_window, rate_count FROM queue_settings`)
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	flow := map[string]*flowRow{}
	for rows.Next() {
		var q string
		var f flowRow
		var conc, rmax, rms sql.NullInt64
		if err := rows.Scan(&q, &f.s.Paused, &conc, &rmax, &rms, &f.window, &f.windowCount); err != nil {
			return translate(err)
		}
		if conc.Valid {
			c := int(conc.Int64)
			f.s.Concurrency = &c
		}
		if rmax.Valid && rms.Valid {
			f.s.RateLimit = &backend.RateLimit{Max: int(rmax.Int64), DurationMs: rms.Int64}
		}
		flow[q] = &f
	}
	if err := rows.Err(); err != nil {
		return translate(err)
	}
	b.flow = flow
	return nil
}

// flowOf returns a copy of queue's settings row, nil if it has none
// (loadFlow done).
func (b *JobStore) flowOf(queue string) *flowRow {
	b.flowMu.Lock()
	defer b.flowMu.Unlock()
	f := b.flow[queue]
	if f == nil {
		return nil
	}
	c := *f
	return &c
}

// limitClaim is, inside the claim's writer transaction, how many of want
// the queue's settings let through and when a held-back claim may pass.
func (b *JobStore) limitClaim(ctx context.Context, tx *sql.Tx, f *flowRow, queue string, want int, now int64) (int, time.Duration, error) {
	inFlight := 0
	if f.s.Concurrency != nil {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE queue = ? AND status = 'processing' AND lease_expires_at > ?`,
			queue, now).Scan(&inFlight); err != nil {
			return 0, 0, err
		}
	}
	n, next := f.s.Allowance(want, inFlight, f.count(now), now)
	return n, next, nil
}

// claimedUnderRate counts n claims in the rate window, in the claim's
// transaction and in the mirror at once: the next claim may start as soon
// as this one commits. Were the transaction to roll back, the mirror
// counts claims that did not happen, which errs on the safe side.
func (b *JobStore) claimedUnderRate(ctx context.Context, tx *sql.Tx, f *flowRow, queue string, n int, now int64) error {
	if f.s.RateLimit == nil || n == 0 {
		return nil
	}
	f.windowCount = f.count(now) + n
	f.window = f.s.RateLimit.Window(now)
	b.flowMu.Lock()
	if cur := b.flow[queue]; cur != nil {
		cur.window, cur.windowCount = f.window, f.windowCount
	}
	b.flowMu.Unlock()
	_, err := tx.ExecContext(ctx, `UPDATE queue_settings SET rate_window = ?, rate_count = ? WHERE queue = ?`, f.window, f.windowCount, queue)
	return err
}

// nextLeaseExpiry is how long until the first claim of queue runs out
// (a concurrency slot frees then at the latest).
func nextLeaseExpiry(ctx context.Context, tx *sql.Tx, queue string, now int64) (time.Duration, error) {
	var next sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(lease_expires_at) FROM jobs WHERE queue = ? AND status = 'processing' AND lease_expires_at > ?`,
		queue, now).Scan(&next); err != nil || !next.Valid {
		return 0, err
	}
	return max(time.Duration(next.Int64-now)*time.Millisecond, time.Millisecond), nil
}

// QueueSettings implements backend.FlowStore.
func (b *JobStore) QueueSettings(ctx context.Context, queues []string) ([]backend.QueueSettings, error) {
	if err := b.loadFlow(ctx); err != nil {
		return nil, err
	}
	b.flowMu.Lock()
	defer b.flowMu.Unlock()
	out := make([]backend.QueueSettings, len(queues))
	for i, q := range queues {
		if f := b.flow[q]; f != nil {
			out[i] = f.s.Clone()
		}
	}
	return out, nil
}

// SetQueueSettings implements backend.FlowStore. The rate window's count
// survives a change of the other settings.
func (b *JobStore) SetQueueSettings(ctx context.Context, queue string, s backend.QueueSettings) error {
	return b.setFlow(ctx, queue, func(cur *backend.QueueSettings) { *cur = s.Clone() })
}

// SetPaused implements backend.FlowStore.
func (b *JobStore) SetPaused(ctx context.Context, queue string, paused bool) error {
	return b.setFlow(ctx, queue, func(cur *backend.QueueSettings) { cur.Paused = paused })
}

func (b *JobStore) setFlow(ctx context.Context, queue string, change func(*backend.QueueSettings)) error {
	if err := b.loadFlow(ctx); err != nil {
		return err
	}
	// The writer serializes this with claims, so the mirror changes in
	// it; a transaction that fails drops the mirror, to be read again.
	err := b.inWriter(ctx, func(tx *sql.Tx) error {
		b.flowMu.Lock()
		defer b.flowMu.Unlock()
		var next flowRow
		if cur := b.flow[queue]; cur != nil {
			next = *cur
		}
		change(&next.s)
		var err error
		if next.s.IsZero() {
			_, err = tx.ExecContext(ctx, `DELETE FROM queue_settings WHERE queue = ?`, queue)
		} else {
			var conc, rmax, rms any
			if c := next.s.Concurrency; c != nil {
				conc = *c
			}
			if r := next.s.RateLimit; r != nil {
				rmax, rms = r.Max, r.DurationMs
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO queue_settings (queue, paused, concurrency, rate_max, rate_ms) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, concurrency = excluded.concurrency,
					rate_max = excluded.rate_max, rate_ms = excluded.rate_ms`, queue, next.s.Paused, conc, rmax, rms)
		}
		if err != nil {
			return err
		}
		if next.s.IsZero() {
			delete(b.flow, queue)
		} else {
			b.flow[queue] = &next
		}
		return nil
	})
	if err != nil {
		b.flowMu.Lock()
		b.flow = nil
		b.flowMu.Unlock()
	}
	return err
}
