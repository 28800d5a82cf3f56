package sqs

import (
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

// FuzzQueueNames: the storaged → SQS queue name mapping is one to one, its
// names are what SQS allows, a queue's name never ends like a dead letter
// queue's, and a lease token gives back the queue it was made for.
func FuzzQueueNames(f *testing.F) {
	for _, seed := range [][2]string{{"a.b", "a-pb"}, {"a:b", "a-cb"}, {"a-b", "a-hb"}, {"x.dlq", "x"}, {"q_1", "q__1"}, {"emails", "emails"}} {
		f.Add(seed[0], seed[1], "receipt+handle/==")
	}
	s := New(nil, Config{Prefix: "p-"})
	f.Fuzz(func(t *testing.T, a, b, receipt string) {
		if backend.ValidateName("queue", a) != nil || backend.ValidateName("queue", b) != nil {
			return
		}
		na, errA := s.sqsName(a, false)
		nb, errB := s.sqsName(b, false)
		if errA != nil || errB != nil {
			if !backend.IsCode(errA, backend.CodeInvalidArgument) && errA != nil || !backend.IsCode(errB, backend.CodeInvalidArgument) && errB != nil {
				t.Fatalf("refusals must be invalid_argument: %v %v", errA, errB)
			}
			return
		}
		if (na == nb) != (a == b) {
			t.Fatalf("%q and %q map to %q and %q", a, b, na, nb)
		}
		da, _ := s.sqsName(a, true)
		if da == nb || strings.HasSuffix(na, dlqSuffix) || len(da) > maxNameLength {
			t.Fatalf("%q: queue %q, dead letters %q; %q: queue %q", a, na, da, b, nb)
		}
		for _, c := range da {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("%q is not an SQS queue name", da)
			}
		}
		if receipt == "" {
			return
		}
		for _, snap := range []snapshot{{}, {Msg: message{ID: "j1", Queue: a}, Attempts: 2, LeaseMs: 3000}} {
			lease := makeLease(a, receipt, snap)
			q, sn, r, ok := parseLease(lease)
			if !ok || q != a || r != receipt || (snap.Msg.ID != "") != (sn != nil) || sn != nil && (sn.Msg.ID != "j1" || sn.Attempts != 2 || sn.LeaseMs != 3000) {
				t.Fatalf("lease of %q, %q, %+v parsed as %q, %+v, %q, %v", a, receipt, snap, q, sn, r, ok)
			}
		}
	})
}

// TestParseLeaseRefusesForgedClaims: a lease token is the client's to
// send, so the claim it carries is checked before any daemon takes it in.
func TestParseLeaseRefusesForgedClaims(t *testing.T) {
	ok := snapshot{Msg: message{ID: "j1", Queue: "q"}, Attempts: 1, LeaseMs: 30_000}
	cases := []struct {
		name string
		edit func(*snapshot)
	}{
		{"no attempts", func(s *snapshot) { s.Attempts = 0 }},
		{"negative attempts", func(s *snapshot) { s.Attempts = -5 }},
		{"no lease", func(s *snapshot) { s.LeaseMs = 0 }},
		{"lease past the longest", func(s *snapshot) { s.LeaseMs = backend.MaxLease.Milliseconds() + 1 }},
		{"another queue", func(s *snapshot) { s.Msg.Queue = "other" }},
		{"control character in the id", func(s *snapshot) { s.Msg.ID = "a\x01b" }},
	}
	if _, sn, _, good := parseLease(makeLease("q", "rh", ok)); !good || sn == nil {
		t.Fatal("a valid token was refused")
	}
	for _, c := range cases {
		sn := ok
		c.edit(&sn)
		if _, _, _, good := parseLease(makeLease("q", "rh", sn)); good {
			t.Errorf("%s: a forged claim was taken", c.name)
		}
	}
}
