// Package memory is the in-process adapter of both ports: the reference
// implementation of DESIGN §2–§3 and the backend of tests and development.
// Nothing survives a restart.
package memory

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

var (
	_ backend.RepositoryBackend = (*RepositoryBackend)(nil)
	_ backend.Tx                = (*tx)(nil)
	_ backend.Repository        = (*repository)(nil)
)

// RepositoryBackend keeps collections in maps. Writes are serialized by a
// single writer slot, which a transaction holds from Begin to its end;
// that makes every transaction serializable. A transaction works on
// copies of the collections it writes and swaps them in on commit, so
// readers never see uncommitted data and rollback is just dropping them.
type RepositoryBackend struct {
	writer chan struct{} // a token: whoever holds it may write
	mu     sync.RWMutex  // guards colls and in-place changes to them
	colls  map[string]*collection
	closed bool

	clockMu sync.Mutex
	clock   func() time.Time // for TTLs; SetClock

	log changeLog
}

// NewRepositoryBackend returns an empty backend.
func NewRepositoryBackend() *RepositoryBackend {
	return &RepositoryBackend{writer: make(chan struct{}, 1), colls: map[string]*collection{}, clock: backend.Now}
}

type entry struct {
	doc     map[string]any
	rec     backend.Record
	version int64
	expires int64 // Unix ms; 0: never
}

type collection struct {
	docs    map[string]*entry
	indexes map[string]*index
	// now is the time of the write under way (set by write, which holds
	// the collection alone): expired records count as absent.
	now int64
	// pending are the changes of the write under way, for the change
	// log once they are committed (changes.go).
	pending []backend.Change
}

type index struct {
	spec backend.IndexSpec
	keys map[string]string // unique key → id, for unique indexes
}

func newCollection() *collection {
	return &collection{docs: map[string]*entry{}, indexes: map[string]*index{}}
}

// clone copies the maps; entries are never changed in place, so sharing
// them is safe.
func (c *collection) clone() *collection {
	out := &collection{docs: make(map[string]*entry, len(c.docs)), indexes: make(map[string]*index, len(c.indexes))}
	for id, e := range c.docs {
		out.docs[id] = e
	}
	for name, ix := range c.indexes {
		cp := &index{spec: ix.spec}
		if ix.keys != nil {
			cp.keys = make(map[string]string, len(ix.keys))
			for k, v := range ix.keys {
				cp.keys[k] = v
			}
		}
		out.indexes[name] = cp
	}
	return out
}

func (b *RepositoryBackend) acquire(ctx context.Context) error {
	select {
	case b.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return backend.Errorf(backend.CodeUnavailable, "timed out waiting for the writer (a transaction holds it)")
	}
}

func (b *RepositoryBackend) release() { <-b.writer }

// Repository implements backend.RepositoryBackend.
func (b *RepositoryBackend) Repository(name string) backend.Repository {
	return &repository{b: b, name: name}
}

// Begin implements backend.RepositoryBackend.
func (b *RepositoryBackend) Begin(ctx context.Context) (backend.Tx, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	return &tx{b: b, colls: map[string]*collection{}}, nil
}

// Ping implements backend.RepositoryBackend.
func (b *RepositoryBackend) Ping(context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return backend.Errorf(backend.CodeUnavailable, "backend is closed")
	}
	return nil
}

// Close implements backend.RepositoryBackend.
func (b *RepositoryBackend) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

type tx struct {
	b     *RepositoryBackend
	mu    sync.Mutex
	colls map[string]*collection // copies this transaction has written
	done  bool
	ends  []func(commit bool) // the job store's part (jobstore_tx.go)
}

// onEnd registers fn to run when the transaction ends, before the next
// writer may begin; false if it has ended already.
func (t *tx) onEnd(fn func(commit bool)) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return false
	}
	t.ends = append(t.ends, fn)
	return true
}

func (t *tx) runEnds(commit bool) {
	for _, fn := range t.ends {
		fn(commit)
	}
	t.ends = nil
}

func (t *tx) Repository(name string) backend.Repository {
	return &repository{b: t.b, tx: t, name: name}
}

func (t *tx) Commit(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	t.done = true
	t.b.mu.Lock()
	for name, c := range t.colls {
		t.b.colls[name] = c
		t.b.logChanges(name, c)
	}
	t.b.mu.Unlock()
	t.runEnds(true)
	t.b.release()
	return nil
}

