package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/backend/sqlite"
)

func openDB(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestRepository(t *testing.T) {
	backendtest.RunRepository(t, func(t *testing.T) backend.RepositoryBackend {
		b := sqlite.NewRepositoryBackend(openDB(t, filepath.Join(t.TempDir(), "r.db")))
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestRepositoryInMemory(t *testing.T) {
	backendtest.RunRepository(t, func(t *testing.T) backend.RepositoryBackend {
		b := sqlite.NewRepositoryBackend(openDB(t, ":memory:"))
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestJobQueue(t *testing.T) {
	backendtest.RunJobQueue(t, func(t *testing.T) backend.JobStore {
		b := sqlite.NewJobStore(openDB(t, filepath.Join(t.TempDir(), "j.db")))
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestDifferentialAgainstMemory(t *testing.T) {
	backendtest.RunDifferential(t, func(t *testing.T) backend.RepositoryBackend {
		b := sqlite.NewRepositoryBackend(openDB(t, filepath.Join(t.TempDir(), "d.db")))
		t.Cleanup(func() { b.Close() })
		return b
	})
}
