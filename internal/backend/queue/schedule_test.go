package queue

import (
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// TestCronDST pins what a cron schedule does across daylight saving time
// changes in Europe/Paris: a wall time the spring change skips fires once,
// right after the gap; a wall time the autumn change repeats fires once;
// sub-hourly schedules keep firing on real instants through both.
func TestCronDST(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		name, cron string
		from       time.Time
		want       []time.Time
	}{
		{"spring forward: the skipped 02:30 runs after the gap, once", "30 2 * * *", time.Date(2026, 3, 28, 12, 0, 0, 0, paris),
			[]time.Time{utc("2026-03-29T01:30:00Z"), utc("2026-03-30T00:30:00Z")}},
		{"fall back: the repeated 02:30 runs once", "30 2 * * *", time.Date(2026, 10, 24, 12, 0, 0, 0, paris),
			[]time.Time{utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")}},
		{"fall back: every 30 minutes goes on through the repeated hour", "*/30 * * * *", time.Date(2026, 10, 25, 1, 50, 0, 0, paris),
			[]time.Time{utc("2026-10-25T00:00:00Z"), utc("2026-10-25T00:30:00Z"), utc("2026-10-25T01:00:00Z"), utc("2026-10-25T01:30:00Z")}},
		{"seconds field", "*/20 * * * * *", time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC),
			[]time.Time{utc("2026-01-01T00:00:20Z"), utc("2026-01-01T00:00:40Z"), utc("2026-01-01T00:01:00Z")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := backend.ScheduleSpec{Cron: tc.cron, TZ: "Europe/Paris"}
			w, err := parseWhen(&sp)
			if err != nil {
				t.Fatal(err)
			}
			at := tc.from
			for i, want := range tc.want {
				at = w.next(at)
				if !at.Equal(want) {
					t.Fatalf("slot %d: %v (%v in Paris), want %v", i, at, at.In(paris), want)
				}
			}
		})
	}
}

// TestEveryIsAligned: everyMs slots are multiples of the interval from
// the Unix epoch, so that every daemon and every PUT agree on them.
func TestEveryIsAligned(t *testing.T) {
	w := when{every: 90 * time.Second}
	at := time.UnixMilli(1_000_000_123).UTC()
	for range 5 {
		n := w.next(at)
		if !n.After(at) || n.UnixMilli()%90_000 != 0 || n.Sub(at) > 90*time.Second {
			t.Fatalf("next of %v: %v", at, n)
		}
		at = n
	}
}
