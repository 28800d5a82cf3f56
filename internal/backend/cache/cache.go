// Package cache is the findById read cache (REPOSITORY_CACHE_SIZE): a
// RepositoryBackend that keeps recently read records in an LRU in front of
// another one.
//
// The rule it keeps: once a write is acknowledged, no read returns what it
// replaced. So every write through this daemon drops its record before
// the write is acknowledged (for a transaction, when it commits), and a
// backend that other processes write to (PostgreSQL) reports their
// commits through backend.ChangeFeed. While that feed is down the cache is
// off: empty and bypassed.
//
// A miss reads the backend and then fills the cache, and a write may land
// in between; filling the stale record then would keep it forever. So
// every drop bumps a generation (per stripe of keys, and a global one for
// flushes), and a fill happens only if nothing was dropped since its read
// began. The check-and-fill and the bump-and-drop hold one mutex; hits do
// not take it.
package cache

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/storaged/storaged/internal/backend"
)

var (
	_ backend.RepositoryBackend = (*RepositoryBackend)(nil)
	_ backend.Tx                = (*tx)(nil)
	_ backend.Repository        = (*repository)(nil)
)

const stripes = 256

// RepositoryBackend caches FindByID of the backend it wraps.
type RepositoryBackend struct {
	next backend.RepositoryBackend
	lru  *lru.Cache[string, backend.Item]
	seed maphash.Seed
	log  *slog.Logger

	mu    sync.Mutex
	gens  [stripes]uint64 // bumped when a key of the stripe is dropped
	epoch uint64          // bumped on every flush
	live  bool            // false while the change feed is down

	hits, misses atomic.Uint64
	stop         context.CancelFunc
	done         chan struct{}
}

// Config configures Wrap.
type Config struct {
	// Size is the most records kept.
	Size   int
	Logger *slog.Logger
	// StartTimeout bounds the wait for a change feed to go live; default 10s.
	StartTimeout time.Duration
}

// Wrap puts a cache of cfg.Size records in front of next. If next is a
// backend.ChangeFeed the cache follows it, and Wrap returns once the feed
// is live (or fails if it does not get there); otherwise only this process's writes are seen, which is right for
// memory and for a SQLite file that only this daemon writes.
func Wrap(next backend.RepositoryBackend, cfg Config) (*RepositoryBackend, error) {
	c, err := lru.New[string, backend.Item](cfg.Size)
	if err != nil {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "cache size: %v", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	b := &RepositoryBackend{next: next, lru: c, seed: maphash.MakeSeed(), log: cfg.Logger}
	feed, ok := next.(backend.ChangeFeed)
	if !ok {
		b.live = true
		return b, nil
	}
	ctx, stop := context.WithCancel(context.Background())
	b.stop, b.done = stop, make(chan struct{})
	started := make(chan error, 1)
	var once sync.Once
	go func() {
		defer close(b.done)
		err := feed.WatchChanges(ctx, b.drop, func(live bool) {
			b.setLive(live)
			once.Do(func() { started <- nil })
		})
		once.Do(func() { started <- err })
		if err != nil && ctx.Err() == nil {
			b.log.Error("read cache: the change feed stopped; the cache stays off", "err", err)
		}
	}()
	// A cache that can never go live (no right to enable the trigger, say)
	// is a configuration error, better refused at start than found later.
	select {
	case err := <-started:
		if err == nil {
			return b, nil
		}
		stop()
		<-b.done
		return nil, fmt.Errorf("the change feed did not start: %w", err)
	case <-time.After(cfg.StartTimeout):
		stop()
		<-b.done
		return nil, fmt.Errorf("the change feed did not start within %v", cfg.StartTimeout)
	}
}

// Stats returns the hits and misses of FindByID so far.
func (b *RepositoryBackend) Stats() (hits, misses uint64) { return b.hits.Load(), b.misses.Load() }

// Live reports whether the cache is serving (its change feed is up).
func (b *RepositoryBackend) Live() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live
}

func key(collection, id string) string { return collection + "\x00" + id }

func (b *RepositoryBackend) stripe(k string) int { return int(maphash.String(b.seed, k) % stripes) }

// drop forgets one record; it is the change feed's callback too.
func (b *RepositoryBackend) drop(collection, id string) {
	k := key(collection, id)
	s := b.stripe(k)
	b.mu.Lock()
	b.gens[s]++
	b.lru.Remove(k)
	b.mu.Unlock()
}

// setLive flushes the cache and turns it on or off. Flushing when it comes
// back matters too: writes made while the feed was down went unseen.
func (b *RepositoryBackend) setLive(live bool) {
	b.mu.Lock()
	b.epoch++
	b.live = live
	b.lru.Purge()
	b.mu.Unlock()
	b.log.Info("read cache", "live", live)
}

