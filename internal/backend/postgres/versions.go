package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/storaged/storaged/internal/backend"
)

func (r *repository) Get(ctx context.Context, id string) (backend.Item, error) {
	table, err := r.entry(ctx)
	if err != nil || table == nil {
		return backend.Item{}, err
	}
	if r.gets != nil {
		return r.gets.get(ctx, table, id)
	}
	return getOne(ctx, r.q, table, id, r.cat.nowMs())
}

func (r *repository) GetMany(ctx context.Context, ids []string) ([]backend.Item, error) {
	out := make([]backend.Item, len(ids))
	table, err := r.table(ctx)
	if err != nil || table == "" {
		return out, err
	}
	found, err := liveByID(ctx, r.q, table, ids, r.cat.nowMs())
	if err != nil {
		return nil, err
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
	t, err := r.tableForWrite(ctx)
	if err != nil {
		return backend.Item{}, false, err
	}
	table := t.name
	it := backend.Item{Version: 1, ExpiresAt: p.ExpiresAt}
	now := r.cat.nowMs()
	var out []byte
	switch {
	case p.IfNoneMatch:
		out, err = r.insert(ctx, t, id, rec, p.ExpiresAt)
		if err != nil {
			return backend.Item{}, false, err
		}
	case p.IfMatch != 0:
		err = r.q.QueryRow(ctx, `UPDATE `+table+` SET doc = $2::jsonb, version = version + 1, expires_at = $4 WHERE id = $1 AND version = $3 AND `+liveSQL(5)+
			` RETURNING doc::text, version`, id, rec, p.IfMatch, expiryArg(p.ExpiresAt), now).Scan(&out, &it.Version)
		if errors.Is(err, pgx.ErrNoRows) {
			return backend.Item{}, false, backend.VersionConflict(r.name, id, p.IfMatch)
		}
	default:
		// A record that expired is replaced as if it were not there: a
		// new record, at version 1.
		upsert := func() error {
			return r.q.QueryRow(ctx, `INSERT INTO `+table+` AS t (id, doc, expires_at) VALUES ($1, $2::jsonb, $3)
				ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, expires_at = EXCLUDED.expires_at,
				version = CASE WHEN t.expires_at <= $4 THEN 1 ELSE t.version + 1 END RETURNING doc::text, version`,
				id, rec, expiryArg(p.ExpiresAt), now).Scan(&out, &it.Version)
		}
		err = upsert()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			// A unique value an expired record still holds.
			tag, perr := r.q.Exec(ctx, `DELETE FROM `+table+` WHERE expires_at <= $1`, now)
			if perr == nil && tag.RowsAffected() > 0 {
				err = upsert()
			}
		}
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
	set := ""
	if p.ExpiresAt != 0 {
		set = ", expires_at = " + c.bind(p.ExpiresAt)
	}
	sql := `UPDATE ` + table + ` SET doc = ` + u.expr + `, version = version + 1` + set + ` WHERE id = ` + c.bind(id) + ` AND ` + c.live(r.cat.nowMs()) + ` AND ` + u.guard
	if p.IfMatch != 0 {
		sql += ` AND version = ` + c.bind(p.IfMatch)
	}
	sql += ` RETURNING doc::text, version, expires_at`
	for attempt := 0; ; attempt++ {
		var it backend.Item
		var err error
		if attempt == 0 && r.updates != nil {
			it, err = r.updates.update(ctx, table, id, sql, c.args)
		} else {
			it, err = updateOne(ctx, r.q, sql, c.args)
		}
		if err == nil {
			return it, nil
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
	tag, err := r.q.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1 AND version = $2 AND `+liveSQL(3), id, p.IfMatch, r.cat.nowMs())
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
	where := c.filter(f) + " AND " + c.live(r.cat.nowMs())
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
	where := c.filter(f) + " AND " + c.live(r.cat.nowMs())
	tag, err := r.q.Exec(ctx, `DELETE FROM `+table+` WHERE `+where, c.args...)
	if err != nil {
		return 0, translate(err)
	}
	return tag.RowsAffected(), nil
}

func expiryIndexDDL(table string) string {
	return `CREATE INDEX IF NOT EXISTS ` + table + `_expiry ON ` + table + ` (expires_at) WHERE expires_at IS NOT NULL`
}

// liveSQL holds for records that have not expired; $n is now (Unix ms).
func liveSQL(n int) string {
	return `(expires_at IS NULL OR expires_at > $` + strconv.Itoa(n) + `)`
}

func (c *compiler) live(now int64) string {
	return `(expires_at IS NULL OR expires_at > ` + c.bind(now) + `)`
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

// PurgeExpired implements backend.Expirer: one DELETE per collection
// that has expired records, walking the partial expiry index.
func (b *RepositoryBackend) PurgeExpired(ctx context.Context) (int64, error) {
	rows, err := b.pool.Query(ctx, `SELECT id FROM storaged_collections ORDER BY id`)
	if err != nil {
		return 0, translate(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, translate(err)
	}
	var total int64
	for _, id := range ids {
		tag, err := b.pool.Exec(ctx, `DELETE FROM `+tableName(id)+` WHERE expires_at <= $1`, b.cat.nowMs())
		if err != nil {
			return total, translate(err)
		}
		total += tag.RowsAffected()
	}
	return total, b.purgeChanges(ctx)
}
