package main

import (
	"context"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// expiryEvery is how often records past their TTL are deleted. They are
// invisible from the moment they expire; this only reclaims their space.
const expiryEvery = 5 * time.Second

// expiryLoop deletes expired records in the background.
func (m *Main) expiryLoop(ctx context.Context) {
	defer m.wg.Done()
	e, ok := m.repo.(backend.Expirer)
	if !ok {
		return
	}
	t := time.NewTicker(expiryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := e.PurgeExpired(ctx)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("deleting expired records failed", "err", err)
		} else if n > 0 {
			m.log.Debug("deleted expired records", "count", n)
		}
	}
}
