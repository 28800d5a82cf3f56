// Package testutil holds helpers shared by the test suites: unique names,
// the repository root, JSON decoding and a daemon runner.
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	mathrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_]`)

// Name returns a collection or queue name unique to this test run, so
// that suites can share one database without seeing each other's data.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	base := unsafeChars.ReplaceAllString(prefix, "_")
	if len(base) > 40 {
		base = base[:40]
	}
	return strings.Trim("t"+base, "_") + "_" + hex.EncodeToString(b[:])
}

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate testutil source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ReadFile reads a file relative to the repository root.
func ReadFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Doc decodes a JSON object or fails the test.
func Doc(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m
}

// MustJSON encodes v or fails the test.
func MustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RetryDelay is the pause before retry attempt+1 of a transaction that
// lost a race (a serialization failure): exponential from 2 ms, capped at
// 1 s, with full jitter, so that contenders that collided do not
// collide again in step. The Node client's transaction(fn, { retries })
// uses the same schedule (clients/node/src/retry.ts).
func RetryDelay(attempt int) time.Duration {
	ceiling := min(2*time.Millisecond<<min(attempt, 9), time.Second)
	return time.Duration(mathrand.Int64N(int64(ceiling)) + 1)
}

// FreePort is a loopback TCP port free when asked, for a daemon's
// STORAGED_UI_LISTEN (another process may take it before the daemon
// binds it; on a test machine that is rare enough).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
