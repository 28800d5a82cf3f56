package postgres_test

import (
	"context"
	neturl "net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

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

// TestSharedWait: a wait on one daemon is woken (NOTIFY) when a job it
// waits for is finished through another.
func TestSharedWait(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunSharedWait(t, func(t *testing.T) backend.JobStore { return openQueue(t, url, false) })
}

func TestTxJobs(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunTxJobs(t, func(t *testing.T) (backend.RepositoryBackend, backend.JobStore) {
		return openRepo(t, url), openQueue(t, url, false)
	})
}

// TestTxJobsSharing: the same database reached by another URL shares;
// another database, or another schema of the same one, does not.
func TestTxJobsSharing(t *testing.T) {
	url := testutil.PostgresDB(t)
	other := testutil.PostgresDB(t)
	jobs := openQueue(t, url, false)

	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = strings.Replace(u.Host, "127.0.0.1", "localhost", 1)
	q := u.Query()
	q.Set("application_name", "another-spelling")
	u.RawQuery = q.Encode()

	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE SCHEMA elsewhere"); err != nil {
		t.Fatal(err)
	}
	s := *u
	sq := s.Query()
	sq.Set("search_path", "elsewhere")
	s.RawQuery = sq.Encode()

	for _, tc := range []struct {
		name  string
		url   string
		share bool
	}{
		{"same URL", url, true},
		{"same database, another URL", u.String(), true},
		{"another database", other, false},
		{"another schema", s.String(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := jobs.SharesDatabase(openRepo(t, tc.url)); got != tc.share {
				t.Fatalf("SharesDatabase = %v, want %v", got, tc.share)
			}
		})
	}
}

// TestEventsRestart: the feed's cursor goes on after a restart.
func TestEventsRestart(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunEventsRestart(t, func(t *testing.T) backend.JobStore { return openQueue(t, url, false) })
}

// TestEventsShared: a reader on one daemon sees, in order, what another
// daemon does to the queue.
func TestEventsShared(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunEventsShared(t, func(t *testing.T) backend.JobStore { return openQueue(t, url, false) })
}

// TestPoolSize: the pool has at least 8 connections unless the URL's
// pool_max_conns says how many.
func TestPoolSize(t *testing.T) {
	url := testutil.PostgresDB(t)
	for _, tc := range []struct {
		param string
		want  int
	}{{"", 8}, {"3", 3}, {"16", 16}} {
		u, err := neturl.Parse(url)
		if err != nil {
			t.Fatal(err)
		}
		if tc.param != "" {
			q := u.Query()
			q.Set("pool_max_conns", tc.param)
			u.RawQuery = q.Encode()
		}
		b := openRepo(t, u.String())
		if _, _, most := b.PoolStats(); most < tc.want || (tc.param != "" && most != tc.want) {
			t.Errorf("pool_max_conns=%q: %d connections, want %d", tc.param, most, tc.want)
		}
	}
}
