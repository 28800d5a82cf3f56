package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// tableDDL creates a collection's table t, with the index the purge of
// expired records walks.
func tableDDL(t string) []string {
	return []string{
		`CREATE TABLE ` + t + ` (id TEXT PRIMARY KEY, doc TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, expires_at INTEGER) WITHOUT ROWID`,
		expiryIndexDDL(t),
	}
}

func expiryIndexDDL(t string) string {
	return `CREATE INDEX IF NOT EXISTS "` + strings.Trim(t, `"`) + `_expiry" ON ` + t + ` (expires_at) WHERE expires_at IS NOT NULL`
}

// liveSQL holds for records that have not expired, given now (Unix ms).
const liveSQL = `(expires_at IS NULL OR expires_at > ?)`

func (c *compiler) live(now int64) string {
	c.args = append(c.args, now)
	return liveSQL
}

// expiryArg is an expiry as SQL: NULL for never.
func expiryArg(ms int64) any {
	if ms == 0 {
		return nil
	}
	return ms
}

// SetClock implements backend.Expirer.
func (b *RepositoryBackend) SetClock(now func() time.Time) {
	b.cat.clockMu.Lock()
	b.cat.clock = now
	b.cat.clockMu.Unlock()
}

func (c *catalog) nowMs() int64 {
	c.clockMu.Lock()
	defer c.clockMu.Unlock()
	if c.clock == nil {
		return backend.Now().UnixMilli()
	}
	return c.clock().UnixMilli()
}

