package sqs_test

import (
	"context"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/backend/sqs"
	"github.com/storaged/storaged/internal/testutil"
)

// twoDaemons are two queue services on one SQS prefix, as two daemons
// would be; a's receives are counted. a looks for new messages only by
// SQS's long polling: its PollInterval (the old re-ask) is a minute, far
// beyond any wait of these tests.
func twoDaemons(t *testing.T) (a, b *queue.Service, counted *testutil.CountingSQS, q string) {
	t.Helper()
	prefix := testutil.SQSPrefix(t)
	counted = testutil.NewCountingSQS(t)
	a = queue.New(queue.Config{Store: sqs.New(counted, sqs.Config{Prefix: prefix, PollInterval: time.Minute})})
	b = queue.New(queue.Config{Store: sqs.New(testutil.SQSClient(t), sqs.Config{Prefix: prefix, PollInterval: time.Minute})})
	q = testutil.Name(t, "lp")
	// The queue's first job creates it; a drains it.
	if _, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{{}}); err != nil {
		t.Fatal(err)
	}
	jobs, err := a.Dequeue(ctx(t), q, backend.DequeueParams{})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("first job: %v %v", jobs, err)
	}
	if out, err := a.Ack(ctx(t), []backend.LeaseRef{{ID: jobs[0].ID, Lease: jobs[0].Lease}}); err != nil || out[0] != nil {
		t.Fatalf("ack: %v %v", out, err)
	}
	counted.Receives()
	return a, b, counted, q
}

type dequeued struct {
	jobs []*backend.Job
	err  error
}

// waitingDequeue starts a long poll on svc and returns once its receive
// has begun.
func waitingDequeue(c context.Context, t *testing.T, svc *queue.Service, counted *testutil.CountingSQS, q string, wait time.Duration) <-chan dequeued {
	t.Helper()
	got := make(chan dequeued, 1)
	go func() {
		jobs, err := svc.Dequeue(c, q, backend.DequeueParams{Wait: wait})
		got <- dequeued{jobs, err}
	}()
	for counted.Seen() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	return got
}

// TestLongPollAcrossDaemons: a job enqueued through daemon b reaches a
// worker long-polling on daemon a through the one waiting receive a made:
// a asks SQS once, and SQS answers it with b's job. Before long polling,
// a looked again only every PollInterval (here a minute).
func TestLongPollAcrossDaemons(t *testing.T) {
	a, b, counted, q := twoDaemons(t)
	got := waitingDequeue(ctx(t), t, a, counted, q, 15*time.Second)
	res, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`"from b"`)}})
	if err != nil {
		t.Fatal(err)
	}
	d := <-got
	if d.err != nil || len(d.jobs) != 1 || d.jobs[0].ID != res[0].ID || string(d.jobs[0].Data) != `"from b"` {
		t.Fatalf("the waiting worker got %+v %v, want b's job %s", d.jobs, d.err, res[0].ID)
	}
	// 15 s, or 14 when a busy machine started the receive more than the
	// rounding's slack late; never a short poll.
	if r := counted.Receives(); len(r) != 1 || r[0] < 14 {
		t.Fatalf("receives of the long poll (their WaitTimeSeconds): %v, want the one waiting receive [15]", r)
	}
}

// checkIdleReceives holds an idle long poll of wait to one waiting
// receive of its whole seconds (one less when a busy machine started it
// late) and at most two immediate ones for the rest below a second (a
// claim, a sleep, a last claim): never one receive per PollInterval.
func checkIdleReceives(t *testing.T, wait time.Duration, r []int32) {
	t.Helper()
	waiting, immediate := 0, 0
	for _, w := range r {
		if w > 0 {
			waiting++
			if time.Duration(w)*time.Second < wait-1500*time.Millisecond {
				t.Fatalf("receives of an idle %v long poll (their WaitTimeSeconds): %v: one waited only %d s", wait, r, w)
			}
		} else {
			immediate++
		}
	}
	if waiting != 1 || immediate > 2 {
		t.Fatalf("receives of an idle %v long poll (their WaitTimeSeconds): %v, want one waiting receive and at most two immediate ones", wait, r)
	}
}

// TestIdleLongPollCostsOneReceive: a long poll that gets nothing makes one
// receive that waits its whole time, not one receive per PollInterval,
// and answers empty. SQS counts whole seconds: the part of a poll's time
// below a second is spent as on other stores, claiming and sleeping.
func TestIdleLongPollCostsOneReceive(t *testing.T) {
	a, _, counted, q := twoDaemons(t)
	for _, wait := range []time.Duration{3 * time.Second, 1500 * time.Millisecond} {
		jobs, err := a.Dequeue(ctx(t), q, backend.DequeueParams{Wait: wait})
		if err != nil || len(jobs) != 0 {
			t.Fatalf("idle long poll: %v %v", jobs, err)
		}
		checkIdleReceives(t, wait, counted.Receives())
	}
}

// TestAbandonedLongPollReleases: a worker whose long poll is cut (its
// client left) gets an empty answer at once; the receive it began goes on,
// and the job it gets for no one is released (issue 14): the next worker
// gets it with the attempt not counted.
func TestAbandonedLongPollReleases(t *testing.T) {
	a, b, counted, q := twoDaemons(t)
	c, cancel := context.WithCancel(ctx(t))
	got := waitingDequeue(c, t, a, counted, q, 10*time.Second)
	cancel()
	if d := <-got; d.err != nil || len(d.jobs) != 0 {
		t.Fatalf("a cut long poll answered %v %v, want nothing", d.jobs, d.err)
	}
	res, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{{}})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := a.Dequeue(ctx(t), q, backend.DequeueParams{Wait: 15 * time.Second})
	if err != nil || len(jobs) != 1 || jobs[0].ID != res[0].ID || jobs[0].Attempts != 1 {
		t.Fatalf("after the cut poll: %+v %v, want job %s at attempt 1", jobs, err, res[0].ID)
	}
	r := counted.Receives()
	if len(r) < 2 || r[0] == 0 {
		t.Fatalf("receives %v: the cut poll's waiting receive should have claimed (and released) the job first", r)
	}
}
