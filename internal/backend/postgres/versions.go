package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/storaged/storaged/internal/backend"
)

func (r *repository) Get(ctx context.Context, id string) (backend.Item, error) {
	table, err := r.table(ctx)
	if err != nil || table == "" {
		return backend.Item{}, err
	}
	var doc string
	var v int64
	err = r.q.QueryRow(ctx, `SELECT doc::text, version FROM `+table+` WHERE id = $1`, id).Scan(&doc, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return backend.Item{}, nil
	}
	if err != nil {
		return backend.Item{}, translate(err)
	}
	return backend.Item{Rec: backend.Record(doc), Version: v}, nil
}

func (r *repository) GetMany(ctx context.Context, ids []string) ([]backend.Item, error) {
	out := make([]backend.Item, len(ids))
	table, err := r.table(ctx)
	if err != nil || table == "" {
		return out, err
	}
	rows, err := r.q.Query(ctx, `SELECT id, doc::text, version FROM `+table+` WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	found := make(map[string]backend.Item, len(ids))
	for rows.Next() {
		var id, doc string
		var v int64
		if err := rows.Scan(&id, &doc, &v); err != nil {
			return nil, translate(err)
		}
		found[id] = backend.Item{Rec: backend.Record(doc), Version: v}
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	for i, id := range ids {
		out[i] = found[id]
	}
	return out, nil
}

func (r *repository) Put(ctx context.Context, id string, doc map[string]any, p backend.PutParams) (backend.Item, bool, error) {
	rec, err := backend.PreparePut(id, doc)
	if err != nil {
		return backend.Item{}, false, err
	}
	table, err := r.tableForWrite(ctx)
	if err != nil {
		return backend.Item{}, false, err
	}
	it := backend.Item{Version: 1}
	var out string
	switch {
	case p.IfNoneMatch:
		err = r.q.QueryRow(ctx, `INSERT INTO `+table+` (id, doc) VALUES ($1, $2::jsonb) RETURNING doc::text`, id, string(rec)).Scan(&out)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == table+"_pkey" {
			return backend.Item{}, false, backend.Errorf(backend.CodeConflict, "a record with id %q already exists in %s", id, r.name)
		}
	case p.IfMatch != 0:
		err = r.q.QueryRow(ctx, `UPDATE `+table+` SET doc = $2::jsonb, version = version + 1 WHERE id = $1 AND version = $3 RETURNING doc::text, version`,
			id, string(rec), p.IfMatch).Scan(&out, &it.Version)
		if errors.Is(err, pgx.ErrNoRows) {
			return backend.Item{}, false, backend.VersionConflict(r.name, id, p.IfMatch)
		}
	default:
		err = r.q.QueryRow(ctx, `INSERT INTO `+table+` AS t (id, doc) VALUES ($1, $2::jsonb)
			ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, version = t.version + 1 RETURNING doc::text, version`, id, string(rec)).Scan(&out, &it.Version)
	}
	if err != nil {
		return backend.Item{}, false, translate(err)
	}
	it.Rec = backend.Record(out)
	return it, it.Version == 1, nil
}

// Modify runs the compiled update, guarded. When it writes nothing, the
// record as it is now says why; if it no longer says no (a concurrent
// write changed it in between), the update is tried again.
func (r *repository) Modify(ctx context.Context, id string, up backend.Update, p backend.WriteParams) (backend.Item, error) {
	table, err := r.table(ctx)
	if err != nil {
		return backend.Item{}, err
	}
	if table == "" {
		return backend.Item{}, backend.NotFound(r.name, id)
	}
	c := &compiler{}
	u := compileUpdate(c, up)
	sql := `UPDATE ` + table + ` SET doc = ` + u.expr + `, version = version + 1 WHERE id = ` + c.bind(id) + ` AND ` + u.guard
	if p.IfMatch != 0 {
		sql += ` AND version = ` + c.bind(p.IfMatch)
	}
	sql += ` RETURNING doc::text, version`
	for attempt := 0; ; attempt++ {
		var doc string
		var v int64
		err := r.q.QueryRow(ctx, sql, c.args...).Scan(&doc, &v)
		if err == nil {
			return backend.Item{Rec: backend.Record(doc), Version: v}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return backend.Item{}, translate(err)
		}
		cur, err := r.Get(ctx, id)
		switch {
		case err != nil:
			return backend.Item{}, err
		case cur.Rec == nil:
			return backend.Item{}, backend.NotFound(r.name, id)
		case p.IfMatch != 0 && cur.Version != p.IfMatch:
			return backend.Item{}, backend.VersionConflict(r.name, id, p.IfMatch)
		}
		if err := refusal(cur.Rec, up); err != nil || attempt == 3 {
			if err == nil {
				err = backend.Errorf(backend.CodeUnavailable, "record %q of %s kept changing; retry", id, r.name)
			}
			return backend.Item{}, err
		}
	}
}

// refusal is the reference's reason to refuse rec, or nil if it has none.
func refusal(rec backend.Record, up backend.Update) error {
	d, err := backend.Decode(rec)
	if err != nil {
		return err
	}
	_, err = backend.ApplyUpdate(d, up)
	return err
}

func (r *repository) Remove(ctx context.Context, id string, p backend.WriteParams) error {
	if p.IfMatch == 0 {
		return r.Delete(ctx, id)
	}
	table, err := r.table(ctx)
	if err != nil {
		return err
	}
	if table == "" {
		return backend.VersionConflict(r.name, id, p.IfMatch)
	}
	tag, err := r.q.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1 AND version = $2`, id, p.IfMatch)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return backend.VersionConflict(r.name, id, p.IfMatch)
	}
	return nil
}

