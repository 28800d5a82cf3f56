package backend

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// Queue events (issue 17). The feed is derived from the jobs themselves:
// every transition stamps the job's row with what happened (Event), when,
// and an order key, and the feed of a queue is its jobs in the order of
// their stamps. It is therefore compacted per job: a reader that falls
// behind sees each job's latest transition, not every one it went
// through, and events live exactly as long as their jobs. Heartbeats and
// a duplicate's replace or debounce stamp nothing.

// EventType names a transition of a job.
type EventType string

// The transitions of a job, as the event feed names them.
const (
	EventEnqueued  EventType = "enqueued"
	EventStarted   EventType = "started"
	EventProgress  EventType = "progress"
	EventCompleted EventType = "completed"
	EventFailed    EventType = "failed"
	// EventRetried is pending again after a failed attempt, or brought back
	// by retryFailed.
	EventRetried   EventType = "retried"
	EventCancelled EventType = "cancelled"
	// EventReleased is handed back unstarted (release), pending again with
	// the attempt not counted.
	EventReleased EventType = "released"
)

// EventOf is the event a settle of kind k stamps when it applies ("" for
// none: heartbeats).
func EventOf(k SettleKind) EventType {
	switch k {
	case Complete:
		return EventCompleted
	case Retry, Revive:
		return EventRetried
	case Fail:
		return EventFailed
	case Progress:
		return EventProgress
	case Release:
		return EventReleased
	case Cancel:
		return EventCancelled
	}
	return ""
}

// Event is one entry of a queue's feed: a job's latest transition.
type Event struct {
	Type  EventType `json:"type"`
	JobID string    `json:"jobId"`
	At    time.Time `json:"at"`
	// Attempt is the job's attempt count when it happened.
	Attempt int `json:"attempt"`
	// Result (completed), Progress (progress) and Error (failed,
	// retried) are the job's values as they are now, which are those of
	// this transition since it is the job's latest.
	Result   json.RawMessage `json:"result,omitempty"`
	Progress json.RawMessage `json:"progress,omitempty"`
	Error    *JobError       `json:"error,omitempty"`
	// Cursor names this event: reading after it goes on with the next.
	Cursor string `json:"cursor"`
	// Pos is the event's place in the feed (stores fill it, the service
	// encodes it into Cursor).
	Pos EventPos `json:"-"`
}

// EventPos is a place in a queue's feed: an order key (the store's
// sequence, or on PostgreSQL the stamping transaction's id) and the job's
// id, which orders the jobs one stamp covers. A feed yields the events
// strictly after a position.
type EventPos struct {
	Seq uint64
	ID  string
}

// EncodeCursor makes a position an opaque cursor.
func EncodeCursor(p EventPos) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(p.Seq, 10) + "." + p.ID))
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(s string) (EventPos, error) {
	bad := Errorf(CodeInvalidArgument, "after is not a cursor this daemon made (use the next or cursor of an events answer)")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 512 {
		return EventPos{}, bad
	}
	seq, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return EventPos{}, bad
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || (id != "" && ValidateID(id) != nil) {
		return EventPos{}, bad
	}
	return EventPos{Seq: n, ID: id}, nil
}

// Limits of an events read.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
)

// EventsParams read a queue's feed after a position.
type EventsParams struct {
	Queue string
	After EventPos
	Limit int
}

// EventPage is what a read found: events in order, and Pending when the
// store holds later stamps it cannot hand out yet (on PostgreSQL,
// transactions older than one of them are still open), so the reader
// should look again soon rather than wait for a wake-up.
type EventPage struct {
	Events  []Event
	Pending bool
}

// EventStore is a JobStore that keeps the feed. Every store but SQS is.
type EventStore interface {
	// Events returns up to p.Limit events of p.Queue after p.After, in
	// feed order. An event is handed out only once no event can come
	// before it any more, so that a reader on any process never skips
	// one.
	Events(ctx context.Context, p EventsParams) (EventPage, error)
	// EventHead is the position of "now" in queue's feed: what is read
	// after it is what happens from now on.
	EventHead(ctx context.Context, queue string) (EventPos, error)
}

// ValidTraceparent checks a W3C trace context header value (version 00 as
// written by OpenTelemetry; later versions are read by their first four
// fields, as the spec asks).
func ValidTraceparent(s string) bool {
	if len(s) < 55 || (len(s) > 55 && s[55] != '-') {
		return false
	}
	for i := 0; i < 55; i++ {
		c := s[i]
		if i == 2 || i == 35 || i == 52 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	if s[:2] == "ff" || (s[:2] == "00" && len(s) != 55) {
		return false
	}
	return strings.Trim(s[3:35], "0") != "" && strings.Trim(s[36:52], "0") != ""
}
