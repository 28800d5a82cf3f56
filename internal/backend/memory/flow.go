package memory

import (
	"context"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.FlowStore = (*JobStore)(nil)

// flowState is a configured queue's settings and its current rate window.
type flowState struct {
	s           backend.QueueSettings
	window      int64
	windowCount int
}

// allowance is how many of want a claim may take now (the store's lock
// held, expired claims already promoted).
func (f *flowState) allowance(q *mqueue, want int, now time.Time) (int, time.Duration) {
	inFlight := 0
	if f.s.Concurrency != nil {
		for _, it := range q.leases.items {
			if it.gen == it.j.gen && it.j.Status == backend.StatusProcessing && it.at.After(now) {
				inFlight++
			}
		}
	}
	return f.s.Allowance(want, inFlight, f.count(now), now.UnixMilli())
}

// count is the claims of the current rate window.
func (f *flowState) count(now time.Time) int {
	if f.s.RateLimit == nil || f.window != f.s.RateLimit.Window(now.UnixMilli()) {
		return 0
	}
	return f.windowCount
}

func (f *flowState) claimed(n int, now time.Time) {
	if f.s.RateLimit == nil || n == 0 {
		return
	}
	f.windowCount = f.count(now) + n
	f.window = f.s.RateLimit.Window(now.UnixMilli())
}

// QueueSettings implements backend.FlowStore.
func (b *JobStore) QueueSettings(_ context.Context, queues []string) ([]backend.QueueSettings, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return nil, err
	}
	out := make([]backend.QueueSettings, len(queues))
	for i, q := range queues {
		if f := b.flow[q]; f != nil {
			out[i] = f.s
		}
	}
	return out, nil
}

// SetQueueSettings implements backend.FlowStore. The rate window's count
// survives a change of the other settings.
func (b *JobStore) SetQueueSettings(_ context.Context, queue string, s backend.QueueSettings) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return err
	}
	b.setFlow(queue, func(cur *backend.QueueSettings) { *cur = s })
	return nil
}

// SetPaused implements backend.FlowStore.
func (b *JobStore) SetPaused(_ context.Context, queue string, paused bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return err
	}
	b.setFlow(queue, func(cur *backend.QueueSettings) { cur.Paused = paused })
	return nil
}

func (b *JobStore) setFlow(queue string, change func(*backend.QueueSettings)) {
	f := b.flow[queue]
	if f == nil {
		f = &flowState{}
	}
	change(&f.s)
	f.s = f.s.Clone()
	if f.s.IsZero() {
		delete(b.flow, queue)
		return
	}
	b.flow[queue] = f
}
