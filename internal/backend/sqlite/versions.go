package sqlite

import (
	"context"
	"database/sql"
	"errors"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// tableDDL creates a collection's table t.
func tableDDL(t string) string {
	return `CREATE TABLE ` + t + ` (id TEXT PRIMARY KEY, doc TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1) WITHOUT ROWID`
}

// addVersions is the code of migration 0004: a version column for every
// collection's table that lacks one (tables that migration 0002 created
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
		if _, err := tx.ExecContext(ctx, `ALTER TABLE `+t+` ADD COLUMN version INTEGER NOT NULL DEFAULT 1`); err != nil {
			return err
		}
	}
	return nil
}

func (r *repository) Get(ctx context.Context, id string) (backend.Item, error) {
	var it backend.Item
	err := r.read(ctx, func(q querier, table string) error {
		var doc string
		err := q.QueryRowContext(ctx, `SELECT doc, version FROM `+table+` WHERE id = ?`, id).Scan(&doc, &it.Version)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		it.Rec = backend.Record(doc)
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
		rows, err := q.QueryContext(ctx, `SELECT id, doc, version FROM `+table+` WHERE id IN (SELECT value FROM json_each(?))`, string(list))
		if err != nil {
			return err
		}
		defer rows.Close()
		found := map[string]backend.Item{}
		for rows.Next() {
			var id, doc string
			var v int64
			if err := rows.Scan(&id, &doc, &v); err != nil {
				return err
			}
			found[id] = backend.Item{Rec: backend.Record(doc), Version: v}
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
	it := backend.Item{Rec: rec}
	err = r.write(ctx, true, func(q querier, table string) error {
		switch {
		case p.IfNoneMatch:
			_, err := q.ExecContext(ctx, insertSQL(table), id, string(rec))
			it.Version = 1
			if backend.IsCode(translate(err), backend.CodeConflict) && r.exists(ctx, q, table, id) {
				return backend.Errorf(backend.CodeConflict, "a record with id %q already exists in %s", id, r.name)
			}
			return err
		case p.IfMatch != 0:
			err := q.QueryRowContext(ctx, `UPDATE `+table+` SET doc = ?, version = version + 1 WHERE id = ? AND version = ? RETURNING version`,
				string(rec), id, p.IfMatch).Scan(&it.Version)
			if errors.Is(err, sql.ErrNoRows) {
				return backend.VersionConflict(r.name, id, p.IfMatch)
			}
			return err
		}
		return q.QueryRowContext(ctx, `INSERT INTO `+table+` (id, doc) VALUES (?, ?)
			ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, version = version + 1 RETURNING version`, id, string(rec)).Scan(&it.Version)
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
		args := append(u.args, id)
		cond := ""
		if p.IfMatch != 0 {
			cond = " AND version = ?"
			args = append(args, p.IfMatch)
		}
		var doc string
		err := q.QueryRowContext(ctx, `UPDATE `+table+` SET doc = `+u.expr+`, version = version + 1 WHERE id = ?`+cond+` AND `+u.guard+
			` RETURNING doc, version`, args...).Scan(&doc, &it.Version)
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
	err := q.QueryRowContext(ctx, `SELECT doc, version FROM `+table+` WHERE id = ?`, id).Scan(&cur, &v)
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
		res, err := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ? AND version = ?`, id, p.IfMatch)
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
		where := c.filter(f)
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
		res, err := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+c.filter(f), c.args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
