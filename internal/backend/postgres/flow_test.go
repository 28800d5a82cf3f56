package postgres_test

import (
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/testutil"
)

// TestFlowThreeDaemons: concurrency, rate limit and pause hold across
// three daemons on one PostgreSQL database.
func TestFlowThreeDaemons(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunFlowDaemons(t, func(t *testing.T) backend.JobStore { return openQueue(t, url, false) })
}

// TestSchedulesThreeDaemons: one job per slot with three daemons' schedulers
// on one PostgreSQL database.
func TestSchedulesThreeDaemons(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunScheduleDaemons(t, func(t *testing.T) backend.JobStore { return openQueue(t, url, false) })
}
