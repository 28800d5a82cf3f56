package postgres

import (
	"context"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.Catalog = (*RepositoryBackend)(nil)

// Collections implements backend.Catalog from the catalog tables.
func (b *RepositoryBackend) Collections(ctx context.Context) ([]backend.CollectionInfo, error) {
	rows, err := b.pool.Query(ctx, `SELECT c.name, i.name, i.spec FROM storaged_collections c
		LEFT JOIN storaged_record_indexes i ON i.collection = c.name ORDER BY c.name, i.name`)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []backend.CollectionInfo{}
	for rows.Next() {
		var c string
		var name, spec *string
		if err := rows.Scan(&c, &name, &spec); err != nil {
			return nil, translate(err)
		}
		if len(out) == 0 || out[len(out)-1].Name != c {
			out = append(out, backend.CollectionInfo{Name: c, Indexes: []backend.IndexSpec{}})
		}
		if name != nil {
			s, err := backend.ParseIndexSpec(*name, *spec)
			if err != nil {
				return nil, err
			}
			out[len(out)-1].Indexes = append(out[len(out)-1].Indexes, s)
		}
	}
	return out, translate(rows.Err())
}
