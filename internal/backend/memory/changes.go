package memory

import (
	"context"
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
		l.purged = l.entries[drop-1].seq
		l.entries = append([]logEntry(nil), l.entries[drop:]...)
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
	for _, e := range l.entries {
		if e.seq <= after || e.collection != collection {
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
