package memory

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReadyHeapClaimOrder pops jobs in claim order (priority descending,
// then runAt, then id) whatever order they were filed in, including ids
// that share their first 24 bytes and runAts a nanosecond apart.
func TestReadyHeapClaimOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)
	long := strings.Repeat("p", 24) // ids equal in their first 24 bytes
	var jobs []*mjob
	for i := 0; i < 5000; i++ {
		j := &mjob{}
		j.ID = fmt.Sprintf("%08x", r.Uint32())
		switch r.IntN(3) {
		case 0:
			j.ID = long + j.ID
		case 1:
			j.ID = j.ID[:r.IntN(8)+1] // short ids sort before their extensions
		}
		j.Priority = r.IntN(3) - 1
		j.RunAt = base.Add(time.Duration(r.IntN(4)) * time.Nanosecond)
		if r.IntN(4) == 0 {
			j.RunAt = time.Time{} // year 1
		}
		jobs = append(jobs, j)
	}
	var h readyHeap
	for _, j := range jobs {
		h.push(newReadyItem(j))
	}
	var got []*mjob
	for h.Len() > 0 {
		got = append(got, h.pop().j)
	}
	want := slices.Clone(jobs)
	slices.SortStableFunc(want, func(a, b *mjob) int {
		switch {
		case a.Priority != b.Priority:
			return b.Priority - a.Priority
		case !a.RunAt.Equal(b.RunAt):
			return a.RunAt.Compare(b.RunAt)
		}
		return strings.Compare(a.ID, b.ID)
	})
	for i := range want {
		a, b := got[i], want[i]
		if a.Priority != b.Priority || !a.RunAt.Equal(b.RunAt) || a.ID != b.ID {
			t.Fatalf("pop %d: got (%d, %v, %q), want (%d, %v, %q)", i, a.Priority, a.RunAt, a.ID, b.Priority, b.RunAt, b.ID)
		}
	}
}