func (b *RepositoryBackend) get(ctx context.Context, r backend.Repository, collection, id string) (backend.Item, error) {
	k := key(collection, id)
	if it, ok := b.lru.Get(k); ok {
		b.hits.Add(1)
		return it, nil
	}
	b.misses.Add(1)
	s := b.stripe(k)
	b.mu.Lock()
	gen, epoch, live := b.gens[s], b.epoch, b.live
	b.mu.Unlock()
	it, err := r.Get(ctx, id)
	// A record with a TTL is not kept: the cache would have to know the
	// backend's clock to stop serving it in time.
	if err != nil || it.Rec == nil || !live || it.ExpiresAt != 0 {
		return it, err
	}
	b.mu.Lock()
	if b.live && b.gens[s] == gen && b.epoch == epoch {
		b.lru.Add(k, it)
	}
	b.mu.Unlock()
	return it, nil
}

// flush forgets every record: after a write to records it cannot name
// (updateMany, deleteMany).
func (b *RepositoryBackend) flush() {
	b.mu.Lock()
	b.epoch++
	b.lru.Purge()
	b.mu.Unlock()
}

// Repository implements backend.RepositoryBackend.
func (b *RepositoryBackend) Repository(collection string) backend.Repository {
	return &repository{b: b, next: b.next.Repository(collection), name: collection}
}

// Begin implements backend.RepositoryBackend. Reads inside a transaction
// bypass the cache (they must see the transaction's own writes); its
// writes are dropped from the cache when it commits.
func (b *RepositoryBackend) Begin(ctx context.Context) (backend.Tx, error) {
	t, err := b.next.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &tx{b: b, next: t}, nil
}

// Ping implements backend.RepositoryBackend.
func (b *RepositoryBackend) Ping(ctx context.Context) error { return b.next.Ping(ctx) }

// Close implements backend.RepositoryBackend.
func (b *RepositoryBackend) Close() error {
	if b.stop != nil {
		b.stop()
		<-b.done
	}
	return b.next.Close()
}

// PurgeExpired implements backend.Expirer for the backend behind the
// cache (which never holds records with a TTL).
func (b *RepositoryBackend) PurgeExpired(ctx context.Context) (int64, error) {
	if e, ok := b.next.(backend.Expirer); ok {
		return e.PurgeExpired(ctx)
	}
	return 0, nil
}

// SetClock implements backend.Expirer.
func (b *RepositoryBackend) SetClock(now func() time.Time) {
	if e, ok := b.next.(backend.Expirer); ok {
		e.SetClock(now)
	}
}

// ReadChanges implements backend.ChangeLog for the backend behind the
// cache.
func (b *RepositoryBackend) ReadChanges(ctx context.Context, collection string, after int64, limit int) ([]backend.Change, int64, error) {
	l, ok := b.next.(backend.ChangeLog)
	if !ok {
		return nil, 0, backend.Errorf(backend.CodeUnavailable, "this repository backend keeps no change log")
	}
	return l.ReadChanges(ctx, collection, after, limit)
}

// ChangesChan implements backend.ChangeWaker: nil (poll) unless the
// backend behind can wake.
func (b *RepositoryBackend) ChangesChan(collection string) <-chan struct{} {
	if w, ok := b.next.(backend.ChangeWaker); ok {
		return w.ChangesChan(collection)
	}
	return nil
}

// Unwrap returns the backend behind the cache.
func (b *RepositoryBackend) Unwrap() backend.RepositoryBackend { return b.next }

// repository drops a record after every write to it, whatever the
// outcome: a write that timed out may still have happened.
type repository struct {
	b    *RepositoryBackend
	next backend.Repository
	name string
}

func (r *repository) Create(ctx context.Context, doc map[string]any) (backend.Record, error) {
	// A generated id is new, so nothing can be cached under it; a given
	// one is dropped in case a delete of it raced with a read.
	if id, ok := doc["id"].(string); ok {
		defer r.b.drop(r.name, id)
	}
	return r.next.Create(ctx, doc)
}

func (r *repository) FindByID(ctx context.Context, id string) (backend.Record, error) {
	it, err := r.b.get(ctx, r.next, r.name, id)
	return it.Rec, err
}

func (r *repository) Get(ctx context.Context, id string) (backend.Item, error) {
	return r.b.get(ctx, r.next, r.name, id)
}

func (r *repository) FindItems(ctx context.Context, q backend.Query) ([]backend.Item, error) {
	return r.next.FindItems(ctx, q)
}

func (r *repository) GetMany(ctx context.Context, ids []string) ([]backend.Item, error) {
	return r.next.GetMany(ctx, ids)
}

