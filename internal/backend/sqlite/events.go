package sqlite

import (
	"context"
	"database/sql"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.EventStore = (*JobStore)(nil)

// The feed (migration 0007) is the queue's jobs ordered by event_seq, then
// id. Every writing call takes one number from seq inside the writer
// transaction; the writer is the file's only one, so numbers are taken in
// commit order and a reader that sees a number committed has seen every
// smaller one that will ever be (rolled-back ones leave gaps). The counter
// lives in this process and starts, at the first write, from the largest
// number in the file: only this daemon writes the file's jobs.

// nextSeq takes the next number; tx must be the writer's.
func (b *JobStore) nextSeq(ctx context.Context, tx *sql.Tx) (uint64, error) {
	if b.seq.Load() == 0 {
		var top sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(event_seq) FROM jobs`).Scan(&top); err != nil {
			return 0, err
		}
		b.seq.CompareAndSwap(0, uint64(top.Int64)+1)
	}
	return b.seq.Add(1), nil
}

const eventsSQL = `SELECT event, id, event_at, attempts, event_seq,
		CASE WHEN event = 'completed' THEN result END,
		CASE WHEN event = 'progress' THEN progress END,
		CASE WHEN event IN ('failed', 'retried') THEN last_error END
	FROM jobs WHERE queue = ?1 AND event_seq >= ?2 AND (event_seq > ?2 OR id > ?3)
	ORDER BY event_seq, id LIMIT ?4`

// Events implements backend.EventStore.
func (b *JobStore) Events(ctx context.Context, p backend.EventsParams) (backend.EventPage, error) {
	var out backend.EventPage
	rows, err := b.db.reader.QueryContext(ctx, eventsSQL, p.Queue, int64(p.After.Seq), p.After.ID, p.Limit)
	if err != nil {
		return out, translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var e backend.Event
		var typ string
		var at, seq int64
		var result, progress, lastErr sql.NullString
		if err := rows.Scan(&typ, &e.JobID, &at, &e.Attempt, &seq, &result, &progress, &lastErr); err != nil {
			return out, translate(err)
		}
		e.Type, e.At, e.Pos = backend.EventType(typ), ms(at), backend.EventPos{Seq: uint64(seq), ID: e.JobID}
		if result.Valid {
			e.Result = json.RawMessage(result.String)
		}
		if progress.Valid {
			e.Progress = json.RawMessage(progress.String)
		}
		if lastErr.Valid {
			e.Error = &backend.JobError{}
			if err := json.Unmarshal([]byte(lastErr.String), e.Error); err != nil {
				return out, backend.Wrap(err, backend.CodeInternal, "sqlite: a job's lastError is not JSON")
			}
		}
		out.Events = append(out.Events, e)
	}
	return out, translate(rows.Err())
}

// EventHead implements backend.EventStore: past the last number taken
// (or, before the first write, the largest in the file).
func (b *JobStore) EventHead(ctx context.Context, _ string) (backend.EventPos, error) {
	if n := b.seq.Load(); n != 0 {
		return backend.EventPos{Seq: n + 1}, nil
	}
	var top sql.NullInt64
	if err := b.db.reader.QueryRowContext(ctx, `SELECT max(event_seq) FROM jobs`).Scan(&top); err != nil {
		return backend.EventPos{}, translate(err)
	}
	return backend.EventPos{Seq: uint64(top.Int64) + 1}, nil
}
