package postgres_test

import (
	"context"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/backend/postgres"
	"github.com/storaged/storaged/internal/testutil"
)

func openRepo(t *testing.T, url string) *postgres.RepositoryBackend {
	t.Helper()
	b, err := postgres.OpenRepository(context.Background(), postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func openQueue(t *testing.T, url string, noNotify bool) *postgres.JobStore {
	t.Helper()
	b, err := postgres.OpenJobStore(context.Background(), postgres.JobStoreConfig{Config: postgres.Config{URL: url}, NoNotify: noNotify})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestRepository(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunRepository(t, func(t *testing.T) backend.RepositoryBackend { return openRepo(t, url) })
}

func TestDifferentialAgainstMemory(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunDifferential(t, func(t *testing.T) backend.RepositoryBackend { return openRepo(t, url) })
}

func TestJobQueue(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunJobQueue(t, func(t *testing.T) backend.JobStore { return openQueue(t, url, false) })
}

// TestJobQueuePolling runs the suite with LISTEN/NOTIFY off, as behind a
// transaction-mode pooler: long polls must still see every job.
func TestJobQueuePolling(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunJobQueue(t, func(t *testing.T) backend.JobStore { return openQueue(t, url, true) })
}
