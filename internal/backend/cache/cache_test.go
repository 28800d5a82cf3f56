package cache_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/backend/cache"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/postgres"
	"github.com/storaged/storaged/internal/backend/sqlite"
	"github.com/storaged/storaged/internal/testutil"
)

// opener opens the backend under test, uncached.
type opener func(t *testing.T) backend.RepositoryBackend

func backends(t *testing.T) map[string]opener {
	pgURL := testutil.PostgresDB(t)
	return map[string]opener{
		"memory": func(t *testing.T) backend.RepositoryBackend { return memory.NewRepositoryBackend() },
		"sqlite": func(t *testing.T) backend.RepositoryBackend {
			db, err := sqlite.Open(context.Background(), sqlite.Config{Path: migratedSQLite.Copy(t, "c.db")})
			if err != nil {
				t.Fatal(err)
			}
			return sqlite.NewRepositoryBackend(db)
		},
		"postgres": func(t *testing.T) backend.RepositoryBackend { return openPG(t, pgURL) },
	}
}

// migratedSQLite is a freshly migrated file, copied for each test instead
// of migrating a new one each time (see testutil.FileTemplate).
var migratedSQLite = testutil.NewFileTemplate(func(path string) error {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		return err
	}
	return db.Close()
})

func openPG(t *testing.T, url string) *postgres.RepositoryBackend {
	b, err := postgres.OpenRepository(context.Background(), postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wrap caches next and waits until the cache serves (a change feed, if
// any, is listening).
func wrap(t *testing.T, next backend.RepositoryBackend, size int) *cache.RepositoryBackend {
	t.Helper()
	c, err := cache.Wrap(next, cache.Config{Size: size, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !c.Live() {
		if time.Now().After(deadline) {
			t.Fatal("the cache did not go live")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c
}

// TestConformance: with a cache in front, every backend still passes the
// repository suite (a small cache, so evictions happen too).
func TestConformance(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			backendtest.RunRepository(t, func(t *testing.T) backend.RepositoryBackend { return wrap(t, open(t), 64) })
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func field(t *testing.T, rec backend.Record, name string) any {
	t.Helper()
	if rec == nil {
		return nil
	}
	var m map[string]any
	must(t, json.Unmarshal(rec, &m))
	return m[name]
}

func TestReliabilityBehaviour(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("HitsAndWrites", func(t *testing.T) { testHitsAndWrites(t, wrap(t, open(t), 100)) })
			t.Run("TransactionDropsOnCommitOnly", func(t *testing.T) { testTx(t, wrap(t, open(t), 100)) })
			t.Run("NoStaleReadAfterAck", func(t *testing.T) { testReadAfterAck(t, wrap(t, open(t), 100)) })
		})
	}
}

func testHitsAndWrites(t *testing.T, c *cache.RepositoryBackend) {
	r := c.Repository(testutil.Name(t, "c"))
	rec, err := r.Create(ctx(t), map[string]any{"id": "a", "v": 1.0})
	must(t, err)
	// On PostgreSQL the create's own notification comes back and drops
	// the entry once; read until a hit, then count.
	for start := time.Now(); ; {
		h, _ := c.Stats()
		got, err := r.FindByID(ctx(t), "a")
		must(t, err)
		if string(got) != string(rec) {
			t.Fatalf("findById %s, want %s", got, rec)
		}
		if h2, _ := c.Stats(); h2 > h {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("no cache hit")
		}
	}
	hits, misses := c.Stats()
	for range 3 {
		got, err := r.FindByID(ctx(t), "a")
		must(t, err)
		if string(got) != string(rec) {
			t.Fatalf("findById %s, want %s", got, rec)
		}
	}
	if h, m := c.Stats(); h != hits+3 || m != misses {
		t.Fatalf("3 more reads: hits %d→%d, misses %d→%d; want 3 hits", hits, h, misses, m)
	}
	_, err = r.Update(ctx(t), "a", map[string]any{"v": 2.0})
	must(t, err)
	got, _ := r.FindByID(ctx(t), "a")
	if field(t, got, "v") != 2.0 {
		t.Fatalf("after update: %s", got)
	}
	must(t, r.Delete(ctx(t), "a"))
	if got, _ := r.FindByID(ctx(t), "a"); got != nil {
		t.Fatalf("after delete: %s", got)
	}
	// A record created again under a deleted id is not shadowed.
	_, err = r.Create(ctx(t), map[string]any{"id": "a", "v": 3.0})
	must(t, err)
	if got, _ := r.FindByID(ctx(t), "a"); field(t, got, "v") != 3.0 {
		t.Fatalf("after re-create: %s", got)
	}
}

func testTx(t *testing.T, c *cache.RepositoryBackend) {
	name := testutil.Name(t, "c")
	r := c.Repository(name)
	_, err := r.Create(ctx(t), map[string]any{"id": "a", "v": 1.0})
	must(t, err)
	_, err = r.FindByID(ctx(t), "a") // cached
	must(t, err)
	tx, err := c.Begin(ctx(t))
	must(t, err)
	_, err = tx.Repository(name).Update(ctx(t), "a", map[string]any{"v": 2.0})
	must(t, err)
	if got, _ := tx.Repository(name).FindByID(ctx(t), "a"); field(t, got, "v") != 2.0 {
		t.Fatalf("the transaction does not see its own write: %s", got)
	}
	// Memory and SQLite hold the only writer during a transaction, and
	// their reads do not wait for it; PostgreSQL reads the committed row.
	if got, _ := r.FindByID(ctx(t), "a"); field(t, got, "v") != 1.0 {
		t.Fatalf("an uncommitted write is visible outside: %s", got)
	}
	must(t, tx.Commit(ctx(t)))
	if got, _ := r.FindByID(ctx(t), "a"); field(t, got, "v") != 2.0 {
		t.Fatalf("after commit the cache still serves the old record: %s", got)
	}
	tx, err = c.Begin(ctx(t))
	must(t, err)
	_, err = tx.Repository(name).Update(ctx(t), "a", map[string]any{"v": 3.0})
	must(t, err)
	must(t, tx.Rollback(ctx(t)))
	if got, _ := r.FindByID(ctx(t), "a"); field(t, got, "v") != 2.0 {
		t.Fatalf("after rollback: %s", got)
	}
}

// testReadAfterAck races readers against writers on a few records. A read
// that starts after an update was acknowledged must return that version
// or a later one: the stale fill the generations exist to stop would show
// up here as an older version.
func testReadAfterAck(t *testing.T, c *cache.RepositoryBackend) {
	r := c.Repository(testutil.Name(t, "c"))
	const records = 4
	var acked [records]atomic.Int64
	for i := range records {
		_, err := r.Create(ctx(t), map[string]any{"id": fmt.Sprint(i), "v": 0.0})
		must(t, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, checked atomic.Int64
	for w := range records {
		wg.Add(1)
		go func() { // one writer per record, so versions only grow
			defer wg.Done()
			for v := 1; ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := r.Update(context.Background(), fmt.Sprint(w), map[string]any{"v": float64(v)}); err != nil {
					t.Error(err)
					return
				}
				acked[w].Store(int64(v))
			}
		}()
	}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := n % records
				floor := acked[i].Load()
				rec, err := r.FindByID(context.Background(), fmt.Sprint(i))
				if err != nil {
					t.Error(err)
					return
				}
				var m struct{ V int64 }
				if err := json.Unmarshal(rec, &m); err != nil {
					t.Errorf("record %d: %v", i, err)
					return
				}
				reads.Add(1)
				if m.V < floor {
					t.Errorf("record %d: read version %d after version %d was acknowledged", i, m.V, floor)
					return
				}
				checked.Add(1)
			}
		}()
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	hits, misses := c.Stats()
	if checked.Load() == 0 || hits == 0 || misses == 0 {
		t.Fatalf("the race did not happen: %d reads, %d hits, %d misses", reads.Load(), hits, misses)
	}
	t.Logf("%d reads checked (%d hits, %d misses), none older than an acknowledged write", checked.Load(), hits, misses)
}

// TestReliabilityOtherProcessWrites: two caches over one PostgreSQL, as two daemons.
// A write through one (plain or in a transaction) reaches the other's
// cache through LISTEN/NOTIFY; the test measures how long that takes and
// fails past the documented bound.
func TestReliabilityOtherProcessWrites(t *testing.T) {
	url := testutil.PostgresDB(t)
	a := wrap(t, openPG(t, url), 100)
	b := wrap(t, openPG(t, url), 100)
	name := testutil.Name(t, "c")
	ra, rb := a.Repository(name), b.Repository(name)
	_, err := rb.Create(ctx(t), map[string]any{"id": "x", "v": 0.0})
	must(t, err)
	const bound = time.Second // docs: README, "Read cache"
	var worst time.Duration
	for v := 1.0; v <= 20; v++ {
		// Read until a serves the current version from its cache (the
		// notification of the previous write may still be on its way).
		for start := time.Now(); ; {
			hitsBefore, _ := a.Stats()
			got, _ := ra.FindByID(ctx(t), "x")
			if hits, _ := a.Stats(); hits > hitsBefore {
				if field(t, got, "v") != v-1 {
					t.Fatalf("a's cache serves %s, want v=%v", got, v-1)
				}
				break
			}
			if time.Since(start) > bound {
				t.Fatal("a never served x from its cache")
			}
		}
		if int(v)%2 == 0 {
			_, err = rb.Update(ctx(t), "x", map[string]any{"v": v})
		} else {
			err = backend.Transaction(ctx(t), b, func(tx backend.Tx) error {
				_, err := tx.Repository(name).Update(ctx(t), "x", map[string]any{"v": v})
				return err
			})
		}
		must(t, err)
		acked := time.Now()
		for {
			got, err := ra.FindByID(ctx(t), "x")
			must(t, err)
			if field(t, got, "v") == v {
				break
			}
			if time.Since(acked) > bound {
				t.Fatalf("a still reads %s %v after the write on b was acknowledged", got, bound)
			}
			time.Sleep(100 * time.Microsecond)
		}
		worst = max(worst, time.Since(acked))
	}
	t.Logf("20 writes on b (10 in transactions): a's cache dropped each within %v at worst (bound %v)", worst, bound)

	// After a quiet spell (several liveness checks on the LISTEN
	// connection) notifications still arrive.
	_, err = ra.FindByID(ctx(t), "x")
	must(t, err)
	time.Sleep(1200 * time.Millisecond)
	if !a.Live() {
		t.Fatal("the cache went off while its feed was quiet")
	}
	_, err = rb.Update(ctx(t), "x", map[string]any{"v": 100.0})
	must(t, err)
	for acked := time.Now(); ; {
		if got, _ := ra.FindByID(ctx(t), "x"); field(t, got, "v") == 100.0 {
			break
		}
		if time.Since(acked) > bound {
			t.Fatal("after a quiet spell a write on b never reached a's cache")
		}
	}
}

// TestReliabilityFeedLossTurnsTheCacheOff: when the LISTEN connection dies, the cache
// stops serving at once (it would miss changes) and comes back after the
// reconnect, empty.
func TestReliabilityFeedLossTurnsTheCacheOff(t *testing.T) {
	url := testutil.PostgresDB(t)
	c := wrap(t, openPG(t, url), 100)
	name := testutil.Name(t, "c")
	r := c.Repository(name)
	_, err := r.Create(ctx(t), map[string]any{"id": "x", "v": 0.0})
	must(t, err)
	_, err = r.FindByID(ctx(t), "x")
	must(t, err)

	conn, err := pgx.Connect(ctx(t), url)
	must(t, err)
	defer conn.Close(context.Background())
	var killed int
	must(t, conn.QueryRow(ctx(t), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'storaged change feed' AND datname = current_database()`).Scan(&killed))
	if killed != 1 {
		t.Fatalf("terminated %d change feed connections, want 1", killed)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Live() {
		if time.Now().After(deadline) {
			t.Fatal("the cache kept serving after its change feed died")
		}
		time.Sleep(time.Millisecond)
	}
	for !c.Live() {
		if time.Now().After(deadline) {
			t.Fatal("the change feed did not come back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, misses := c.Stats()
	_, err = r.FindByID(ctx(t), "x")
	must(t, err)
	if _, m := c.Stats(); m != misses+1 {
		t.Fatal("the cache kept entries across a lost change feed")
	}
}

// failingFeed is a backend whose change feed cannot start.
type failingFeed struct{ backend.RepositoryBackend }

func (failingFeed) WatchChanges(context.Context, func(string, string), func(bool)) error {
	return backend.Errorf(backend.CodeInternal, "must be owner of table storaged_records")
}

// silentFeed never goes live.
type silentFeed struct{ backend.RepositoryBackend }

func (silentFeed) WatchChanges(ctx context.Context, _ func(string, string), _ func(bool)) error {
	<-ctx.Done()
	return nil
}

// TestFeedThatCannotStartIsRefused: a cache that could never serve is a
// start-up error naming the cause, not a silent slowdown.
func TestFeedThatCannotStartIsRefused(t *testing.T) {
	_, err := cache.Wrap(failingFeed{memory.NewRepositoryBackend()}, cache.Config{Size: 10})
	if err == nil || !strings.Contains(err.Error(), "must be owner") {
		t.Fatalf("Wrap over a failing feed: %v", err)
	}
	_, err = cache.Wrap(silentFeed{memory.NewRepositoryBackend()}, cache.Config{Size: 10, StartTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "within") {
		t.Fatalf("Wrap over a feed that never goes live: %v", err)
	}
}
