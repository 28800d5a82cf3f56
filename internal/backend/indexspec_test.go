package backend_test

import (
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

func TestIndexSpecRoundTrip(t *testing.T) {
	for _, spec := range []backend.IndexSpec{
		{Name: "a", Fields: []backend.Path{{"x"}}},
		{Name: "b", Fields: []backend.Path{{"x", "y"}, {"z"}}, Unique: true},
	} {
		got, err := backend.ParseIndexSpec(spec.Name, spec.Canonical())
		if err != nil || got.Canonical() != spec.Canonical() || got.Name != spec.Name {
			t.Fatalf("%+v read back as %+v (%v)", spec, got, err)
		}
	}
	for _, bad := range []string{``, `{}`, `{"fields":[]}`, `{"fields":["a b"]}`} {
		if _, err := backend.ParseIndexSpec("x", bad); err == nil {
			t.Errorf("%q was read as a spec", bad)
		}
	}
}
