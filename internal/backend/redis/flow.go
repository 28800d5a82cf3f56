package redis

import (
	"context"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.FlowStore = (*JobStore)(nil)

// Flow control (issue 16) lives in P:q:<queue>:settings, which the claim
// script reads and enforces in the same script that claims: paused,
// concurrency (claims whose lease has not run out), and the claims of the
// current rate window (rateWindow, rateCount).

// QueueSettings implements backend.FlowStore: one pipeline for every queue.
func (b *JobStore) QueueSettings(ctx context.Context, queues []string) ([]backend.QueueSettings, error) {
	out := make([]backend.QueueSettings, len(queues))
	if len(queues) == 0 {
		return out, nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.SliceCmd, len(queues))
	for i, q := range queues {
		cmds[i] = pipe.HMGet(ctx, b.prefix+":q:"+q+":settings", "paused", "concurrency", "rateMax", "rateMs")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, translate(err)
	}
	for i, c := range cmds {
		v := c.Val()
		out[i].Paused = str(v[0]) == "1"
		if n, err := strconv.Atoi(str(v[1])); err == nil {
			out[i].Concurrency = &n
		}
		rmax, err1 := strconv.Atoi(str(v[2]))
		rms, err2 := strconv.ParseInt(str(v[3]), 10, 64)
		if err1 == nil && err2 == nil {
			out[i].RateLimit = &backend.RateLimit{Max: rmax, DurationMs: rms}
		}
	}
	return out, nil
}

// SetQueueSettings implements backend.FlowStore.
func (b *JobStore) SetQueueSettings(ctx context.Context, queue string, s backend.QueueSettings) error {
	paused, conc, rmax, rms := "0", "", "", ""
	if s.Paused {
		paused = "1"
	}
	if s.Concurrency != nil {
		conc = strconv.Itoa(*s.Concurrency)
	}
	if r := s.RateLimit; r != nil {
		rmax, rms = strconv.Itoa(r.Max), strconv.FormatInt(r.DurationMs, 10)
	}
	return translate(flowScript.Run(ctx, b.rdb, nil, b.prefix, "", queue, "put", paused, conc, rmax, rms).Err())
}

// SetPaused implements backend.FlowStore.
func (b *JobStore) SetPaused(ctx context.Context, queue string, paused bool) error {
	what := "resume"
	if paused {
		what = "pause"
	}
	return translate(flowScript.Run(ctx, b.rdb, nil, b.prefix, "", queue, what).Err())
}
