package backend_test

import (
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

func TestProject(t *testing.T) {
	rec := backend.Record(`{"id":"x","a":1,"b":{"c":2,"d":[3]},"e":"s"}`)
	cases := []struct {
		fields []string
		want   string
	}{
		{nil, string(rec)},
		{[]string{"a"}, `{"a":1,"id":"x"}`},
		{[]string{"b.c", "e"}, `{"b":{"c":2},"e":"s","id":"x"}`},
		{[]string{"b", "b.c"}, `{"b":{"c":2,"d":[3]},"id":"x"}`},
		{[]string{"b.c", "b"}, `{"b":{"c":2,"d":[3]},"id":"x"}`},
		{[]string{"missing", "a.deeper", "b.d.0"}, `{"id":"x"}`},
		{[]string{"id"}, `{"id":"x"}`},
	}
	for _, c := range cases {
		var fields []backend.Path
		if c.fields != nil {
			var err error
			if fields, err = backend.ParseFields(c.fields); err != nil {
				t.Fatal(err)
			}
		}
		got, err := backend.Project(rec, fields)
		if err != nil || string(got) != c.want {
			t.Errorf("fields %v: %s %v, want %s", c.fields, got, err, c.want)
		}
	}
	for _, raw := range []string{`[]`, `"a"`, `[1]`, `["a..b"]`, `["$x y"]`} {
		if _, err := backend.ParseFieldsJSON([]byte(raw)); backend.ErrorCode(err) != backend.CodeInvalidArgument {
			t.Errorf("fields %s: %v, want invalid_argument", raw, err)
		}
	}
}

// FuzzParseCursor: whatever comes as after is a filter or a refusal with
// invalid_argument, never a panic. Seeds in testdata/fuzz/FuzzParseCursor.
func FuzzParseCursor(f *testing.F) {
	sort := []backend.SortKey{{Path: backend.Path{"a"}}, {Path: backend.Path{"b", "c"}, Desc: true}}
	good, _ := backend.CursorAfter(sort, backend.Record(`{"id":"x","a":1,"b":{"c":"s"}}`))
	f.Add(good)
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := backend.ParseCursor(sort, s)
		if err != nil {
			if backend.ErrorCode(err) != backend.CodeInvalidArgument {
				t.Fatalf("code %s: %v", backend.ErrorCode(err), err)
			}
			return
		}
		if flt == nil {
			t.Fatal("no error and no filter")
		}
	})
}
