package memory_test

import (
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/backend/memory"
)

func TestRepository(t *testing.T) {
	backendtest.RunRepository(t, func(t *testing.T) backend.RepositoryBackend {
		b := memory.NewRepositoryBackend()
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestJobQueue(t *testing.T) {
	backendtest.RunJobQueue(t, func(t *testing.T) backend.JobStore {
		b := memory.NewJobStore()
		t.Cleanup(func() { b.Close() })
		return b
	})
}

// The differential generator against the reference itself: checks that
// the generator only makes valid queries and that memory is deterministic.
func TestDifferentialSelf(t *testing.T) {
	backendtest.RunDifferential(t, func(t *testing.T) backend.RepositoryBackend {
		return memory.NewRepositoryBackend()
	})
}

func TestTxJobs(t *testing.T) {
	backendtest.RunTxJobs(t, func(t *testing.T) (backend.RepositoryBackend, backend.JobStore) {
		r, j := memory.NewRepositoryBackend(), memory.NewJobStore()
		t.Cleanup(func() { j.Close(); r.Close() })
		return r, j
	})
}
