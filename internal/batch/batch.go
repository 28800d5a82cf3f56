// Package batch coalesces concurrent calls into one run: while a run is in
// flight, new calls queue up and go together in the next one. A lone call
// runs at once, so batching costs no latency when there is no load, and
// under load N acknowledgements become one statement and one commit.
package batch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Batcher runs fn on batches of at most Max requests.
type Batcher[Req, Res any] struct {
	// Max bounds a batch; 0 means 100.
	Max int
	// Run handles a batch and returns one result per request, in order.
	// An error fails every request of the batch. Its context is not any
	// caller's: a run serves many callers, and a caller that leaves must
	// not cut a statement that others wait for (see Abandoned).
	Run func(ctx context.Context, reqs []Req) ([]Res, error)
	// Abandoned, if set, receives the result of every request whose
	// caller stopped waiting (its context ended) before the result came:
	// what was done for it cannot be handed over, so it must be undone
	// (a claim nobody will work is released). Called from the run's
	// goroutine, never for a request whose caller got its result.
	Abandoned func(req Req, res Res)

	mu      sync.Mutex
	pending []*call[Req, Res]
	running bool
}

// States of a call: whoever moves it out of waiting owns the result.
const (
	waiting int32 = iota
	delivered
	abandoned
)

type call[Req, Res any] struct {
	req   Req
	res   Res
	err   error
	state atomic.Int32
	done  chan struct{}
}

// runTimeout bounds one run, since no caller's deadline does.
const runTimeout = 30 * time.Second

// Do submits req and waits for its result. If ctx ends first, Do returns
// ctx's error; the request may still run, and then its result goes to
// Abandoned.
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
		if c.state.CompareAndSwap(waiting, abandoned) {
			var zero Res
			return zero, ctx.Err()
		}
		// The result won the race: it is ours to return, not to drop.
		<-c.done
		return c.res, c.err
	}
}

func (b *Batcher[Req, Res]) loop() {
	most := b.Max
	if most <= 0 {
		most = 100
	}
	for {
		b.mu.Lock()
		n := min(len(b.pending), most)
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
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		res, err := b.Run(ctx, reqs)
		cancel()
		for i, c := range batch {
			if err != nil {
				c.err = err
			} else {
				c.res = res[i]
			}
			if !c.state.CompareAndSwap(waiting, delivered) {
				if err == nil && b.Abandoned != nil {
					b.Abandoned(c.req, c.res)
				}
				continue
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
	// Abandoned is Batcher.Abandoned with the key.
	Abandoned func(key K, req Req, res Res)
	m         sync.Map // K → *Batcher[Req, Res]
}

// Do submits req under key; see Batcher.Do.
func (g *Group[K, Req, Res]) Do(ctx context.Context, key K, req Req) (Res, error) {
	b, ok := g.m.Load(key)
	if !ok {
		nb := &Batcher[Req, Res]{Run: func(ctx context.Context, reqs []Req) ([]Res, error) {
			return g.Run(ctx, key, reqs)
		}}
		if g.Abandoned != nil {
			nb.Abandoned = func(req Req, res Res) { g.Abandoned(key, req, res) }
		}
		b, _ = g.m.LoadOrStore(key, nb)
	}
	return b.(*Batcher[Req, Res]).Do(ctx, req)
}
