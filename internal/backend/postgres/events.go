package postgres

import (
	"context"
	"strconv"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.EventStore = (*JobStore)(nil)

// The feed (migration 0009) is the queue's jobs ordered by the id of the
// transaction that stamped each one last (event_xid), then by job id. A
// transaction's id is taken when it starts writing, not when it commits,
// so a stamp with a small id may commit after one with a larger id: a
// reader that handed out the larger one would skip the smaller for good.
// So a read hands out only stamps below the oldest transaction still
// running (pg_snapshot_xmin of its own snapshot): every transaction below
// it has ended, and every later stamp will be at or above it. This is the
// transactional outbox's technique; it needs no counter row, so writers
// never wait for each other to stamp. The price: a transaction left open
// anywhere on the cluster (a long records transaction, a manual psql
// session that wrote something) holds the feed back until it ends.
const eventsSQL = `SELECT j.event, j.id, j.event_at, j.attempts, j.event_xid::text,
		CASE WHEN j.event = 'completed' THEN j.result::text END,
		CASE WHEN j.event = 'progress' THEN j.progress::text END,
		CASE WHEN j.event IN ('failed', 'retried') THEN j.last_error::text END,
		j.event_xid < h.x
	FROM storaged_jobs j, (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x) h
	WHERE j.queue = $1 AND j.event_xid >= $2::text::xid8 AND (j.event_xid > $2::text::xid8 OR j.id > $3)
	ORDER BY j.event_xid, j.id LIMIT $4`

// Events implements backend.EventStore.
func (b *JobStore) Events(ctx context.Context, p backend.EventsParams) (backend.EventPage, error) {
	var out backend.EventPage
	rows, err := b.pool.Query(ctx, eventsSQL, p.Queue, strconv.FormatUint(p.After.Seq, 10), p.After.ID, p.Limit)
	if err != nil {
		return out, translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var e backend.Event
		var xid, typ string
		var result, progress, lastErr *string
		var visible bool
		var at time.Time
		if err := rows.Scan(&typ, &e.JobID, &at, &e.Attempt, &xid, &result, &progress, &lastErr, &visible); err != nil {
			return out, translate(err)
		}
		if !visible {
			// Stamps from here on wait for older transactions to end.
			out.Pending = true
			break
		}
		e.Type, e.At = backend.EventType(typ), at.UTC()
		seq, err := strconv.ParseUint(xid, 10, 64)
		if err != nil {
			return out, backend.Wrap(err, backend.CodeInternal, "postgres: a transaction id that is not a number")
		}
		e.Pos = backend.EventPos{Seq: seq, ID: e.JobID}
		if result != nil {
			e.Result = json.RawMessage(*result)
		}
		if progress != nil {
			e.Progress = json.RawMessage(*progress)
		}
		if lastErr != nil {
			e.Error = &backend.JobError{}
			if err := json.Unmarshal([]byte(*lastErr), e.Error); err != nil {
				return out, backend.Wrap(err, backend.CodeInternal, "postgres: a job's lastError is not JSON")
			}
		}
		out.Events = append(out.Events, e)
	}
	return out, translate(rows.Err())
}

// EventHead implements backend.EventStore: every stamp to come is at or
// above the oldest transaction running now. It turns the queue's feed on
// first (for good, on every daemon): until someone reads a queue's
// events, its transitions leave the transaction id out and cost the
// feed's index nothing. A read can only start at a head, so a feed that
// starts when it is first read looks the same as one that was always on,
// but for the changes in flight at that first read, which may not appear.
func (b *JobStore) EventHead(ctx context.Context, queue string) (backend.EventPos, error) {
	if _, err := b.pool.Exec(ctx, `INSERT INTO storaged_event_queues (queue) VALUES ($1) ON CONFLICT DO NOTHING`, queue); err != nil {
		return backend.EventPos{}, translate(err)
	}
	var xmin string
	if err := b.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&xmin); err != nil {
		return backend.EventPos{}, translate(err)
	}
	seq, err := strconv.ParseUint(xmin, 10, 64)
	if err != nil {
		return backend.EventPos{}, backend.Wrap(err, backend.CodeInternal, "postgres: a transaction id that is not a number")
	}
	return backend.EventPos{Seq: seq}, nil
}