func (r *repository) Put(ctx context.Context, id string, doc map[string]any, p backend.PutParams) (backend.Item, bool, error) {
	defer r.b.drop(r.name, id)
	return r.next.Put(ctx, id, doc, p)
}

func (r *repository) Modify(ctx context.Context, id string, u backend.Update, p backend.WriteParams) (backend.Item, error) {
	defer r.b.drop(r.name, id)
	return r.next.Modify(ctx, id, u, p)
}

func (r *repository) Remove(ctx context.Context, id string, p backend.WriteParams) error {
	defer r.b.drop(r.name, id)
	return r.next.Remove(ctx, id, p)
}

func (r *repository) UpdateMany(ctx context.Context, f backend.Filter, u backend.Update) (backend.UpdateManyResult, error) {
	defer r.b.flush()
	return r.next.UpdateMany(ctx, f, u)
}

func (r *repository) DeleteMany(ctx context.Context, f backend.Filter) (int64, error) {
	defer r.b.flush()
	return r.next.DeleteMany(ctx, f)
}

func (r *repository) FindMany(ctx context.Context, q backend.Query) ([]backend.Record, error) {
	return r.next.FindMany(ctx, q)
}

func (r *repository) Update(ctx context.Context, id string, patch map[string]any) (backend.Record, error) {
	defer r.b.drop(r.name, id)
	return r.next.Update(ctx, id, patch)
}

func (r *repository) Delete(ctx context.Context, id string) error {
	defer r.b.drop(r.name, id)
	return r.next.Delete(ctx, id)
}

func (r *repository) Count(ctx context.Context, f backend.Filter) (int64, error) {
	return r.next.Count(ctx, f)
}

func (r *repository) EnsureIndex(ctx context.Context, spec backend.IndexSpec) error {
	return r.next.EnsureIndex(ctx, spec)
}

// tx remembers the records its writes touch and drops them at commit.
type tx struct {
	b       *RepositoryBackend
	next    backend.Tx
	mu      sync.Mutex
	written [][2]string
	flush   bool // an updateMany or deleteMany: drop everything
}

func (t *tx) Repository(collection string) backend.Repository {
	return &txRepository{Repository: t.next.Repository(collection), t: t, name: collection}
}

func (t *tx) Commit(ctx context.Context) error {
	err := t.next.Commit(ctx)
	// Dropped even if the commit failed: it may have happened anyway.
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.written {
		t.b.drop(w[0], w[1])
	}
	if t.flush {
		t.b.flush()
	}
	t.written, t.flush = nil, false
	return err
}

func (t *tx) Rollback(ctx context.Context) error { return t.next.Rollback(ctx) }

func (t *tx) wrote(collection, id string) {
	t.mu.Lock()
	t.written = append(t.written, [2]string{collection, id})
	t.mu.Unlock()
}

// txRepository reads straight through (the embedded Repository) and
// notes what it writes.
type txRepository struct {
	backend.Repository
	t    *tx
	name string
}

func (r *txRepository) Create(ctx context.Context, doc map[string]any) (backend.Record, error) {
	if id, ok := doc["id"].(string); ok {
		r.t.wrote(r.name, id)
	}
	return r.Repository.Create(ctx, doc)
}

func (r *txRepository) Update(ctx context.Context, id string, patch map[string]any) (backend.Record, error) {
	r.t.wrote(r.name, id)
	return r.Repository.Update(ctx, id, patch)
}

func (r *txRepository) Delete(ctx context.Context, id string) error {
	r.t.wrote(r.name, id)
	return r.Repository.Delete(ctx, id)
}

func (r *txRepository) Put(ctx context.Context, id string, doc map[string]any, p backend.PutParams) (backend.Item, bool, error) {
	r.t.wrote(r.name, id)
	return r.Repository.Put(ctx, id, doc, p)
}

func (r *txRepository) Modify(ctx context.Context, id string, u backend.Update, p backend.WriteParams) (backend.Item, error) {
	r.t.wrote(r.name, id)
	return r.Repository.Modify(ctx, id, u, p)
}

func (r *txRepository) Remove(ctx context.Context, id string, p backend.WriteParams) error {
	r.t.wrote(r.name, id)
	return r.Repository.Remove(ctx, id, p)
}

func (r *txRepository) UpdateMany(ctx context.Context, f backend.Filter, u backend.Update) (backend.UpdateManyResult, error) {
	r.t.flushAtCommit()
	return r.Repository.UpdateMany(ctx, f, u)
}

func (r *txRepository) DeleteMany(ctx context.Context, f backend.Filter) (int64, error) {
	r.t.flushAtCommit()
	return r.Repository.DeleteMany(ctx, f)
}

func (t *tx) flushAtCommit() {
	t.mu.Lock()
	t.flush = true
	t.mu.Unlock()
}
