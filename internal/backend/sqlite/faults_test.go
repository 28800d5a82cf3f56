package sqlite

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// TestReliabilityDiskFull fills the database (max_page_count stands in for a full
// disk: SQLite reports SQLITE_FULL either way) and requires a clear
// unavailable error, every earlier write intact and a sound file.
func TestReliabilityDiskFull(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "full.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := NewRepositoryBackend(db).Repository("c")
	q := testutil.NewJobs(NewJobStore(db), nil)
	var pages int
	if err := db.writer.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.Exec("PRAGMA max_page_count = " + strconv.Itoa(pages+40)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 8000)
	var stored []string
	var fullErr error
	for i := 0; i < 1000; i++ {
		rec, err := r.Create(ctx, map[string]any{"i": float64(i), "pad": big})
		if err != nil {
			fullErr = err
			break
		}
		doc, _ := backend.Decode(rec)
		stored = append(stored, doc["id"].(string))
	}
	if fullErr == nil {
		t.Fatal("the database never filled up")
	}
	if !backend.IsCode(fullErr, backend.CodeUnavailable) || !strings.Contains(fullErr.Error(), "full") {
		t.Fatalf("a full disk gave %v", fullErr)
	}
	// Twice the size of the record that no longer fit: what is left over
	// depends on the rows' layout, never enough for this.
	_, err = q.Add(ctx, "q", []backend.EnqueueParams{{Data: []byte(`"` + big + big + `"`)}}...)
	if !backend.IsCode(err, backend.CodeUnavailable) {
		t.Fatalf("enqueue on a full disk: %v", err)
	}
	for _, id := range stored {
		if rec, err := r.FindByID(ctx, id); err != nil || rec == nil {
			t.Fatalf("record %s lost after the disk filled: %v", id, err)
		}
	}
	var check string
	if err := db.writer.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q %v", check, err)
	}
	t.Logf("disk full after %d records: %v; all kept, integrity ok", len(stored), fullErr)
}

// TestReliabilityReadOnly: a database that became read-only refuses writes with a
// clear error and still serves reads. (query_only stands in for a
// read-only file: root ignores file modes, SQLite reports SQLITE_READONLY
// either way.)
func TestReliabilityReadOnly(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "ro.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := NewRepositoryBackend(db).Repository("c")
	rec, err := r.Create(ctx, map[string]any{"v": 1.0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.Exec("PRAGMA query_only = 1"); err != nil {
		t.Fatal(err)
	}
	_, err = r.Create(ctx, map[string]any{"v": 2.0})
	if !backend.IsCode(err, backend.CodeUnavailable) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write to a read-only database: %v", err)
	}
	doc, _ := backend.Decode(rec)
	if got, err := r.FindByID(ctx, doc["id"].(string)); err != nil || got == nil {
		t.Fatalf("reads stopped on a read-only database: %v", err)
	}
	if n, err := r.Count(ctx, backend.MatchAll); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
}
