package testutil

import (
	"path/filepath"
	"testing"
)

// DaemonBackend is a daemon configuration for tests that must run on
// every job backend.
type DaemonBackend struct {
	Name string
	Env  []string
}

// JobBackends returns the daemon environments of every job queue backend:
// memory, SQLite (records and jobs in one file), PostgreSQL (a fresh
// database), Redis (a fresh key prefix; records on memory) and SQS (moto,
// a fresh queue prefix; records on memory).
func JobBackends(t testing.TB) []DaemonBackend {
	t.Helper()
	dir := t.TempDir()
	return []DaemonBackend{
		{"memory", []string{"REPOSITORY_BACKEND=memory", "JOBQUEUE_BACKEND=memory"}},
		{"sqlite", []string{"REPOSITORY_BACKEND=sqlite", "JOBQUEUE_BACKEND=sqlite", "SQLITE_PATH=" + filepath.Join(dir, "jobs.db")}},
		{"postgres", []string{"REPOSITORY_BACKEND=postgres", "JOBQUEUE_BACKEND=postgres", "POSTGRESQL_URL=" + PostgresDB(t)}},
		{"redis", []string{"REPOSITORY_BACKEND=memory", "JOBQUEUE_BACKEND=redis", "REDIS_URL=" + RedisURL(), "STORAGED_REDIS_PREFIX=" + RedisPrefix(t)}},
		{"sqs", append([]string{"REPOSITORY_BACKEND=memory"}, SQSEnv(t)...)},
	}
}
