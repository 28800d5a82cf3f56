package backendtest

import (
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// uniqueTests are the cases of uniqueness modes (issue 16): which
// statuses hold a key, a period, replace and debounce, enforced
// atomically by each store.
var uniqueTests = []struct {
	name string
	fn   func(t *testing.T, b *jq)
}{
	{"UniqueFinishedStatesHoldTheKey", testUniqueStates},
	{"UniquePeriod", testUniquePeriod},
	{"UniqueReplace", testUniqueReplace},
	{"UniqueDebounce", testUniqueDebounce},
	{"UniqueInBatch", testUniqueBatch},
	{"UniqueConcurrentEnqueuesAddOne", testUniqueConcurrent},
	{"UniqueInvalid", testUniqueInvalid},
}

func enqueueUnique(t *testing.T, b *jq, q string, p backend.EnqueueParams) backend.Inserted {
	t.Helper()
	if p.Data == nil {
		p.Data = json.RawMessage(`{"n":1}`)
	}
	res, err := b.svc.Enqueue(ctx(t), q, []backend.EnqueueParams{p})
	must(t, err)
	return res[0]
}

func runOne(t *testing.T, b *jq, q, id string) {
	t.Helper()
	j := dequeue(t, b, q, backend.DequeueParams{})
	if j == nil || j.ID != id {
		t.Fatalf("claimed %+v, want %s", j, id)
	}
	must(t, b.Acknowledge(ctx(t), j.ID, j.Lease))
}

func testUniqueStates(t *testing.T, b *jq) {
	q := qname(t)
	done := &backend.Unique{Key: "hook-1", States: []backend.JobStatus{backend.StatusCompleted}}
	a := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: done})
	if a.Deduplicated {
		t.Fatal("the first job was deduplicated")
	}
	if r := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: done}); !r.Deduplicated || r.ID != a.ID {
		t.Fatalf("a duplicate of a pending job: %+v", r)
	}
	runOne(t, b, q, a.ID)
	// Completed holds the key for whoever counts completed...
	if r := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: done}); !r.Deduplicated || r.ID != a.ID {
		t.Fatalf("a duplicate of a completed job with states [completed]: %+v", r)
	}
	// ...and not for whoever does not.
	failedOnly := &backend.Unique{Key: "hook-1", States: []backend.JobStatus{backend.StatusFailed}}
	c := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: failedOnly})
	if c.Deduplicated {
		t.Fatal("states [failed] was held by a completed job")
	}
	// The new job is active: it holds the key for everyone, the key
	// shorthand included.
	if r := enqueueUnique(t, b, q, backend.EnqueueParams{Key: "hook-1"}); !r.Deduplicated || r.ID != c.ID {
		t.Fatalf("key shorthand beside an active unique job: %+v", r)
	}
	// The last job with the key decides: c completes, which states [failed] does not count.
	runOne(t, b, q, c.ID)
	if r := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: failedOnly}); r.Deduplicated {
		t.Fatalf("states [failed] held by a completed job: %+v", r)
	}
	// Keys are per queue.
	if r := enqueueUnique(t, b, q+"-other", backend.EnqueueParams{Unique: done}); r.Deduplicated {
		t.Fatal("a key of another queue held")
	}
}

func testUniquePeriod(t *testing.T, b *jq) {
	q := qname(t)
	u := &backend.Unique{Key: "digest", Period: time.Hour}
	a := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u})
	runOne(t, b, q, a.ID)
	b.clock.Advance(30 * time.Minute)
	if r := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u}); !r.Deduplicated || r.ID != a.ID {
		t.Fatalf("within the period: %+v", r)
	}
	// Without a period the completed job holds nothing.
	if r := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: &backend.Unique{Key: "other"}}); r.Deduplicated {
		t.Fatal("a fresh key was held")
	}
	b.clock.Advance(31 * time.Minute)
	n := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u})
	if n.Deduplicated {
		t.Fatalf("after the period: %+v", n)
	}
	// A period holds with the job still active too.
	if r := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u}); !r.Deduplicated || r.ID != n.ID {
		t.Fatalf("active within the period: %+v", r)
	}
}

