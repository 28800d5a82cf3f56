package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/backend/sqlite"
	"github.com/storaged/storaged/internal/testutil"
)

// TestReliabilityDeletedFileDaemon deletes (or replaces) the SQLite file under a
// running daemon: writes, enqueues and reads answer 503 unavailable
// instead of 201 into an unlinked file, /readyz turns 503, and the log says
// which file and why.
func TestReliabilityDeletedFileDaemon(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced", func(t *testing.T, path string) {
			other := filepath.Join(filepath.Dir(path), "other.db")
			db, err := sqlite.Open(context.Background(), sqlite.Config{Path: other})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "live.db")
			d := testutil.StartDaemonLogged(t, "REPOSITORY_BACKEND=sqlite", "JOBQUEUE_BACKEND=sqlite", "SQLITE_PATH="+path)
			st, body, err := call(d.Client, "POST", "/v1/repos/c", `{"v":"before"}`)
			if err != nil || st != 201 {
				t.Fatalf("create: %d %s %v", st, body, err)
			}
			id := testutil.Doc(t, body)["id"].(string)
			if st, _, _ := call(d.Client, "GET", "/readyz", ""); st != 200 {
				t.Fatalf("readyz %d before the file went", st)
			}

			c.change(t, path)

			for _, r := range []struct{ method, path, body string }{
				{"POST", "/v1/repos/c", `{"v":"after"}`},
				{"PATCH", "/v1/repos/c/" + id, `{"v":"after"}`},
				{"GET", "/v1/repos/c/" + id, ""},
				{"POST", "/v1/repos/c/find", `{}`},
				{"POST", "/v1/queues/q/jobs", `{"data":1}`},
				{"POST", "/v1/queues/q/dequeue", `{}`},
				{"GET", "/readyz", ""},
			} {
				st, body, err := call(d.Client, r.method, r.path, r.body)
				if err != nil || st != 503 || !strings.Contains(string(body), `"unavailable"`) || !strings.Contains(string(body), "deleted or replaced") {
					t.Errorf("%s %s after the file was %s: %d %s %v, want 503 unavailable saying why", r.method, r.path, c.name, st, body, err)
				}
			}
			log := d.Log.String()
			if !strings.Contains(log, "the database file was deleted or replaced") || !strings.Contains(log, path) {
				t.Fatalf("the log does not name the file and what happened:\n%s", log)
			}
		})
	}
}
