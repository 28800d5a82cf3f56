package redis

import (
	"context"
	"errors"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
	goredis "github.com/redis/go-redis/v9"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.EventStore = (*JobStore)(nil)

// timeoutArg is a job's timeout as a script argument (” for none).
func timeoutArg(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// Events implements backend.EventStore (lua/events.lua). Each stamp has a
// number of its own, so the position's id only matters for a position
// that no stamp has (the head).
func (b *JobStore) Events(ctx context.Context, p backend.EventsParams) (backend.EventPage, error) {
	var out backend.EventPage
	res, err := eventsScript.Run(ctx, b.rdb, nil, b.prefix, "", p.Queue, strconv.FormatUint(p.After.Seq, 10), p.After.ID, p.Limit).StringSlice()
	if err != nil {
		return out, translate(err)
	}
	for i := 0; i+5 < len(res); i += 6 {
		seq, err1 := strconv.ParseUint(res[i], 10, 64)
		at, err2 := strconv.ParseInt(res[i+3], 10, 64)
		attempts, err3 := strconv.Atoi(res[i+4])
		if err1 != nil || err2 != nil || err3 != nil {
			return out, backend.Errorf(backend.CodeInternal, "redis: job %s has corrupt event fields", res[i+1])
		}
		e := backend.Event{Type: backend.EventType(res[i+2]), JobID: res[i+1], At: time.UnixMilli(at).UTC(), Attempt: attempts,
			Pos: backend.EventPos{Seq: seq, ID: res[i+1]}}
		if extra := res[i+5]; extra != "" {
			switch e.Type {
			case backend.EventCompleted:
				e.Result = json.RawMessage(extra)
			case backend.EventProgress:
				e.Progress = json.RawMessage(extra)
			default:
				e.Error = &backend.JobError{}
				if err := json.Unmarshal([]byte(extra), e.Error); err != nil {
					return out, backend.Errorf(backend.CodeInternal, "redis: job %s has a corrupt lastError", e.JobID)
				}
			}
		}
		out.Events = append(out.Events, e)
	}
	return out, nil
}

// EventHead implements backend.EventStore.
func (b *JobStore) EventHead(ctx context.Context, _ string) (backend.EventPos, error) {
	n, err := b.rdb.Get(ctx, b.prefix+":evseq").Uint64()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return backend.EventPos{}, translate(err)
	}
	return backend.EventPos{Seq: n + 1}, nil
}
