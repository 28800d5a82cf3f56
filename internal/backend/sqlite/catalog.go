package sqlite

import (
	"context"
	"database/sql"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.Catalog = (*RepositoryBackend)(nil)

// Collections implements backend.Catalog from the catalog tables.
func (b *RepositoryBackend) Collections(ctx context.Context) ([]backend.CollectionInfo, error) {
	return catalogOf(ctx, b.db.reader, `SELECT name FROM collections ORDER BY name`,
		`SELECT collection, name, spec FROM record_indexes ORDER BY collection, name`)
}

func catalogOf(ctx context.Context, db *sql.DB, names, indexes string) ([]backend.CollectionInfo, error) {
	rows, err := db.QueryContext(ctx, names)
	if err != nil {
		return nil, translate(err)
	}
	out := []backend.CollectionInfo{}
	at := map[string]int{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, translate(err)
		}
		at[n] = len(out)
		out = append(out, backend.CollectionInfo{Name: n, Indexes: []backend.IndexSpec{}})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	if rows, err = db.QueryContext(ctx, indexes); err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c, name, spec string
		if err := rows.Scan(&c, &name, &spec); err != nil {
			return nil, translate(err)
		}
		s, err := backend.ParseIndexSpec(name, spec)
		if err != nil {
			return nil, err
		}
		i, ok := at[c]
		if !ok {
			at[c] = len(out)
			i = len(out)
			out = append(out, backend.CollectionInfo{Name: c, Indexes: []backend.IndexSpec{}})
		}
		out[i].Indexes = append(out[i].Indexes, s)
	}
	return out, translate(rows.Err())
}