// UpdateMany counts, updates the records the update changes, then looks
// for a matching record the guard refused: finding one rolls all of it
// back. All in one transaction.
func (r *repository) UpdateMany(ctx context.Context, f backend.Filter, up backend.Update) (backend.UpdateManyResult, error) {
	var res backend.UpdateManyResult
	table, err := r.table(ctx)
	if err != nil || table == "" {
		return res, err
	}
	c := &compiler{}
	where := c.filter(f)
	filterArgs := len(c.args)
	u := compileUpdate(c, up)
	err = atomically(ctx, r.q, func(q querier) error {
		if err := q.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE `+where, c.args[:filterArgs]...).Scan(&res.Matched); err != nil {
			return err
		}
		tag, err := q.Exec(ctx, `UPDATE `+table+` SET doc = `+u.expr+`, version = version + 1 WHERE `+where+` AND `+u.guard+
			` AND doc IS DISTINCT FROM `+u.expr, c.args...)
		if err != nil {
			return err
		}
		res.Modified = tag.RowsAffected()
		if u.guard == "true" {
			return nil
		}
		var doc string
		err = q.QueryRow(ctx, `SELECT doc::text FROM `+table+` WHERE `+where+` AND NOT `+u.guard+` LIMIT 1`, c.args[:filterArgs]...).Scan(&doc)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := refusal(backend.Record(doc), up); err != nil {
			return err
		}
		return backend.Errorf(backend.CodeInternal, "postgres: the update's guard refused a record the reference accepts")
	})
	if err != nil {
		return backend.UpdateManyResult{}, translate(err)
	}
	return res, nil
}

func (r *repository) DeleteMany(ctx context.Context, f backend.Filter) (int64, error) {
	table, err := r.table(ctx)
	if err != nil || table == "" {
		return 0, err
	}
	c := &compiler{}
	tag, err := r.q.Exec(ctx, `DELETE FROM `+table+` WHERE `+c.filter(f), c.args...)
	if err != nil {
		return 0, translate(err)
	}
	return tag.RowsAffected(), nil
}
