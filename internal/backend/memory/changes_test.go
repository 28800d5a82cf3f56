package memory

import (
	"context"
	"strconv"
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

// Past maxLogged entries the log drops its oldest, one per new one, and
// still reads from any cursor it has not purged; a cursor it has is
// refused.
func TestChangeLogBound(t *testing.T) {
	b := NewRepositoryBackend()
	c := &collection{}
	other := &collection{}
	const total = maxLogged + maxLogged/2
	for i := 1; i <= total; i++ {
		id := strconv.Itoa(i)
		if i%10 == 0 {
			other.pending = append(other.pending, backend.Change{Op: "create", ID: id, Version: 1})
			b.logChanges("other", other)
			continue
		}
		c.pending = append(c.pending, backend.Change{Op: "create", ID: id, Version: 1})
		b.logChanges("plans", c)
	}
	if n := len(b.log.entries); n != maxLogged {
		t.Fatalf("log holds %d entries, want %d", n, maxLogged)
	}
	if want := int64(total - maxLogged); b.log.purged != want {
		t.Fatalf("purged up to %d, want %d", b.log.purged, want)
	}
	ctx := context.Background()
	if _, _, err := b.ReadChanges(ctx, "plans", b.log.purged-1, 10); !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Fatalf("a purged cursor: %v, want the expired cursor refused", err)
	}
	after := b.log.purged + 5 // seq purged+5 is the record of that number
	got, next, err := b.ReadChanges(ctx, "plans", after, 3)
	if err != nil {
		t.Fatal(err)
	}
	// The first three of plans after it: seqs after+1.., skipping other's.
	var want []string
	for i := after + 1; len(want) < 3; i++ {
		if i%10 != 0 {
			want = append(want, strconv.FormatInt(i, 10))
		}
	}
	if len(got) != 3 || got[0].ID != want[0] || got[1].ID != want[1] || got[2].ID != want[2] {
		t.Fatalf("read %+v, want ids %v", got, want)
	}
	if id, _ := strconv.ParseInt(got[2].ID, 10, 64); next != id {
		t.Fatalf("next %d, want %d", next, id)
	}
}
