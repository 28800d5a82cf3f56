package sqlite

import (
	"context"
	"strconv"
	"strings"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.ChangeLog = (*RepositoryBackend)(nil)

// logDDL attaches the change-log triggers to table t of catalog row n.
// The single writer commits in seq order, so seq is the cursor.
func logDDL(t string) []string {
	bare := strings.Trim(t, `"`)
	n := strings.TrimPrefix(bare, "records_")
	at := `CAST(unixepoch('subsec') * 1000 AS INTEGER)`
	ins := `INSERT INTO record_changes (collection_id, id, op, version, at) VALUES (` + n + `, `
	return []string{
		`CREATE TRIGGER IF NOT EXISTS "` + bare + `_log_insert" AFTER INSERT ON ` + t + ` BEGIN ` + ins + `NEW.id, 'create', NEW.version, ` + at + `); END`,
		`CREATE TRIGGER IF NOT EXISTS "` + bare + `_log_update" AFTER UPDATE ON ` + t + ` BEGIN ` + ins +
			`NEW.id, CASE WHEN NEW.version = 1 THEN 'create' ELSE 'update' END, NEW.version, ` + at + `); END`,
		`CREATE TRIGGER IF NOT EXISTS "` + bare + `_log_delete" AFTER DELETE ON ` + t + ` BEGIN ` + ins + `OLD.id, 'delete', OLD.version, ` + at + `); END`,
	}
}

// ReadChanges implements backend.ChangeLog.
func (b *RepositoryBackend) ReadChanges(ctx context.Context, collection string, after int64, limit int) ([]backend.Change, int64, error) {
	table, err := b.logged(ctx, collection)
	if err != nil {
		return nil, 0, err
	}
	n, _ := strconv.ParseInt(strings.TrimPrefix(strings.Trim(table, `"`), "records_"), 10, 64)
	var end, purged int64
	if err := b.db.reader.QueryRowContext(ctx, `SELECT coalesce((SELECT max(seq) FROM record_changes), 0), purged_upto FROM record_changes_meta`).Scan(&end, &purged); err != nil {
		return nil, 0, translate(err)
	}
	if after < 0 {
		return nil, end, nil
	}
	if after < purged {
		return nil, 0, backend.CursorExpired()
	}
	rows, err := b.db.reader.QueryContext(ctx, `SELECT seq, id, op, version, at FROM record_changes WHERE collection_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
		n, after, end, limit)
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

// logged makes sure collection's writes are logged, creating its table
// if need be (so that the triggers have one), and returns the table.
func (b *RepositoryBackend) logged(ctx context.Context, collection string) (string, error) {
	if t, ok := b.cat.logged.Load(collection); ok {
		return t.(string), nil
	}
	r := &repository{db: b.db, cat: b.cat, name: collection}
	var table string
	err := r.write(ctx, true, func(q querier, t string) error {
		table = t
		for _, stmt := range logDDL(t) {
			if _, err := q.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	b.cat.logged.Store(collection, table)
	return table, nil
}

// purgeChanges deletes log entries older than the retention.
func (b *RepositoryBackend) purgeChanges(ctx context.Context) error {
	t, err := b.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	defer t.Rollback()
	cut := b.cat.nowMs() - backend.ChangeRetention.Milliseconds()
	if _, err := t.ExecContext(ctx, `UPDATE record_changes_meta SET purged_upto = max(purged_upto, coalesce((SELECT max(seq) FROM record_changes WHERE at < ?), 0))`, cut); err != nil {
		return translate(err)
	}
	if _, err := t.ExecContext(ctx, `DELETE FROM record_changes WHERE at < ?`, cut); err != nil {
		return translate(err)
	}
	return translate(t.Commit())
}
