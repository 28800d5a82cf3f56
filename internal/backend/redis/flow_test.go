package redis_test

import (
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/testutil"
)

// TestFlowThreeDaemons: concurrency, rate limit and pause hold across
// three daemons on one Redis.
func TestFlowThreeDaemons(t *testing.T) {
	prefix := testutil.RedisPrefix(t)
	backendtest.RunFlowDaemons(t, func(t *testing.T) backend.JobStore { return open(t, prefix) })
}

// TestSchedulesThreeDaemons: one job per slot with three daemons' schedulers
// on one Redis.
func TestSchedulesThreeDaemons(t *testing.T) {
	prefix := testutil.RedisPrefix(t)
	backendtest.RunScheduleDaemons(t, func(t *testing.T) backend.JobStore { return open(t, prefix) })
}
