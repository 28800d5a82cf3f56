package backend

import (
	"context"
	"strconv"
	"time"
)

// The change stream (issue 18): GET /v1/repos/{c}/changes. Each backend
// keeps a log of the writes to the collections someone reads changes of,
// in commit order, numbered by seq; a cursor is a seq. A collection's
// writes are logged from the first read of its changes on, so collections
// nobody watches pay nothing. Entries older than ChangeRetention are
// deleted (with expired records, by the purge).

// Change is one logged write.
type Change struct {
	Op      string `json:"op"` // create, update or delete
	ID      string `json:"id"`
	Version int64  `json:"version"`
	At      string `json:"at"` // RFC 3339, UTC, milliseconds
}

// ChangeRetention is how long the change log keeps an entry.
const ChangeRetention = 24 * time.Hour

// MaxChanges bounds the changes of one answer.
const MaxChanges = 1000

// ChangeLog is implemented by every repository backend.
type ChangeLog interface {
	// ReadChanges starts logging collection's writes if nobody did, and
	// returns up to limit of them after seq after, with the cursor to read
	// from next. after < 0 means from now: no changes, and the cursor of
	// the log's end. Errors: invalid_argument for a cursor the retention
	// has passed.
	ReadChanges(ctx context.Context, collection string, after int64, limit int) ([]Change, int64, error)
}

// ChangeWaker is implemented by logs that can tell a waiter that changes
// may have come (memory); the others are polled.
type ChangeWaker interface {
	ChangesChan(collection string) <-chan struct{}
}

// ChangePoll is how often a long poll of the changes of a log without a
// ChangeWaker looks again: the bound on the latency of a change written
// by another daemon.
const ChangePoll = 100 * time.Millisecond

// WaitChanges reads changes after after, waiting up to wait for the first.
func WaitChanges(ctx context.Context, log ChangeLog, collection string, after int64, limit int, wait time.Duration) ([]Change, int64, error) {
	deadline := time.Now().Add(wait)
	waker, _ := log.(ChangeWaker)
	for {
		var ch <-chan struct{}
		if waker != nil {
			ch = waker.ChangesChan(collection)
		}
		changes, next, err := log.ReadChanges(ctx, collection, after, limit)
		if err != nil || len(changes) > 0 {
			return changes, next, err
		}
		after = next
		left := time.Until(deadline)
		if left <= 0 {
			return changes, next, nil
		}
		if ch == nil {
			left = min(left, ChangePoll)
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, next, nil
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// FormatChangeTime renders a log time (Unix ms).
func FormatChangeTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// ParseChangeCursor reads ?after=; "" means from now (-1).
func ParseChangeCursor(s string) (int64, error) {
	if s == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, Errorf(CodeInvalidArgument, "after must be the next of a previous answer of changes")
	}
	return n, nil
}

// CursorExpired is the error of a cursor older than the log.
func CursorExpired() error {
	return Errorf(CodeInvalidArgument, "after is older than the change log keeps (%v); changes were lost to retention, read the collection again and follow changes from now", ChangeRetention)
}
