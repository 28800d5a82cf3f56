package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/backend/sqlite"
)

// TestChangesAcrossDaemons: two daemons on one SQLite file; the reader on
// one sees the writes of both, in commit order, once.
func TestChangesAcrossDaemons(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a := sqlite.NewRepositoryBackend(openDB(t, path))
	b := sqlite.NewRepositoryBackend(openDB(t, path))
	t.Cleanup(func() { a.Close(); b.Close() })
	backendtest.RunChangesAcrossBackends(t, a, b)
}
