package postgres

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.ChangeLog = (*RepositoryBackend)(nil)

// ReadChanges implements backend.ChangeLog. The log's triggers give seqs
// out in commit order (migration 0007), so every seq up to the largest
// visible one is final: a reader may move its cursor to it.
func (b *RepositoryBackend) ReadChanges(ctx context.Context, collection string, after int64, limit int) ([]backend.Change, int64, error) {
	table, err := b.logged(ctx, collection)
	if err != nil {
		return nil, 0, err
	}
	n, _ := strconv.ParseInt(strings.TrimPrefix(table, "storaged_records_"), 10, 64)
	var end, purged int64
	if err := b.pool.QueryRow(ctx, `SELECT seq, purged_upto FROM storaged_change_seq`).Scan(&end, &purged); err != nil {
		return nil, 0, translate(err)
	}
	if after < 0 {
		return nil, end, nil
	}
	if after < purged {
		return nil, 0, backend.CursorExpired()
	}
	rows, err := b.pool.Query(ctx, `SELECT seq, id, op, version, at FROM storaged_record_changes
		WHERE collection_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`, n, after, end, limit)
	if err != nil {
		return nil, 0, translate(err)
	}
	defer rows.Close()
	out := []backend.Change{}
	next := end
	for rows.Next() {
		var c backend.Change
		var seq, at int64
		if err := rows.Scan(&seq, &c.ID, &c.Op, &c.Version, &at); err != nil {
			return nil, 0, translate(err)
		}
		c.At = backend.FormatChangeTime(at)
		out = append(out, c)
		next = seq
	}
	if err := rows.Err(); err != nil {
		return nil, 0, translate(err)
	}
	if len(out) < limit {
		next = end
	}
	return out, next, nil
}

// logged attaches the change-log triggers to collection's table (created
// if need be), once per database: another daemon may have done it.
func (b *RepositoryBackend) logged(ctx context.Context, collection string) (string, error) {
	if t, ok := b.cat.logged.Load(collection); ok {
		return t.(string), nil
	}
	r := &repository{q: b.pool, cat: b.cat, name: collection}
	t, err := r.tableForWrite(ctx)
	if err != nil {
		return "", err
	}
	table := t.name
	n := strings.TrimPrefix(table, "storaged_records_")
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "storaged_log:"+collection); err != nil {
			return err
		}
		var have bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = 'storaged_record_log')`, table).Scan(&have); err != nil || have {
			return err
		}
		for _, stmt := range []string{
			`CREATE TRIGGER storaged_record_log_lock BEFORE INSERT OR UPDATE OR DELETE ON ` + table + ` FOR EACH STATEMENT EXECUTE FUNCTION storaged_record_log_lock()`,
			`CREATE TRIGGER storaged_record_log AFTER INSERT OR UPDATE OR DELETE ON ` + table + ` FOR EACH ROW EXECUTE FUNCTION storaged_record_log('` + n + `')`,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", translate(err)
	}
	b.cat.logged.Store(collection, table)
	return table, nil
}

// purgeChanges deletes log entries older than the retention.
func (b *RepositoryBackend) purgeChanges(ctx context.Context) error {
	cut := b.cat.nowMs() - backend.ChangeRetention.Milliseconds()
	return translate(pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE storaged_change_seq SET purged_upto = greatest(purged_upto,
			coalesce((SELECT max(seq) FROM storaged_record_changes WHERE at < $1), 0))`, cut); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM storaged_record_changes WHERE at < $1`, cut)
		return err
	}))
}
