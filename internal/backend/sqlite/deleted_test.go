package sqlite

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// syncBuffer is a log sink the daemon's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReliabilityDeletedFile: when the database file is deleted, moved away or
// replaced under a running daemon, writes used to be acknowledged into the
// unlinked file (lost at the next start), readiness stayed green and new
// readers opened a fresh empty file. Now every read, write, enqueue and
// ping answers unavailable, no empty file appears, the log names the path,
// and when the same file comes back everything works again.
func TestReliabilityDeletedFile(t *testing.T) {
	cases := []struct {
		name    string
		change  func(t *testing.T, path string)
		restore func(t *testing.T, path string) // nil: the file is gone for good
	}{
		{"deleted", func(t *testing.T, path string) { must(t, os.Remove(path)) }, nil},
		{"moved away",
			func(t *testing.T, path string) { must(t, os.Rename(path, path+".moved")) },
			func(t *testing.T, path string) { must(t, os.Rename(path+".moved", path)) }},
		{"replaced by another database", func(t *testing.T, path string) {
			other := filepath.Join(filepath.Dir(path), "other.db")
			db, err := Open(context.Background(), Config{Path: other})
			must(t, err)
			must(t, db.Close())
			must(t, os.Rename(other, path))
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "live.db")
			var logs syncBuffer
			db, err := Open(ctx, Config{Path: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			must(t, err)
			db.refs++ // one DB for both ports, as the daemon shares it
			repo, jobs := NewRepositoryBackend(db), testutil.NewJobs(NewJobStore(db), nil)
			t.Cleanup(func() { jobs.Close(); repo.Close() })
			r := repo.Repository("c")
			rec, err := r.Create(ctx, map[string]any{"v": "before"})
			must(t, err)
			id := mustDoc(t, rec)["id"].(string)
			// Warm the reader pool, so that a connection to the old file
			// is waiting in it.
			for range 4 {
				if _, err := r.FindByID(ctx, id); err != nil {
					t.Fatal(err)
				}
			}

			c.change(t, path)

			gone := func(what string, err error) {
				t.Helper()
				if !backend.IsCode(err, backend.CodeUnavailable) || !strings.Contains(err.Error(), "deleted or replaced") {
					t.Fatalf("%s after the file was %s: %v, want unavailable naming the file", what, c.name, err)
				}
			}
			_, err = r.Create(ctx, map[string]any{"v": "after"})
			gone("create", err)
			_, err = r.Update(ctx, id, map[string]any{"v": "after"})
			gone("update", err)
			gone("delete", r.Delete(ctx, id))
			_, err = r.FindByID(ctx, id)
			gone("findById", err)
			_, err = r.FindMany(ctx, backend.Query{Filter: backend.MatchAll})
			gone("findMany", err)
			_, err = r.Count(ctx, backend.MatchAll)
			gone("count", err)
			gone("ping", repo.Ping(ctx))
			_, err = jobs.Enqueue(ctx, "q", []backend.EnqueueParams{{Data: []byte(`1`)}})
			gone("enqueue", err)
			_, err = jobs.Dequeue(ctx, "q", backend.DequeueParams{})
			gone("dequeue", err)
			gone("jobs ping", jobs.Ping(ctx))
			tx, err := repo.Begin(ctx)
			must(t, err)
			_, err = tx.Repository("c").Create(ctx, map[string]any{"v": "in a transaction"})
			must(t, err) // written into the old file, where the commit stops it
			gone("commit", tx.Commit(ctx))

			if c.name == "deleted" {
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Fatalf("a reader created a fresh file at the path: %v", err)
				}
			}
			if l := logs.String(); !strings.Contains(l, "the database file was deleted or replaced") || !strings.Contains(l, path) {
				t.Fatalf("the log does not say which file went and why:\n%s", l)
			}
			if c.restore == nil {
				return
			}
			c.restore(t, path)
			must(t, repo.Ping(ctx))
			if _, err := r.Create(ctx, map[string]any{"v": "back"}); err != nil {
				t.Fatalf("create once the file is back: %v", err)
			}
			if n, err := r.Count(ctx, backend.MatchAll); err != nil || n != 2 {
				t.Fatalf("count once the file is back: %d %v (want the record from before and the new one)", n, err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustDoc(t *testing.T, rec backend.Record) map[string]any {
	t.Helper()
	doc, err := backend.Decode(rec)
	must(t, err)
	return doc
}

// BenchmarkFileCheck is what each commit and each reader taken from the
// pool pays to learn that the file is still there: one stat.
func BenchmarkFileCheck(b *testing.B) {
	db, err := Open(context.Background(), Config{Path: filepath.Join(b.TempDir(), "b.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		if err := db.checkFile(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate is one create on its own: a writer transaction whose
// commit checks the file.
func BenchmarkCreate(b *testing.B) {
	db, err := Open(context.Background(), Config{Path: filepath.Join(b.TempDir(), "b.db")})
	if err != nil {
		b.Fatal(err)
	}
	repo := NewRepositoryBackend(db)
	defer repo.Close()
	r := repo.Repository("c")
	for b.Loop() {
		if _, err := r.Create(context.Background(), map[string]any{"name": "x", "n": 1.0}); err != nil {
			b.Fatal(err)
		}
	}
}
