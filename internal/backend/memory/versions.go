package memory

import (
	"context"
	"slices"
	"strings"

	"github.com/storaged/storaged/internal/backend"
)

func (e *entry) item() backend.Item {
	return backend.Item{Rec: e.rec, Version: e.version, ExpiresAt: e.expires}
}

func (r *repository) Get(_ context.Context, id string) (backend.Item, error) {
	var it backend.Item
	now := r.b.nowMs()
	err := r.read(func(c *collection) error {
		if c != nil {
			if e := c.docs[id]; e != nil && e.live(now) {
				it = e.item()
			}
		}
		return nil
	})
	return it, err
}

func (r *repository) GetMany(_ context.Context, ids []string) ([]backend.Item, error) {
	out := make([]backend.Item, len(ids))
	now := r.b.nowMs()
	err := r.read(func(c *collection) error {
		if c == nil {
			return nil
		}
		for i, id := range ids {
			if e := c.docs[id]; e != nil && e.live(now) {
				out[i] = e.item()
			}
		}
		return nil
	})
	return out, err
}

func (r *repository) Put(ctx context.Context, id string, doc map[string]any, p backend.PutParams) (backend.Item, bool, error) {
	rec, err := backend.PreparePut(id, doc)
	if err != nil {
		return backend.Item{}, false, err
	}
	var it backend.Item
	var created bool
	err = r.write(ctx, func(c *collection) error {
		old := c.take(id)
		switch {
		case old != nil && p.IfNoneMatch:
			return backend.Errorf(backend.CodeConflict, "a record with id %q already exists in %s", id, r.name)
		case p.IfMatch != 0 && (old == nil || old.version != p.IfMatch):
			return backend.VersionConflict(r.name, id, p.IfMatch)
		}
		e := &entry{doc: doc, rec: rec, version: 1, expires: p.ExpiresAt}
		if old != nil {
			e.version = old.version + 1
		}
		if err := c.put(id, old, e); err != nil {
			return err
		}
		it, created = e.item(), old == nil
		return nil
	})
	return it, created, err
}

func (r *repository) Modify(ctx context.Context, id string, u backend.Update, p backend.WriteParams) (backend.Item, error) {
	var it backend.Item
	err := r.write(ctx, func(c *collection) error {
		old := c.take(id)
		if old == nil {
			return backend.NotFound(r.name, id)
		}
		if p.IfMatch != 0 && old.version != p.IfMatch {
			return backend.VersionConflict(r.name, id, p.IfMatch)
		}
		e, err := updated(old, u)
		if err != nil {
			return err
		}
		if p.ExpiresAt != 0 {
			e.expires = p.ExpiresAt
		}
		if err := c.put(id, old, e); err != nil {
			return err
		}
		it = e.item()
		return nil
	})
	return it, err
}

// updated is old with u applied, as a new entry one version on.
func updated(old *entry, u backend.Update) (*entry, error) {
	doc, err := backend.ApplyUpdate(old.doc, u)
	if err != nil {
		return nil, err
	}
	rec, err := backend.Encode(doc)
	if err != nil {
		return nil, err
	}
	return &entry{doc: doc, rec: rec, version: old.version + 1, expires: old.expires}, nil
}

func (r *repository) Remove(ctx context.Context, id string, p backend.WriteParams) error {
	return r.write(ctx, func(c *collection) error {
		old := c.take(id)
		if p.IfMatch != 0 && (old == nil || old.version != p.IfMatch) {
			return backend.VersionConflict(r.name, id, p.IfMatch)
		}
		if old != nil {
			c.remove(id, old)
		}
		return nil
	})
}

// UpdateMany checks every change before making any, so that a failing
// operator or unique index leaves the collection as it was.
func (r *repository) UpdateMany(ctx context.Context, f backend.Filter, u backend.Update) (backend.UpdateManyResult, error) {
	var res backend.UpdateManyResult
	err := r.write(ctx, func(c *collection) error {
		matches := byID(c.matching(f, c.now))
		type change struct {
			id       string
			old, new *entry
		}
		var changes []change
		for _, old := range matches {
			e, err := updated(old, u)
			if err != nil {
				return err
			}
			if string(e.rec) == string(old.rec) {
				continue
			}
			changes = append(changes, change{old.doc["id"].(string), old, e})
		}
		// Unique indexes are checked against the collection as it will
		// be: on a scratch copy, which is cheap next to a wrong answer.
		scratch := c.clone()
		scratch.now = c.now
		for _, ch := range changes {
			if err := scratch.put(ch.id, ch.old, ch.new); err != nil {
				return err
			}
		}
		for _, ch := range changes {
			_ = c.put(ch.id, ch.old, ch.new)
		}
		res = backend.UpdateManyResult{Matched: int64(len(matches)), Modified: int64(len(changes))}
		return nil
	})
	return res, err
}

func (r *repository) DeleteMany(ctx context.Context, f backend.Filter) (int64, error) {
	var n int64
	err := r.write(ctx, func(c *collection) error {
		for _, e := range byID(c.matching(f, c.now)) {
			id := e.doc["id"].(string)
			c.remove(id, e)
			n++
		}
		return nil
	})
	return n, err
}

// PurgeExpired implements backend.Expirer.
func (b *RepositoryBackend) PurgeExpired(ctx context.Context) (int64, error) {
	if err := b.acquire(ctx); err != nil {
		return 0, err
	}
	defer b.release()
	now := b.nowMs()
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	for name, c := range b.colls {
		c.now = now
		for id, e := range c.docs {
			if !e.live(now) {
				c.take(id)
				n++
			}
		}
		b.logChanges(name, c)
	}
	return n, nil
}

// byID orders records as the SQL adapters write them (primary key
// order), so that the change log says the same on every backend.
func byID(es []*entry) []*entry {
	slices.SortFunc(es, func(a, b *entry) int { return strings.Compare(a.doc["id"].(string), b.doc["id"].(string)) })
	return es
}
