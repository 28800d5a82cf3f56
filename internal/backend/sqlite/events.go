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
//
// Only queues whose feed someone reads are numbered (a row in
// event_queues, made by the first read, for good): the others keep
// event_seq NULL, so their transitions add no entry to the partial index
// jobs_events, whose upkeep would be a good part of a drain's cost. As on
// PostgreSQL, a read starts at a head taken after the switch, so the feed
// looks as if it had always been on.

// loadFeed reads the queues whose feed is on, once; b.feedMu is held.
func (b *JobStore) loadFeed(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) error {
	if b.feed != nil {
		return nil
	}
	rows, err := q.QueryContext(ctx, `SELECT queue FROM event_queues`)
	if err != nil {
		return err
	}
	defer rows.Close()
	feed := map[string]bool{}
	for rows.Next() {
		var queue string
		if err := rows.Scan(&queue); err != nil {
			return err
		}
		feed[queue] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	b.setFeed(feed)
	return nil
}

func (b *JobStore) setFeed(feed map[string]bool) {
	b.feed = feed
	list := make([]string, 0, len(feed))
	for q := range feed {
		list = append(list, q)
	}
	j, _ := json.Marshal(list)
	b.feedQueues = string(j)
}

// stampOf is the number a write to queue stamps its jobs with: the next
// one when the queue's feed is on, else NULL. tx must be the writer's.
func (b *JobStore) stampOf(ctx context.Context, tx *sql.Tx, queue string) (any, error) {
	b.feedMu.Lock()
	err := b.loadFeed(ctx, tx)
	on := b.feed[queue]
	b.feedMu.Unlock()
	if err != nil || !on {
		return nil, err
	}
	return b.nextSeq(ctx, tx)
}

// settleStamp is what a settle, whose jobs may be of any queue, stamps:
// the next number (NULL when no feed is on) and the queues whose feed is
// on (feedSeq).
func (b *JobStore) settleStamp(ctx context.Context, tx *sql.Tx) (any, string, error) {
	b.feedMu.Lock()
	err := b.loadFeed(ctx, tx)
	queues, none := b.feedQueues, len(b.feed) == 0
	b.feedMu.Unlock()
	if err != nil || none {
		return nil, "[]", err
	}
	seq, err := b.nextSeq(ctx, tx)
	return seq, queues, err
}

// feedSeq is the stamp of a settle's row of the queue the SQL expression q
// names: ?3 (the number) where the queue's feed is on (?4, a JSON array).
func feedSeq(q string) string {
	return `CASE WHEN ` + q + ` IN (SELECT value FROM json_each(?4)) THEN ?3 END`
}

// nextSeq takes the next number; tx must be the writer's.
func (b *JobStore) nextSeq(ctx context.Context, tx *sql.Tx) (uint64, error) {
	if b.seq.Load() == 0 {
		var top sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(event_seq) FROM jobs`).Scan(&top); err != nil {
			return 0, err
		}
		b.seq.CompareAndSwap(0, uint64(top.Int64)+1) //nolint:gosec // sequence numbers start at 1 and stay below 2^63
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
	rows, err := b.db.reader.QueryContext(ctx, eventsSQL, p.Queue, int64(p.After.Seq), p.After.ID, p.Limit) //nolint:gosec // a cursor past 2^63 matches nothing, as it should
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
		e.Type, e.At, e.Pos = backend.EventType(typ), ms(at), backend.EventPos{Seq: uint64(seq), ID: e.JobID} //nolint:gosec // sequence numbers start at 1 and stay below 2^63
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

// EventHead implements backend.EventStore: past the last number taken.
// It turns the queue's feed on first (in the writer, so that every write
// after it stamps the queue's jobs).
func (b *JobStore) EventHead(ctx context.Context, queue string) (backend.EventPos, error) {
	b.feedMu.Lock()
	on := b.feed[queue]
	b.feedMu.Unlock()
	if !on || b.seq.Load() == 0 {
		err := b.inWriter(ctx, func(tx *sql.Tx) error {
			b.feedMu.Lock()
			defer b.feedMu.Unlock()
			if err := b.loadFeed(ctx, tx); err != nil {
				return err
			}
			if !b.feed[queue] {
				if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO event_queues (queue, created_at) VALUES (?, ?)`,
					queue, backend.Now().UnixMilli()); err != nil {
					return err
				}
			}
			// Numbered from the file's largest on (nextSeq), so that the
			// head is past every stamp there.
			_, err := b.nextSeq(ctx, tx)
			return err
		})
		if err != nil {
			return backend.EventPos{}, err
		}
		b.feedMu.Lock()
		if !b.feed[queue] {
			feed := make(map[string]bool, len(b.feed)+1)
			for q := range b.feed {
				feed[q] = true
			}
			feed[queue] = true
			b.setFeed(feed)
		}
		b.feedMu.Unlock()
	}
	return backend.EventPos{Seq: b.seq.Load() + 1}, nil
}
