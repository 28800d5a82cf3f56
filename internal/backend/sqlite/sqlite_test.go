package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/backend/sqlite"
	"github.com/storaged/storaged/internal/testutil"
)

// migrated is a freshly migrated file, copied for each test that wants
// one instead of migrating a new file each time (see testutil.FileTemplate).
var migrated = testutil.NewFileTemplate(func(path string) error {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		return err
	}
	return db.Close()
})

// fresh is the path of a new, migrated database file of the test's own.
func fresh(t *testing.T, name string) string { return migrated.Copy(t, name) }

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
		b := sqlite.NewRepositoryBackend(openDB(t, fresh(t, "r.db")))
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
		b := sqlite.NewJobStore(openDB(t, fresh(t, "j.db")))
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestDifferentialAgainstMemory(t *testing.T) {
	backendtest.RunDifferential(t, func(t *testing.T) backend.RepositoryBackend {
		b := sqlite.NewRepositoryBackend(openDB(t, fresh(t, "d.db")))
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestTxJobs(t *testing.T) {
	backendtest.RunTxJobs(t, func(t *testing.T) (backend.RepositoryBackend, backend.JobStore) {
		path := fresh(t, "tx.db")
		r := sqlite.NewRepositoryBackend(openDB(t, path))
		j := sqlite.NewJobStore(openDB(t, path))
		t.Cleanup(func() { j.Close(); r.Close() })
		return r, j
	})
}

// TestTxJobsOtherFile: records in one file cannot carry the jobs of
// another; the daemon then refuses Storaged-Tx on job calls.
func TestTxJobsOtherFile(t *testing.T) {
	dir := t.TempDir()
	r := sqlite.NewRepositoryBackend(openDB(t, filepath.Join(dir, "records.db")))
	j := sqlite.NewJobStore(openDB(t, filepath.Join(dir, "jobs.db")))
	t.Cleanup(func() { j.Close(); r.Close() })
	if j.SharesDatabase(r) {
		t.Fatal("two files reported as one database")
	}
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := j.InTx(tx); !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Fatalf("InTx with another file's transaction: %v, want invalid_argument", err)
	}
}

// TestEventsRestart: the feed's cursor goes on after the file is closed
// and opened again (the sequence resumes from the file).
func TestEventsRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	backendtest.RunEventsRestart(t, func(t *testing.T) backend.JobStore {
		b := sqlite.NewJobStore(openDB(t, path))
		t.Cleanup(func() { b.Close() })
		return b
	})
}
