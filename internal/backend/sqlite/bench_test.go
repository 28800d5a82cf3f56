package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// BenchmarkClaimAck measures one dequeue plus acknowledge on a deep queue.
func BenchmarkClaimAck(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: filepath.Join(b.TempDir(), "b.db")})
	if err != nil {
		b.Fatal(err)
	}
	q := testutil.NewJobs(NewJobStore(db), nil)
	defer q.Close()
	ps := make([]backend.EnqueueParams, 1000)
	for i := range ps {
		ps[i].Data = json.RawMessage(`{"i":1}`)
	}
	for n := 0; n < b.N; n += 1000 {
		if _, err := q.Add(ctx, "q", ps...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j, err := q.Take(ctx, "q", backend.DequeueParams{})
		if err != nil || j == nil {
			b.Fatal(err)
		}
		if err := q.AckOne(ctx, j.ID, j.Lease); err != nil {
			b.Fatal(err)
		}
	}
}
