package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// FileTemplate is a database file built once per test process and copied
// for each test that wants a fresh one. Building a SQLite file means
// running every migration, which under the race detector costs about a
// quarter of a second; the suites open hundreds of fresh files, each of
// which then only needs a copy of a few hundred kilobytes. What the copy
// holds is exactly what the build left, so a test still starts from a
// freshly migrated database; the migrations themselves are still run,
// once per process here and by the tests that migrate old files.
type FileTemplate struct {
	build func(path string) error
	once  sync.Once
	data  []byte
	err   error
}

// NewFileTemplate returns a template made by build, which must leave a
// complete, closed file at path (for SQLite in WAL mode: closed, so that
// the log is folded into the file). Nothing is built until the first Copy.
func NewFileTemplate(build func(path string) error) *FileTemplate {
	return &FileTemplate{build: build}
}

// Copy writes a fresh copy of the template as name in a temporary
// directory of t's (removed at its cleanup) and returns its path.
func (f *FileTemplate) Copy(t testing.TB, name string) string {
	t.Helper()
	f.once.Do(func() {
		// Held in memory, so that no file outlives the test process.
		dir, err := os.MkdirTemp("", "storaged-template-")
		if err != nil {
			f.err = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "template")
		if err := f.build(path); err != nil {
			f.err = fmt.Errorf("building the template file: %w", err)
			return
		}
		// Whatever else the build left (a -wal or -shm file) would mean
		// the file alone is not the whole database.
		if extra, _ := filepath.Glob(path + "-*"); len(extra) > 0 {
			f.err = fmt.Errorf("building the template file: it left %v beside it; close the database in the build", extra)
			return
		}
		f.data, f.err = os.ReadFile(path)
	})
	if f.err != nil {
		t.Fatal(f.err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, f.data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
