package cache

import "github.com/storaged/storaged/internal/backend"

// Unwrap returns the transaction behind the cache's, so that a job store
// sharing the database can write in it (backend.TxJobStore).
func (t *tx) Unwrap() backend.Tx { return t.next }