// PurgeExpired implements backend.Expirer: one DELETE per collection, on
// the writer, each in a transaction of its own.
func (b *RepositoryBackend) PurgeExpired(ctx context.Context) (int64, error) {
	names, err := column(ctx, b.db.reader, `SELECT name FROM collections ORDER BY id`)
	if err != nil {
		return 0, translate(err)
	}
	var total int64
	for _, name := range names {
		r := &repository{db: b.db, cat: b.cat, name: name}
		err := r.write(ctx, false, func(q querier, table string) error {
			if table == "" {
				return nil
			}
			res, err := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE expires_at <= ?`, b.cat.nowMs())
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
			return nil
		})
		if err != nil {
			return total, err
		}
	}
	return total, b.purgeChanges(ctx)
}

// addVersions is the code of migration 0005: version and expiry columns
// for every collection's table that lacks them (tables that migration 0002 created
// from older records have it already).
func addVersions(ctx context.Context, tx *sql.Tx) error {
	ids, err := column(ctx, tx, `SELECT id FROM collections ORDER BY id`)
	if err != nil {
		return err
	}
	for _, id := range ids {
		t := `"records_` + id + `"`
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = 'version'`, "records_"+id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		for _, stmt := range []string{
			`ALTER TABLE ` + t + ` ADD COLUMN version INTEGER NOT NULL DEFAULT 1`,
			`ALTER TABLE ` + t + ` ADD COLUMN expires_at INTEGER`,
			expiryIndexDDL(t),
		} {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *repository) Get(ctx context.Context, id string) (backend.Item, error) {
	var it backend.Item
	err := r.read(ctx, func(q querier, table string) error {
		var doc string
		var exp sql.NullInt64
		err := q.QueryRowContext(ctx, `SELECT doc, version, expires_at FROM `+table+` WHERE id = ? AND `+liveSQL, id, r.cat.nowMs()).Scan(&doc, &it.Version, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		it.Rec, it.ExpiresAt = backend.Record(doc), exp.Int64
		return err
	})
	return it, err
}

func (r *repository) GetMany(ctx context.Context, ids []string) ([]backend.Item, error) {
	out := make([]backend.Item, len(ids))
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	err = r.read(ctx, func(q querier, table string) error {
		rows, err := q.QueryContext(ctx, `SELECT id, doc, version, expires_at FROM `+table+` WHERE id IN (SELECT value FROM json_each(?)) AND `+liveSQL,
			string(list), r.cat.nowMs())
		if err != nil {
			return err
		}
		defer rows.Close()
		found := map[string]backend.Item{}
		for rows.Next() {
			var id, doc string
			var v int64
			var exp sql.NullInt64
			if err := rows.Scan(&id, &doc, &v, &exp); err != nil {
				return err
			}
			found[id] = backend.Item{Rec: backend.Record(doc), Version: v, ExpiresAt: exp.Int64}
		}
		for i, id := range ids {
			out[i] = found[id]
		}
		return rows.Err()
	})
	return out, err
}

func (r *repository) Put(ctx context.Context, id string, doc map[string]any, p backend.PutParams) (backend.Item, bool, error) {
	rec, err := backend.PreparePut(id, doc)
	if err != nil {
		return backend.Item{}, false, err
	}
	it := backend.Item{Rec: rec, ExpiresAt: p.ExpiresAt}
	now := r.cat.nowMs()
	err = r.write(ctx, true, func(q querier, table string) error {
		switch {
		case p.IfNoneMatch:
			it.Version = 1
			return r.insert(ctx, q, table, id, string(rec), p.ExpiresAt)
		case p.IfMatch != 0:
			err := q.QueryRowContext(ctx, `UPDATE `+table+` SET doc = ?, version = version + 1, expires_at = ? WHERE id = ? AND version = ? AND `+liveSQL+` RETURNING version`,
				string(rec), expiryArg(p.ExpiresAt), id, p.IfMatch, now).Scan(&it.Version)
			if errors.Is(err, sql.ErrNoRows) {
				return backend.VersionConflict(r.name, id, p.IfMatch)
			}
			return err
		}
		// A record that expired is replaced as if it were not there: a
		// new record, at version 1.
		err := q.QueryRowContext(ctx, `INSERT INTO `+table+` (id, doc, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, expires_at = excluded.expires_at,
			version = CASE WHEN expires_at <= ? THEN 1 ELSE version + 1 END RETURNING version`, id, string(rec), expiryArg(p.ExpiresAt), now).Scan(&it.Version)
		if backend.IsCode(translate(err), backend.CodeConflict) {
			// A unique value an expired record still holds.
			if _, perr := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE expires_at <= ?`, now); perr != nil {
				return perr
			}
			err = q.QueryRowContext(ctx, `INSERT INTO `+table+` (id, doc, expires_at) VALUES (?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, expires_at = excluded.expires_at, version = version + 1 RETURNING version`,
				id, string(rec), expiryArg(p.ExpiresAt)).Scan(&it.Version)
		}
		return err
	})
	if err != nil {
		return backend.Item{}, false, err
	}
	return it, it.Version == 1, nil
}

func (r *repository) exists(ctx context.Context, q querier, table, id string) bool {
	var one int
	return q.QueryRowContext(ctx, `SELECT 1 FROM `+table+` WHERE id = ?`, id).Scan(&one) == nil
}

// Modify runs the compiled update in the writer, guarded; when it writes
// nothing, the record as it stands says why (the writer is held, so it
// cannot have changed in between).
func (r *repository) Modify(ctx context.Context, id string, up backend.Update, p backend.WriteParams) (backend.Item, error) {
	u := compileUpdate(up)
	var it backend.Item
	err := r.write(ctx, false, func(q querier, table string) error {
		if table == "" {
			return backend.NotFound(r.name, id)
		}
		set := ""
		var args []any
		if p.ExpiresAt != 0 {
			set = ", expires_at = ?"
			args = append(args, p.ExpiresAt)
		}
		args = append(append(append([]any{}, u.args...), args...), id, r.cat.nowMs())
		cond := ""
		if p.IfMatch != 0 {
			cond = " AND version = ?"
			args = append(args, p.IfMatch)
		}
		var doc string
		var exp sql.NullInt64
		err := q.QueryRowContext(ctx, `UPDATE `+table+` SET doc = `+u.expr+`, version = version + 1`+set+` WHERE id = ? AND `+liveSQL+cond+` AND `+u.guard+
			` RETURNING doc, version, expires_at`, args...).Scan(&doc, &it.Version, &exp)
		it.ExpiresAt = exp.Int64
		if errors.Is(err, sql.ErrNoRows) {
			return r.whyNot(ctx, q, table, id, up, p)
		}
		it.Rec = backend.Record(doc)
		return err
	})
	return it, err
}

// whyNot explains a guarded write that changed nothing.
func (r *repository) whyNot(ctx context.Context, q querier, table, id string, up backend.Update, p backend.WriteParams) error {
	var cur string
	var v int64
	err := q.QueryRowContext(ctx, `SELECT doc, version FROM `+table+` WHERE id = ? AND `+liveSQL, id, r.cat.nowMs()).Scan(&cur, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return backend.NotFound(r.name, id)
	}
	if err != nil {
		return err
	}
	if p.IfMatch != 0 && v != p.IfMatch {
		return backend.VersionConflict(r.name, id, p.IfMatch)
	}
	return refusal(cur, up)
}

// refusal is the reference's reason to refuse doc, which the SQL guard
// refused.
func refusal(doc string, up backend.Update) error {
	d, err := backend.Decode(backend.Record(doc))
	if err != nil {
		return err
	}
	if _, err := backend.ApplyUpdate(d, up); err != nil {
		return err
	}
	return backend.Errorf(backend.CodeInternal, "sqlite: the update's guard refused a record the reference accepts")
}

func (r *repository) Remove(ctx context.Context, id string, p backend.WriteParams) error {
	if p.IfMatch == 0 {
		return r.Delete(ctx, id)
	}
	return r.write(ctx, false, func(q querier, table string) error {
		if table == "" {
			return backend.VersionConflict(r.name, id, p.IfMatch)
		}
		res, err := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ? AND version = ? AND `+liveSQL, id, p.IfMatch, r.cat.nowMs())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return backend.VersionConflict(r.name, id, p.IfMatch)
		}
		return nil
	})
}

// UpdateMany refuses the whole call if the guard refuses any matching
// record, then writes only the records the update changes.
func (r *repository) UpdateMany(ctx context.Context, f backend.Filter, up backend.Update) (backend.UpdateManyResult, error) {
	var res backend.UpdateManyResult
	err := r.write(ctx, false, func(q querier, table string) error {
		if table == "" {
			return nil
		}
		u := compileUpdate(up)
		c := &compiler{}
		where := c.filter(f) + " AND " + c.live(r.cat.nowMs())
		if u.guard != "1" {
			var doc string
			err := q.QueryRowContext(ctx, `SELECT doc FROM `+table+` WHERE `+where+` AND NOT `+u.guard+` LIMIT 1`, c.args...).Scan(&doc)
			if err == nil {
				return refusal(doc, up)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE `+where, c.args...).Scan(&res.Matched); err != nil {
			return err
		}
		// The update's ?N come first; the filter's plain ? are numbered
		// after them, in the order they appear.
		sqlText := `UPDATE ` + table + ` SET doc = ` + u.expr + `, version = version + 1 WHERE ` + where + ` AND doc IS NOT ` + u.expr
		out, err := q.ExecContext(ctx, sqlText, append(u.args, c.args...)...)
		if err != nil {
			return err
		}
		res.Modified, err = out.RowsAffected()
		return err
	})
	return res, err
}

func (r *repository) DeleteMany(ctx context.Context, f backend.Filter) (int64, error) {
	var n int64
	err := r.write(ctx, false, func(q querier, table string) error {
		if table == "" {
			return nil
		}
		c := &compiler{}
		where := c.filter(f) + " AND " + c.live(r.cat.nowMs())
		res, err := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+where, c.args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
