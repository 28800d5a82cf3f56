package memory

import (
	"context"
	"sort"
	"sync"

	"github.com/storaged/storaged/internal/backend"
)

var (
	_ backend.ChangeLog   = (*RepositoryBackend)(nil)
	_ backend.ChangeWaker = (*RepositoryBackend)(nil)
)

// maxLogged bounds the memory change log besides its retention.
const maxLogged = 100_000

type logEntry struct {
	seq        int64
	collection string
	at         int64
	c          backend.Change
}

// changeLog is the memory change log: every committed write, in commit
// order (the writer slot orders them).
type changeLog struct {
	mu      sync.Mutex
	entries []logEntry
	seq     int64
	purged  int64
	wake    map[string]chan struct{}
}

// logChanges moves c's pending changes to the log; called once they are
// committed.
func (b *RepositoryBackend) logChanges(collection string, c *collection) {
	if len(c.pending) == 0 {
		return
	}
	now := b.nowMs()
	l := &b.log
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range c.pending {
		l.seq++
		ch.At = backend.FormatChangeTime(now)
		l.entries = append(l.entries, logEntry{seq: l.seq, collection: collection, at: now, c: ch})
	}
	c.pending = nil
	cut := now - backend.ChangeRetention.Milliseconds()
	drop := 0
	for drop < len(l.entries) && (len(l.entries)-drop > maxLogged || l.entries[drop].at < cut) {
		drop++
	}
	if drop > 0 {
		// Dropped from the front in place: copying what stays on every
		// write cost a write the whole log once it was full. append
		// moves the live entries to a new array when the old one fills,
		// so the dead front is reclaimed then; cleared now, it holds
		// nothing meanwhile.
		l.purged = l.entries[drop-1].seq
		clear(l.entries[:drop])
		l.entries = l.entries[drop:]
	}
	if ch, ok := l.wake[collection]; ok {
		close(ch)
		delete(l.wake, collection)
	}
}

// ReadChanges implements backend.ChangeLog.
func (b *RepositoryBackend) ReadChanges(_ context.Context, collection string, after int64, limit int) ([]backend.Change, int64, error) {
	l := &b.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if after < 0 {
		return nil, l.seq, nil
	}
	if after < l.purged {
		return nil, 0, backend.CursorExpired()
	}
	out := []backend.Change{}
	next := l.seq
	// Entries are in seq order: start past after.
	first := sort.Search(len(l.entries), func(i int) bool { return l.entries[i].seq > after })
	for _, e := range l.entries[first:] {
		if e.collection != collection {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, e.c)
		next = e.seq
	}
	if len(out) < limit {
		next = l.seq
	}
	return out, next, nil
}

// ChangesChan implements backend.ChangeWaker.
func (b *RepositoryBackend) ChangesChan(collection string) <-chan struct{} {
	l := &b.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wake == nil {
		l.wake = map[string]chan struct{}{}
	}
	ch, ok := l.wake[collection]
	if !ok {
		ch = make(chan struct{})
		l.wake[collection] = ch
	}
	return ch
}
