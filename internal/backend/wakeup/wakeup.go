// Package wakeup lets long polls sleep until something may be ready for
// their queue: a waiter takes the queue's channel before it looks for a
// job, and whoever enqueues (or hears a NOTIFY) closes it. Taking the
// channel before looking means a wake-up between the look and the sleep is
// never lost. The queue service keeps one Set for every store.
package wakeup

import "sync"

// Set holds one channel per queue that someone is waiting on.
type Set struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// Chan returns the channel that the next Wake(queue) closes.
func (s *Set) Chan(queue string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]chan struct{}{}
	}
	ch, ok := s.m[queue]
	if !ok {
		ch = make(chan struct{})
		s.m[queue] = ch
	}
	return ch
}

// Wake wakes every waiter of queue.
func (s *Set) Wake(queue string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.m[queue]; ok {
		close(ch)
		delete(s.m, queue)
	}
}

// WakeAll wakes every waiter of every queue.
func (s *Set) WakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q, ch := range s.m {
		close(ch)
		delete(s.m, q)
	}
}
