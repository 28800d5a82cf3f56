package backend_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// libraryEncoding is the oracle: what goccy/go-json writes with HTML
// escaping off.
func libraryEncoding(t *testing.T, doc map[string]any) []byte {
	t.Helper()
	b, err := json.MarshalWithOption(doc, json.DisableHTMLEscape())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncodeMatchesLibrary holds the exact-size encoder of records to
// the library's output, byte for byte, on hand-picked and random
// documents.
func TestEncodeMatchesLibrary(t *testing.T) {
	cases := []map[string]any{
		{},
		{"s": "\x00\x01\b\f\n\r\t\x1f\x7f\"\\/<>&\u2028\u2029\xff\xfe é \U0001F600 \ufffd"},
		{"html": strings.Repeat("<a href='x'>&amp;</a>", 100)},
		{"n": []any{math.Copysign(0, -1), 0.0, 1e21, 1e20, 1e-6, 1e-7, 123456789.125, 1.5e300, -2.5e-10, 0.1, 100.0, -1e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 9007199254740993.0}},
		{"b": 1.0, "a": []any{nil, true, false, "x"}, "\u00e9": map[string]any{}, "A": []any{}, "": "e", "k\n\"": map[string]any{"z": nil, "y": []any{[]any{}}}},
	}
	rng := rand.New(rand.NewPCG(13, 9))
	for range 2000 {
		cases = append(cases, randomDoc(rng, 0).(map[string]any))
	}
	for _, doc := range cases {
		got, err := backend.Encode(doc)
		if err != nil {
			t.Fatalf("Encode(%v): %v", doc, err)
		}
		want := libraryEncoding(t, doc)
		if !bytes.Equal(got, want) {
			t.Fatalf("Encode differs from the library\ndoc  %#v\ngot  %q\nwant %q", doc, got, want)
		}
		if cap(got) != len(got) {
			t.Fatalf("Encode left %d spare bytes for %q", cap(got)-len(got), got)
		}
	}
}

// TestEncodeOtherTypes: values JSON decoding never produces still encode
// (through the library), and values JSON cannot hold are refused.
func TestEncodeOtherTypes(t *testing.T) {
	doc := map[string]any{"i": 3, "ss": []string{"a<b"}, "m": map[string]int{"x": 1}}
	got, err := backend.Encode(doc)
	if err != nil || string(got) != `{"i":3,"m":{"x":1},"ss":["a<b"]}` {
		t.Fatalf("Encode of Go types: %s %v", got, err)
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), make(chan int)} {
		if _, err := backend.Encode(map[string]any{"x": bad}); !backend.IsCode(err, backend.CodeInvalidArgument) {
			t.Fatalf("Encode of %v: %v", bad, err)
		}
	}
}

var alphabet = []string{"a", "Z", "0", " ", "<", ">", "&", "\"", "\\", "/", "\x00", "\x1f", "\n", "\t", "\x7f", "é", "€", "\U0001F600", "\u2028", "\u2029", "\ufffd", "\xff", "\xc3", "\xe2\x80"}

// randomString mixes plain runs long enough for the eight-byte scan with
// every kind of byte that needs a look.
func randomString(rng *rand.Rand) string {
	var sb strings.Builder
	for range rng.IntN(12) {
		if rng.IntN(3) == 0 {
			sb.WriteString(strings.Repeat("plain text, ", 3)[:rng.IntN(36)])
		}
		sb.WriteString(alphabet[rng.IntN(len(alphabet))])
	}
	return sb.String()
}

func randomDoc(rng *rand.Rand, depth int) any {
	kind := rng.IntN(8)
	if depth == 0 {
		kind = 7
	} else if depth > 4 {
		kind = rng.IntN(5)
	}
	switch kind {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		// Any float but NaN and the infinities, which JSON cannot hold
		// (see TestEncodeOtherTypes).
		if f := math.Float64frombits(rng.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
		return 0.5
	case 3:
		return float64(rng.IntN(2000) - 1000)
	case 4:
		return randomString(rng)
	case 5, 6:
		a := make([]any, rng.IntN(5))
		for i := range a {
			a[i] = randomDoc(rng, depth+1)
		}
		return a
	}
	m := map[string]any{}
	for range rng.IntN(6) {
		m[randomString(rng)] = randomDoc(rng, depth+1)
	}
	return m
}
