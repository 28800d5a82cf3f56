package wakeup

import "testing"

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWakeIsPerQueueAndNotLost(t *testing.T) {
	var s Set
	a, b := s.Chan("a"), s.Chan("b")
	if a != s.Chan("a") {
		t.Fatal("two waiters of one queue got different channels")
	}
	s.Wake("a")
	if !closed(a) || closed(b) {
		t.Fatal("Wake(a) must close a's channel only")
	}
	if closed(s.Chan("a")) {
		t.Fatal("a new waiter got an already closed channel")
	}
	s.WakeAll()
	if !closed(b) {
		t.Fatal("WakeAll left a waiter asleep")
	}
	s.Wake("nobody-waits") // no waiter: nothing to do, no panic
}

// TestPoll: what ends a long poll, and what makes it try again.
