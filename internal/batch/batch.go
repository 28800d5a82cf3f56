// Package batch coalesces concurrent calls into one run: while a run is in
// flight, new calls queue up and go together in the next one. A lone call
// runs at once, so batching costs no latency when there is no load, and
// under load N acknowledgements become one statement and one commit.
package batch

import (
	"context"
	"sync"
)

// Batcher runs fn on batches of at most Max requests.
type Batcher[Req, Res any] struct {
	// Max bounds a batch; 0 means 100.
	Max int
	// Run handles a batch and returns one result per request, in order.
	// An error fails every request of the batch.
	Run func(ctx context.Context, reqs []Req) ([]Res, error)

	mu      sync.Mutex
	pending []*call[Req, Res]
	running bool
}

type call[Req, Res any] struct {
	req  Req
	res  Res
	err  error
	done chan struct{}
}

// Do submits req and waits for its result. If ctx ends first, Do returns
// ctx's error, but the request may still run: callers must be safe with
// that (a claim then simply expires; an acknowledgement still lands).
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	c := &call[Req, Res]{req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
}

func (b *Batcher[Req, Res]) loop() {
	max := b.Max
	if max <= 0 {
		max = 100
	}
	for {
		b.mu.Lock()
		n := min(len(b.pending), max)
		if n == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()

		reqs := make([]Req, n)
		for i, c := range batch {
			reqs[i] = c.req
		}
		res, err := b.Run(context.Background(), reqs)
		for i, c := range batch {
			if err != nil {
				c.err = err
			} else {
				c.res = res[i]
			}
			close(c.done)
		}
	}
}

// Group keeps one Batcher per key (say, per queue and lease length), made
// on first use, so that only requests with the same key share a run.
type Group[K comparable, Req, Res any] struct {
	// Run handles a batch of one key.
	Run func(ctx context.Context, key K, reqs []Req) ([]Res, error)
	m   sync.Map // K → *Batcher[Req, Res]
}

// Do submits req under key; see Batcher.Do.
func (g *Group[K, Req, Res]) Do(ctx context.Context, key K, req Req) (Res, error) {
	b, ok := g.m.Load(key)
	if !ok {
		b, _ = g.m.LoadOrStore(key, &Batcher[Req, Res]{Run: func(ctx context.Context, reqs []Req) ([]Res, error) {
			return g.Run(ctx, key, reqs)
		}})
	}
	return b.(*Batcher[Req, Res]).Do(ctx, req)
}