func testUniqueReplace(t *testing.T, b *jq) {
	q := qname(t)
	u := &backend.Unique{Key: "profile-7", Mode: backend.UniqueReplace}
	a := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u, Data: json.RawMessage(`{"v":1}`), Delay: time.Hour})
	r := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u, Data: json.RawMessage(`{"v":2}`)})
	if !r.Deduplicated || r.ID != a.ID {
		t.Fatalf("replace: %+v", r)
	}
	j := dequeue(t, b, q, backend.DequeueParams{})
	if j == nil || j.ID != a.ID || !sameJSON(t, j.Data, `{"v":2}`) {
		t.Fatalf("replaced job: %+v", j)
	}
	// A claimed holder is not replaced.
	enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u, Data: json.RawMessage(`{"v":3}`)})
	if got := getJob(t, b, a.ID); !sameJSON(t, got.Data, `{"v":2}`) {
		t.Fatalf("a claimed job was replaced: %s", got.Data)
	}
	must(t, b.Acknowledge(ctx(t), j.ID, j.Lease))
	// keep (the default) leaves the holder as it is.
	k := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: &backend.Unique{Key: "k"}, Data: json.RawMessage(`{"v":1}`), Delay: time.Hour})
	enqueueUnique(t, b, q, backend.EnqueueParams{Unique: &backend.Unique{Key: "k"}, Data: json.RawMessage(`{"v":2}`)})
	if got := getJob(t, b, k.ID); !sameJSON(t, got.Data, `{"v":1}`) || !got.RunAt.After(b.now().Add(59*time.Minute)) {
		t.Fatalf("keep changed the holder: %+v", got)
	}
}

func testUniqueDebounce(t *testing.T, b *jq) {
	q := qname(t)
	u := &backend.Unique{Key: "reindex", Mode: backend.UniqueDebounce}
	a := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u, Data: json.RawMessage(`{"v":1}`), Delay: 10 * time.Second})
	b.clock.Advance(5 * time.Second)
	before := b.now()
	if r := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u, Data: json.RawMessage(`{"v":2}`), Delay: 10 * time.Second}); !r.Deduplicated || r.ID != a.ID {
		t.Fatalf("debounce: %+v", r)
	}
	after := b.now()
	if got := getJob(t, b, a.ID); got.RunAt.Before(before.Add(10*time.Second)) || got.RunAt.After(after.Add(10*time.Second)) || !sameJSON(t, got.Data, `{"v":1}`) {
		t.Fatalf("debounced job: runAt %v (want now+10s, %v..%v), data %s", got.RunAt, before.Add(10*time.Second), after.Add(10*time.Second), got.Data)
	}
	b.clock.Advance(6 * time.Second) // past the first runAt
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatal("a debounced job ran at its first runAt")
	}
	b.clock.Advance(5 * time.Second)
	runOne(t, b, q, a.ID)
}

func testUniqueBatch(t *testing.T, b *jq) {
	q := qname(t)
	u := &backend.Unique{Key: "same", States: []backend.JobStatus{backend.StatusCompleted}}
	res, err := b.svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{Unique: u}, {}, {Unique: u}})
	must(t, err)
	if res[0].Deduplicated || res[1].Deduplicated || !res[2].Deduplicated || res[2].ID != res[0].ID {
		t.Fatalf("batch: %+v", res)
	}
}

func testUniqueConcurrent(t *testing.T, b *jq) {
	q := qname(t)
	u := &backend.Unique{Key: "once", States: []backend.JobStatus{backend.StatusCompleted, backend.StatusFailed}, Period: time.Hour}
	first := enqueueUnique(t, b, q, backend.EnqueueParams{Unique: u})
	runOne(t, b, q, first.ID)
	// The key is held by a completed job; none of the racers gets in.
	var wg sync.WaitGroup
	ids := make([]backend.Inserted, 16)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := b.svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{Unique: u}})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res[0]
		}()
	}
	wg.Wait()
	for _, r := range ids {
		if !r.Deduplicated || r.ID != first.ID {
			t.Fatalf("a racer got %+v, want the holder %s", r, first.ID)
		}
	}
	// Past the period, with the holder's status not counted, exactly one
	// of the racers adds a job and the others are told its id.
	u2 := &backend.Unique{Key: "once2", States: []backend.JobStatus{backend.StatusCompleted}}
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := b.svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{Unique: u2}})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res[0]
		}()
	}
	wg.Wait()
	added := map[string]bool{}
	for _, r := range ids {
		if !r.Deduplicated {
			added[r.ID] = true
		}
	}
	if len(added) != 1 {
		t.Fatalf("%d racers added a job: %+v", len(added), ids)
	}
	for _, r := range ids {
		if !added[r.ID] {
			t.Fatalf("a racer was told %s, not the one added", r.ID)
		}
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Pending != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func testUniqueInvalid(t *testing.T, b *jq) {
	q := qname(t)
	for _, p := range []backend.EnqueueParams{
		{Unique: &backend.Unique{}},
		{Unique: &backend.Unique{Key: strings.Repeat("k", backend.MaxKeyLength+1)}},
		{Unique: &backend.Unique{Key: "k", States: []backend.JobStatus{"done"}}},
		{Unique: &backend.Unique{Key: "k", Period: -time.Second}},
		{Unique: &backend.Unique{Key: "k", Mode: "merge"}},
		{Key: "k", Unique: &backend.Unique{Key: "k"}},
	} {
		_, err := b.svc.Enqueue(ctx(t), q, []backend.EnqueueParams{p})
		wantCode(t, err, backend.CodeInvalidArgument)
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Pending != 0 {
		t.Fatalf("refused enqueues added jobs: %+v", st)
	}
}
