package backendtest

import (
	"slices"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// VectorFile is the shape of testdata/filter-vectors.json, shared with the
// Node client's tests.
type VectorFile struct {
	Datasets map[string][]map[string]any `json:"datasets"`
	Vectors  []Vector                    `json:"vectors"`
}

// Vector is one query and the ids it must return, in order, or the error
// code it must be refused with.
type Vector struct {
	Name    string          `json:"name"`
	Dataset string          `json:"dataset"`
	Query   json.RawMessage `json:"query"`
	Expect  []string        `json:"expect"`
	Error   backend.Code    `json:"error"`
}

// LoadVectors reads the shared vector file.
func LoadVectors(t testing.TB) VectorFile {
	var vf VectorFile
	if err := json.Unmarshal(testutil.ReadFile(t, "testdata/filter-vectors.json"), &vf); err != nil {
		t.Fatalf("filter-vectors.json: %v", err)
	}
	if len(vf.Vectors) < 100 {
		t.Fatalf("filter-vectors.json holds only %d vectors", len(vf.Vectors))
	}
	return vf
}

func runVectors(t *testing.T, b backend.RepositoryBackend) {
	vf := LoadVectors(t)
	repos := map[string]backend.Repository{}
	for name, docs := range vf.Datasets {
		r := b.Repository(testutil.Name(t, name))
		for _, d := range docs {
			// The file's documents are shared; give the backend a copy.
			cp := map[string]any{}
			for k, v := range d {
				cp[k] = v
			}
			if _, err := r.Create(ctx(t), cp); err != nil {
				t.Fatalf("dataset %s: %v", name, err)
			}
		}
		repos[name] = r
	}
	for _, v := range vf.Vectors {
		q, err := backend.ParseQuery(v.Query)
		if v.Error != "" {
			if err == nil {
				t.Errorf("%s: query %s was accepted, want %s", v.Name, v.Query, v.Error)
			} else if backend.ErrorCode(err) != v.Error {
				t.Errorf("%s: got %v, want %s", v.Name, err, v.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", v.Name, err)
			continue
		}
		r := repos[v.Dataset]
		recs, err := r.FindMany(ctx(t), q)
		if err != nil {
			t.Errorf("%s: findMany: %v", v.Name, err)
			continue
		}
		got := ids(t, recs)
		want := v.Expect
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: query %s\nwant %v\ngot  %v", v.Name, v.Query, want, got)
		}
		if q.Limit == 0 && q.Offset == 0 {
			n, err := r.Count(ctx(t), q.Filter)
			if err != nil {
				t.Errorf("%s: count: %v", v.Name, err)
			} else if int(n) != len(want) {
				t.Errorf("%s: count %d, want %d", v.Name, n, len(want))
			}
		}
	}
}
