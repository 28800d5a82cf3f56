package handlers_test

import (
	"fmt"
	"strings"
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

// TestFilterLimitsOverHTTP (issue 13, item 18): an $or of 500 equalities
// is 500 conditions, answered; past 1000 the refusal names the limit.
func TestFilterLimitsOverHTTP(t *testing.T) {
	d := start(t, 0)
	d.do(t, "POST", "/v1/repos/c", `{"id":"a","v":7}`).want(t, 201)
	or := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"v":%d}`, i)
		}
		return `{"filter":{"$or":[` + strings.Join(parts, ",") + `]}}`
	}
	for _, path := range []string{"/v1/repos/c/find", "/v1/repos/c/count"} {
		r := d.do(t, "POST", path, or(500)).want(t, 200)
		if !strings.Contains(string(r.body), `"a"`) && !strings.Contains(string(r.body), `"count":1`) {
			t.Fatalf("%s with an $or of 500 equalities: %s", path, r.body)
		}
		d.do(t, "POST", path, or(1000)).want(t, 200)
		r = d.do(t, "POST", path, or(1001))
		r.wantError(t, 400, backend.CodeInvalidArgument)
		if !strings.Contains(string(r.body), "1000 conditions") {
			t.Fatalf("the refusal does not name the limit: %s", r.body)
		}
	}
}