func (t *tx) Rollback(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	t.done = true
	t.colls = nil
	t.runEnds(false)
	t.b.release()
	return nil
}

type repository struct {
	b    *RepositoryBackend
	tx   *tx
	name string
}

// read runs fn on the collection as this caller sees it (nil if it does
// not exist yet).
func (r *repository) read(fn func(c *collection) error) error {
	if r.tx != nil {
		r.tx.mu.Lock()
		defer r.tx.mu.Unlock()
		if r.tx.done {
			return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
		}
		// The transaction holds the writer, so the base maps cannot
		// change under it.
		c, ok := r.tx.colls[r.name]
		if !ok {
			c = r.b.colls[r.name]
		}
		return fn(c)
	}
	r.b.mu.RLock()
	defer r.b.mu.RUnlock()
	return fn(r.b.colls[r.name])
}

// write runs fn on a collection it may change. fn must check everything
// before changing anything, so that an error leaves no trace.
func (r *repository) write(ctx context.Context, fn func(c *collection) error) error {
	if r.tx != nil {
		r.tx.mu.Lock()
		defer r.tx.mu.Unlock()
		if r.tx.done {
			return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
		}
		c, ok := r.tx.colls[r.name]
		if !ok {
			if base := r.b.colls[r.name]; base != nil {
				c = base.clone()
			} else {
				c = newCollection()
			}
			r.tx.colls[r.name] = c
		}
		c.now = r.b.nowMs()
		return fn(c)
	}
	if err := r.b.acquire(ctx); err != nil {
		return err
	}
	defer r.b.release()
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	c := r.b.colls[r.name]
	if c == nil {
		c = newCollection()
		r.b.colls[r.name] = c
	}
	c.now = r.b.nowMs()
	defer r.b.logChanges(r.name, c)
	return fn(c)
}

