package handlers_test

import (
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

// TestRepositoryBodiesAreStrict: a misspelt key in the body of a
// repository route is refused, never ignored (issue 13, item 8): count
// with {"filters": …} used to count every record.
func TestRepositoryBodiesAreStrict(t *testing.T) {
	d := start(t, 0)
	d.do(t, "POST", "/v1/repos/c", `{"id":"a","v":1}`).want(t, 201)
	d.do(t, "POST", "/v1/repos/c", `{"id":"b","v":2}`).want(t, 201)
	cases := []struct{ method, path, body string }{
		{"POST", "/v1/repos/c/count", `{"filters":{"v":1}}`},
		{"POST", "/v1/repos/c/count", `{"filter":{"v":1},"limit":1}`},
		{"POST", "/v1/repos/c/count", `{"filter":{"v":1}} {"x":1}`},
		{"POST", "/v1/repos/c/count", `{"filter":{"v":1}}]`},
		{"POST", "/v1/repos/c/find", `{"filters":{"v":1}}`},
		{"POST", "/v1/repos/c/find", `{"filter":{"v":1}} {"x":1}`},
		{"POST", "/v1/repos/c/find", `{"filter":{"v":1}}]`},
		{"PUT", "/v1/repos/c/indexes/ix", `{"fields":["v"],"uniq":true}`},
		{"PUT", "/v1/repos/c/indexes/ix", `{"fields":["v"]}]`},
		{"POST", "/v1/tx", `{"isolation":"serializable"}`},
		{"POST", "/v1/tx", `[]`},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path+" "+c.body, func(t *testing.T) {
			d.do(t, c.method, c.path, c.body).wantError(t, 400, backend.CodeInvalidArgument)
		})
	}
	// What stays accepted: no body, an empty object, and the real keys.
	for _, body := range []string{``, `{}`, `{"filter":null}`, `{"filter":{}}`} {
		if n := d.do(t, "POST", "/v1/repos/c/count", body).want(t, 200).json(t)["count"]; n != 2.0 {
			t.Fatalf("count %q = %v, want 2", body, n)
		}
	}
	if n := d.do(t, "POST", "/v1/repos/c/count", `{"filter":{"v":1}}`).want(t, 200).json(t)["count"]; n != 1.0 {
		t.Fatalf("count with a filter = %v, want 1", n)
	}
	for _, body := range []string{``, `{}`} {
		id := d.do(t, "POST", "/v1/tx", body).want(t, 201).json(t)["id"].(string)
		d.do(t, "POST", "/v1/tx/"+id+"/rollback", body).want(t, 204)
	}
	id := d.do(t, "POST", "/v1/tx", ``).want(t, 201).json(t)["id"].(string)
	d.do(t, "POST", "/v1/tx/"+id+"/commit", `{"force":true}`).wantError(t, 400, backend.CodeInvalidArgument)
	d.do(t, "POST", "/v1/tx/"+id+"/commit", ``).want(t, 204)
}
