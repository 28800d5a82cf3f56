package memory

import (
	"context"
	"slices"
	"strings"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.Catalog = (*RepositoryBackend)(nil)

// Collections implements backend.Catalog.
func (b *RepositoryBackend) Collections(context.Context) ([]backend.CollectionInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]backend.CollectionInfo, 0, len(b.colls))
	for name, c := range b.colls {
		info := backend.CollectionInfo{Name: name, Indexes: []backend.IndexSpec{}}
		for _, ix := range c.indexes {
			info.Indexes = append(info.Indexes, ix.spec)
		}
		slices.SortFunc(info.Indexes, func(a, c backend.IndexSpec) int { return strings.Compare(a.Name, c.Name) })
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, c backend.CollectionInfo) int { return strings.Compare(a.Name, c.Name) })
	return out, nil
}