func (r *repository) Create(ctx context.Context, doc map[string]any) (backend.Record, error) {
	id, rec, err := backend.PrepareCreate(doc)
	if err != nil {
		return nil, err
	}
	e := &entry{doc: doc, rec: rec, version: 1}
	err = r.write(ctx, func(c *collection) error {
		if c.take(id) != nil {
			return backend.Errorf(backend.CodeConflict, "a record with id %q already exists in %s", id, r.name)
		}
		return c.put(id, nil, e)
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

func (r *repository) FindByID(ctx context.Context, id string) (backend.Record, error) {
	it, err := r.Get(ctx, id)
	return it.Rec, err
}

func (r *repository) FindMany(ctx context.Context, q backend.Query) ([]backend.Record, error) {
	items, err := r.FindItems(ctx, q)
	return backend.Records(items), err
}

func (r *repository) FindItems(_ context.Context, q backend.Query) ([]backend.Item, error) {
	var out []backend.Item
	now := r.b.nowMs()
	err := r.read(func(c *collection) error {
		matches := c.matching(q.Filter, now)
		slices.SortFunc(matches, func(a, b *entry) int { return CompareDocs(q.Sort, a.doc, b.doc) })
		if q.Offset >= len(matches) {
			matches = nil
		} else {
			matches = matches[q.Offset:]
		}
		if q.Limit > 0 && len(matches) > q.Limit {
			matches = matches[:q.Limit]
		}
		out = make([]backend.Item, len(matches))
		for i, e := range matches {
			out[i] = backend.Item{Rec: e.rec, Version: e.version}
		}
		return nil
	})
	return out, err
}

func (r *repository) Count(_ context.Context, f backend.Filter) (int64, error) {
	var n int64
	now := r.b.nowMs()
	err := r.read(func(c *collection) error {
		n = int64(len(c.matching(f, now)))
		return nil
	})
	return n, err
}

func (r *repository) Update(ctx context.Context, id string, patch map[string]any) (backend.Record, error) {
	if err := backend.CheckPatch(patch); err != nil {
		return nil, err
	}
	it, err := r.Modify(ctx, id, backend.Update{Merge: patch}, backend.WriteParams{})
	return it.Rec, err
}

func (r *repository) Delete(ctx context.Context, id string) error {
	return r.write(ctx, func(c *collection) error {
		if old := c.docs[id]; old != nil {
			c.remove(id, old)
		}
		return nil
	})
}

// SetClock sets the clock that decides when records expire (tests).
func (b *RepositoryBackend) SetClock(now func() time.Time) {
	b.clockMu.Lock()
	b.clock = now
	b.clockMu.Unlock()
}

func (b *RepositoryBackend) nowMs() int64 {
	b.clockMu.Lock()
	defer b.clockMu.Unlock()
	return b.clock().UnixMilli()
}

func (e *entry) live(now int64) bool { return e.expires == 0 || e.expires > now }

// take returns the live record id, dropping it if it has expired. Only a
// writer calls it.
func (c *collection) take(id string) *entry {
	e := c.docs[id]
	if e == nil || e.live(c.now) {
		return e
	}
	c.remove(id, e)
	return nil
}

func (r *repository) EnsureIndex(ctx context.Context, spec backend.IndexSpec) error {
	return r.write(ctx, func(c *collection) error {
		if ix, ok := c.indexes[spec.Name]; ok {
			if !sameSpec(ix.spec, spec) {
				return backend.Errorf(backend.CodeConflict, "index %q exists with another definition", spec.Name)
			}
			return nil
		}
		ix := &index{spec: spec}
		if spec.Unique {
			ix.keys = map[string]string{}
			for id, e := range c.docs {
				if !e.live(c.now) {
					continue
				}
				k, ok := uniqueKey(spec.Fields, e.doc)
				if !ok {
					continue
				}
				if other, dup := ix.keys[k]; dup {
					return backend.Errorf(backend.CodeConflict, "records %q and %q violate unique index %q", other, id, spec.Name)
				}
				ix.keys[k] = id
			}
		}
		c.indexes[spec.Name] = ix
		return nil
	})
}

// put stores e under id, replacing old (nil for a create), after checking
// every unique index.
func (c *collection) put(id string, old, e *entry) error {
	for name, ix := range c.indexes {
		if ix.keys == nil {
			continue
		}
		if k, ok := uniqueKey(ix.spec.Fields, e.doc); ok {
			if holder, taken := ix.keys[k]; taken && holder != id && c.take(holder) != nil {
				return backend.Errorf(backend.CodeConflict, "unique index %q: another record has the same value", name)
			}
		}
	}
	if old != nil {
		c.unindex(id, old)
	}
	for _, ix := range c.indexes {
		if ix.keys == nil {
			continue
		}
		if k, ok := uniqueKey(ix.spec.Fields, e.doc); ok {
			ix.keys[k] = id
		}
	}
	c.docs[id] = e
	op := "update"
	if old == nil || e.version == 1 {
		op = "create"
	}
	c.pending = append(c.pending, backend.Change{Op: op, ID: id, Version: e.version})
	return nil
}

// remove deletes record id, e.
func (c *collection) remove(id string, e *entry) {
	c.unindex(id, e)
	delete(c.docs, id)
	c.pending = append(c.pending, backend.Change{Op: "delete", ID: id, Version: e.version})
}

func (c *collection) unindex(id string, old *entry) {
	for _, ix := range c.indexes {
		if ix.keys == nil {
			continue
		}
		if k, ok := uniqueKey(ix.spec.Fields, old.doc); ok && ix.keys[k] == id {
			delete(ix.keys, k)
		}
	}
}

func (c *collection) matching(f backend.Filter, now int64) []*entry {
	if c == nil {
		return nil
	}
	var out []*entry
	for _, e := range c.docs {
		if e.live(now) && Match(f, e.doc) {
			out = append(out, e)
		}
	}
	return out
}

// uniqueKey encodes the indexed values with their JSON type, so that 1 and
// "1" differ; ok is false when a value is missing, null or not a scalar
// (those records are not constrained, as NULLs in SQL).
func uniqueKey(fields []backend.Path, doc map[string]any) (string, bool) {
	var sb strings.Builder
	for _, p := range fields {
		v, present := Lookup(doc, p)
		switch x := v.(type) {
		case float64:
			if x == 0 {
				x = 0 // -0 is the number 0, as in SQL; FormatFloat would keep its sign
			}
			sb.WriteString("n" + strconv.FormatFloat(x, 'g', -1, 64))
		case string:
			sb.WriteString("s" + strconv.Quote(x))
		case bool:
			sb.WriteString("b" + strconv.FormatBool(x))
		default:
			_ = present
			return "", false
		}
		sb.WriteByte(0)
	}
	return sb.String(), true
}

func sameSpec(a, b backend.IndexSpec) bool {
	if a.Unique != b.Unique || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if a.Fields[i].String() != b.Fields[i].String() {
			return false
		}
	}
	return true
}
