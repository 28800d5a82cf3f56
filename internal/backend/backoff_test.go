package backend_test

import (
	"strconv"
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

// TestBackoffJSON holds the hand-written backoff encoding to the
// library's, and the parse cache to the value of each text.
func TestBackoffJSON(t *testing.T) {
	cases := []backend.Backoff{
		backend.DefaultBackoff,
		{Type: backend.BackoffFixed, DelayMs: 250},
		{Type: backend.BackoffExponential, DelayMs: 0, MaxDelayMs: -1},
		{Type: `odd "type" \ with <html> & ` + "\u2028 é", DelayMs: 1 << 40, MaxDelayMs: 7},
	}
	for _, b := range cases {
		want, err := backend.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON = %s, backend.Marshal = %s", got, want)
		}
	}
	// Alternating texts: the cache must never answer for another text.
	for i := 0; i < 6; i++ {
		b := cases[i%len(cases)]
		text := string(b.AppendJSON(nil))
		if i%2 == 1 {
			text = `{"type": "` + string(backend.BackoffFixed) + `", "delayMs": ` + strconv.Itoa(i) + `, "maxDelayMs": 0}` // as jsonb prints it
			b = backend.Backoff{Type: backend.BackoffFixed, DelayMs: int64(i)}
		}
		got, err := backend.ParseBackoff(text)
		if err != nil || got != b {
			t.Errorf("backend.ParseBackoff(%s) = %+v, %v; want %+v", text, got, err, b)
		}
	}
	if _, err := backend.ParseBackoff(`{"type":`); err == nil {
		t.Error("backend.ParseBackoff accepted broken JSON")
	}
}
