package backend_test

import (
	"slices"
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

// FuzzParseUpdate: any bytes either parse into an update whose paths are
// valid, never name the id and never overlap, and which the reference
// applies without panicking; or are refused with invalid_argument. The
// seed corpus is in testdata/fuzz/FuzzParseUpdate.
func FuzzParseUpdate(f *testing.F) {
	f.Add([]byte(`{"$inc":{"a.b":1},"$push":{"t":{"$each":[1,"x"]}},"$unset":{"z":""}}`))
	doc := map[string]any{"id": "x", "a": map[string]any{"b": 2.0}, "t": []any{"t", 1.0}, "s": "str", "n": nil}
	f.Fuzz(func(t *testing.T, raw []byte) {
		u, err := backend.ParseUpdateJSON(raw)
		if err != nil {
			if backend.ErrorCode(err) != backend.CodeInvalidArgument {
				t.Fatalf("parse error with code %s: %v", backend.ErrorCode(err), err)
			}
			return
		}
		if u.Ops == nil {
			if _, ok := u.Merge["id"]; ok {
				t.Fatal("accepted a merge of the id")
			}
		}
		for i, op := range u.Ops {
			if _, err := backend.ParsePath(op.Path.String()); err != nil {
				t.Fatalf("accepted an invalid path %q", op.Path)
			}
			if op.Path[0] == "id" {
				t.Fatalf("accepted an update of the id: %q", op.Path)
			}
			for _, other := range u.Ops[i+1:] {
				n := min(len(op.Path), len(other.Path))
				if slices.Equal(op.Path[:n], other.Path[:n]) {
					t.Fatalf("accepted overlapping paths %q and %q", op.Path, other.Path)
				}
			}
		}
		out, err := backend.ApplyUpdate(doc, u)
		if err != nil && backend.ErrorCode(err) != backend.CodeInvalidArgument {
			t.Fatalf("apply error with code %s: %v", backend.ErrorCode(err), err)
		}
		if err == nil && out["id"] != "x" {
			t.Fatalf("the update changed the id: %v", out)
		}
		if doc["a"].(map[string]any)["b"] != 2.0 || len(doc["t"].([]any)) != 2 {
			t.Fatal("ApplyUpdate changed its input")
		}
	})
}
