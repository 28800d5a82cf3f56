package postgres_test

import (
	"testing"

	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/testutil"
)

// TestChangesAcrossDaemons: two daemons on one database; the reader on
// one sees the writes of both, in commit order, once.
func TestChangesAcrossDaemons(t *testing.T) {
	url := testutil.PostgresDB(t)
	backendtest.RunChangesAcrossBackends(t, openRepo(t, url), openRepo(t, url))
}
