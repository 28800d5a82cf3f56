package handlers_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// etagOf sends a request and returns the status, the ETag and the body.
func (d *daemon) etagOf(t *testing.T, method, path, body string, hdr ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://storaged"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("ETag"), string(b)
}

// TestVersionsOverHTTP: ETags on every single-record answer, If-Match on
// PATCH, PUT and DELETE, If-None-Match: * on PUT.
func TestVersionsOverHTTP(t *testing.T) {
	d := start(t, 0)
	steps := []struct {
		method, path, body string
		hdr                []string
		status             int
		etag               string
	}{
		{"POST", "/v1/repos/c", `{"id":"a","n":1}`, nil, 201, `"1"`},
		{"GET", "/v1/repos/c/a", ``, nil, 200, `"1"`},
		{"PATCH", "/v1/repos/c/a", `{"$inc":{"n":1}}`, []string{"If-Match", `"1"`}, 200, `"2"`},
		{"PATCH", "/v1/repos/c/a", `{"$inc":{"n":1}}`, []string{"If-Match", `"1"`}, 409, ``},
		{"PATCH", "/v1/repos/c/a", `{"m":true}`, []string{"If-Match", `2`}, 200, `"3"`},
		{"PATCH", "/v1/repos/c/a", `{"$inc":{"m":1}}`, nil, 400, ``},
		{"PATCH", "/v1/repos/c/a", `{"n":1}`, []string{"If-Match", `abc`}, 400, ``},
		{"PUT", "/v1/repos/c/a", `{"x":1}`, nil, 200, `"4"`},
		{"PUT", "/v1/repos/c/b", `{"x":1}`, nil, 201, `"1"`},
		{"PUT", "/v1/repos/c/b", `{"x":2}`, []string{"If-None-Match", `*`}, 409, ``},
		{"PUT", "/v1/repos/c/n", `{"x":2}`, []string{"If-None-Match", `*`}, 201, `"1"`},
		{"PUT", "/v1/repos/c/b", `{"x":2}`, []string{"If-None-Match", `"1"`}, 400, ``},
		{"PUT", "/v1/repos/c/b", `{"x":3}`, []string{"If-Match", `"2"`}, 409, ``},
		{"PUT", "/v1/repos/c/b", `{"x":3}`, []string{"If-Match", `W/"1"`}, 200, `"2"`},
		{"PUT", "/v1/repos/c/b", `{"id":"z"}`, nil, 400, ``},
		{"PUT", "/v1/repos/c/b", `[1]`, nil, 400, ``},
		{"DELETE", "/v1/repos/c/a", ``, []string{"If-Match", `"3"`}, 409, ``},
		{"GET", "/v1/repos/c/a", ``, nil, 200, `"4"`},
		{"DELETE", "/v1/repos/c/a", ``, []string{"If-Match", `"4"`}, 204, ``},
		{"DELETE", "/v1/repos/c/a", ``, []string{"If-Match", `"4"`}, 409, ``},
		{"DELETE", "/v1/repos/c/a", ``, nil, 204, ``},
		{"PUT", "/v1/repos/c/indexes/ix", `{"fields":["x"]}`, nil, 204, ``},
	}
	for i, s := range steps {
		status, etag, body := d.etagOf(t, s.method, s.path, s.body, s.hdr...)
		if status != s.status || etag != s.etag {
			t.Fatalf("step %d %s %s %s %v: %d ETag %q, want %d %q: %s", i, s.method, s.path, s.body, s.hdr, status, etag, s.status, s.etag, body)
		}
	}
	if _, _, body := d.etagOf(t, "GET", "/v1/repos/c/b", ``); body != `{"id":"b","x":3}` {
		t.Fatalf("b = %s", body)
	}
}

func TestBulkCallsOverHTTP(t *testing.T) {
	d := start(t, 0)
	for _, id := range []string{"a", "b", "c"} {
		d.do(t, "POST", "/v1/repos/c", `{"id":"`+id+`","n":1,"k":"`+id+`"}`).want(t, 201)
	}
	if got := string(d.do(t, "POST", "/v1/repos/c/get", `{"ids":["c","zz","a"]}`).want(t, 200).body); got !=
		`{"items":[{"id":"c","k":"c","n":1},null,{"id":"a","k":"a","n":1}],"versions":[1,null,1]}` {
		t.Fatalf("getMany: %s", got)
	}
	if got := string(d.do(t, "POST", "/v1/repos/c/updateMany", `{"filter":{"k":{"$in":["a","b"]}},"update":{"$inc":{"n":2}}}`).want(t, 200).body); got != `{"matched":2,"modified":2}` {
		t.Fatalf("updateMany: %s", got)
	}
	if got := string(d.do(t, "POST", "/v1/repos/c/deleteMany", `{"filter":{"n":3}}`).want(t, 200).body); got != `{"deleted":2}` {
		t.Fatalf("deleteMany: %s", got)
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/repos/c/updateMany", `{"update":{"x":1}}`},
		{"/v1/repos/c/updateMany", `{"filter":{},"update":{"$inc":{"k":1}}}`},
		{"/v1/repos/c/updateMany", `{"filter":{},"update":{"$nope":{"k":1}}}`},
		{"/v1/repos/c/updateMany", `{"filter":{},"update":{"x":1},"upsert":true}`},
		{"/v1/repos/c/deleteMany", `{}`},
		{"/v1/repos/c/deleteMany", `{"filter":{"$bad":1}}`},
		{"/v1/repos/c/get", `{}`},
		{"/v1/repos/c/get", `{"ids":[""]}`},
		{"/v1/repos/c/get", `{"ids":"a"}`},
		{"/v1/repos/c/batch", `[]`},
		{"/v1/repos/c/batch", `{"ops":[]}`},
		{"/v1/repos/c/batch", `[{"op":"upsert","id":"x","data":{}}]`},
		{"/v1/repos/c/batch", `[{"op":"update","data":{"x":1}}]`},
		{"/v1/repos/c/batch", `[{"op":"delete","id":"x","data":{}}]`},
		{"/v1/repos/c/batch", `[{"op":"put","id":"x","data":{},"ifMatch":"v"}]`},
	} {
		d.do(t, "POST", c.path, c.body).wantError(t, 400, backend.CodeInvalidArgument)
	}
	if n := d.do(t, "POST", "/v1/repos/c/count", `{}`).want(t, 200).json(t)["count"]; n != 1.0 {
		t.Fatalf("refused bulk calls changed the collection: %v records", n)
	}
}

// TestBatchOverHTTP: a batch applies whole, or not at all, and says which
// operation failed.
func TestBatchOverHTTP(t *testing.T) {
	d := start(t, 0)
	d.do(t, "POST", "/v1/repos/c", `{"id":"a","n":1}`).want(t, 201)
	got := string(d.do(t, "POST", "/v1/repos/c/batch", `[
		{"op":"create","id":"b","data":{"v":1}},
		{"op":"put","id":"c","data":{"v":2}},
		{"op":"update","id":"a","data":{"$inc":{"n":1}},"ifMatch":1},
		{"op":"put","id":"c","data":{"v":3},"ifMatch":"\"1\""},
		{"op":"delete","id":"b"}
	]`).want(t, 200).body)
	want := `{"results":[{"id":"b","version":1,"created":true,"record":{"id":"b","v":1}},` +
		`{"id":"c","version":1,"created":true,"record":{"id":"c","v":2}},` +
		`{"id":"a","version":2,"record":{"id":"a","n":2}},` +
		`{"id":"c","version":2,"created":false,"record":{"id":"c","v":3}},{"id":"b"}]}`
	if got != want {
		t.Fatalf("batch:\n%s\nwant\n%s", got, want)
	}
	r := d.do(t, "POST", "/v1/repos/c/batch", `[
		{"op":"put","id":"d","data":{}},
		{"op":"update","id":"a","data":{"n":9},"ifMatch":1}
	]`)
	r.wantError(t, 409, backend.CodeConflict)
	if !strings.Contains(string(r.body), "batch operation 1") {
		t.Fatalf("the error does not name the operation: %s", r.body)
	}
	d.do(t, "GET", "/v1/repos/c/d", ``).wantError(t, 404, backend.CodeNotFound)
	if n := d.do(t, "GET", "/v1/repos/c/a", ``).want(t, 200).json(t)["n"]; n != 2.0 {
		t.Fatalf("a failed batch changed a: n=%v", n)
	}
	// Inside a transaction the batch is part of it.
	tx := d.do(t, "POST", "/v1/tx", ``).want(t, 201).json(t)["id"].(string)
	d.do(t, "POST", "/v1/repos/c/batch", `[{"op":"put","id":"e","data":{}}]`, "Storaged-Tx", tx).want(t, 200)
	d.do(t, "POST", "/v1/tx/"+tx+"/rollback", ``).want(t, 204)
	d.do(t, "GET", "/v1/repos/c/e", ``).wantError(t, 404, backend.CodeNotFound)
	big := "[" + strings.Repeat(`{"op":"delete","id":"x"},`, 1000) + `{"op":"delete","id":"x"}]`
	d.do(t, "POST", "/v1/repos/c/batch", big).wantError(t, 400, backend.CodeInvalidArgument)
}

// TestPagesAndFieldsOverHTTP: find with page/after answers items,
// versions and next; fields cut records on find, get and findById.
func TestPagesAndFieldsOverHTTP(t *testing.T) {
	d := start(t, 0)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		d.do(t, "POST", "/v1/repos/c", `{"id":"`+id+`","n":1,"o":{"x":1,"y":2}}`).want(t, 201)
	}
	var got []string
	body := `{"sort":{"n":"desc"},"limit":2,"page":true,"fields":["o.x"]}`
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		page := d.do(t, "POST", "/v1/repos/c/find", body).want(t, 200).json(t)
		for i, it := range page["items"].([]any) {
			rec := it.(map[string]any)
			if len(rec) != 2 || rec["o"].(map[string]any)["y"] != nil {
				t.Fatalf("fields not applied: %v", rec)
			}
			if page["versions"].([]any)[i] != 1.0 {
				t.Fatalf("versions: %v", page["versions"])
			}
			got = append(got, rec["id"].(string))
		}
		next, _ := page["next"].(string)
		if next == "" {
			if page["next"] != nil {
				t.Fatalf("next: %v", page["next"])
			}
			break
		}
		body = `{"sort":{"n":"desc"},"limit":2,"after":"` + next + `","fields":["o.x"]}`
	}
	if strings.Join(got, "") != "abcde" {
		t.Fatalf("pages gave %v", got)
	}
	if r := string(d.do(t, "POST", "/v1/repos/c/find", `{"filter":{"id":"b"},"fields":["n"]}`).want(t, 200).body); r != `[{"id":"b","n":1}]` {
		t.Fatalf("find with fields: %s", r)
	}
	if r := string(d.do(t, "GET", "/v1/repos/c/b?fields=o.y,n", ``).want(t, 200).body); r != `{"id":"b","n":1,"o":{"y":2}}` {
		t.Fatalf("findById with fields: %s", r)
	}
	if r := string(d.do(t, "POST", "/v1/repos/c/get", `{"ids":["b","z"],"fields":["o"]}`).want(t, 200).body); r != `{"items":[{"id":"b","o":{"x":1,"y":2}},null],"versions":[1,null]}` {
		t.Fatalf("get with fields: %s", r)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/repos/c/find", `{"after":"nope"}`},
		{"POST", "/v1/repos/c/find", `{"after":""}`},
		{"POST", "/v1/repos/c/find", `{"after":"x","offset":1}`},
		{"POST", "/v1/repos/c/find", `{"fields":[]}`},
		{"POST", "/v1/repos/c/find", `{"fields":"a"}`},
		{"GET", "/v1/repos/c/b?fields=a..b", ``},
	} {
		d.do(t, c.method, c.path, c.body).wantError(t, 400, backend.CodeInvalidArgument)
	}
}

// TestTTLOverHTTP: ttlMs and expiresAt on create, PATCH, PUT and batch;
// an expired record is not found.
func TestTTLOverHTTP(t *testing.T) {
	d := start(t, 0)
	d.do(t, "POST", "/v1/repos/c?ttlMs=60000", `{"id":"live"}`).want(t, 201)
	d.do(t, "POST", "/v1/repos/c?expiresAt=2001-01-01T00:00:00Z", `{"id":"gone"}`).want(t, 201)
	d.do(t, "PUT", "/v1/repos/c/put-gone?expiresAt=2001-01-01T00:00:00Z", `{}`).want(t, 201)
	d.do(t, "POST", "/v1/repos/c", `{"id":"patched"}`).want(t, 201)
	d.do(t, "PATCH", "/v1/repos/c/patched?expiresAt=2001-01-01T00:00:00Z", `{"x":1}`).want(t, 200)
	d.do(t, "POST", "/v1/repos/c/batch", `[{"op":"create","id":"b-gone","data":{},"expiresAt":"2001-01-01T00:00:00Z"},{"op":"put","id":"b-live","data":{},"ttlMs":60000}]`).want(t, 200)
	for _, id := range []string{"gone", "put-gone", "patched", "b-gone"} {
		d.do(t, "GET", "/v1/repos/c/"+id, ``).wantError(t, 404, backend.CodeNotFound)
	}
	for _, id := range []string{"live", "b-live"} {
		d.do(t, "GET", "/v1/repos/c/"+id, ``).want(t, 200)
	}
	if n := d.do(t, "POST", "/v1/repos/c/count", `{}`).want(t, 200).json(t)["count"]; n != 2.0 {
		t.Fatalf("count %v, want 2", n)
	}
	for _, q := range []string{"?ttlMs=0", "?ttlMs=x", "?ttlMs=1&expiresAt=2030-01-01T00:00:00Z", "?expiresAt=tomorrow"} {
		d.do(t, "POST", "/v1/repos/c"+q, `{}`).wantError(t, 400, backend.CodeInvalidArgument)
	}
}

// TestChangesOverHTTP: from now, then after a cursor; a long poll answers
// with a change made while it waits.
func TestChangesOverHTTP(t *testing.T) {
	d := start(t, 0)
	first := d.do(t, "GET", "/v1/repos/c/changes", ``).want(t, 200).json(t)
	if cs := first["changes"].([]any); len(cs) != 0 {
		t.Fatalf("changes from now: %v", cs)
	}
	cur := first["next"].(string)
	d.do(t, "POST", "/v1/repos/c", `{"id":"a"}`).want(t, 201)
	d.do(t, "PATCH", "/v1/repos/c/a", `{"x":1}`).want(t, 200)
	d.do(t, "DELETE", "/v1/repos/c/a", ``).want(t, 204)
	page := d.do(t, "GET", "/v1/repos/c/changes?after="+cur, ``).want(t, 200).json(t)
	var got []string
	for _, c := range page["changes"].([]any) {
		m := c.(map[string]any)
		got = append(got, fmt.Sprint(m["op"], " ", m["id"], " ", m["version"]))
		if _, ok := m["at"].(string); !ok {
			t.Fatalf("change without at: %v", m)
		}
	}
	if strings.Join(got, ", ") != "create a 1, update a 2, delete a 2" {
		t.Fatalf("changes: %v", got)
	}
	cur = page["next"].(string)
	done := make(chan map[string]any, 1)
	go func() { done <- d.do(t, "GET", "/v1/repos/c/changes?waitMs=20000&after="+cur, ``).want(t, 200).json(t) }()
	time.Sleep(20 * time.Millisecond)
	d.do(t, "POST", "/v1/repos/c", `{"id":"b"}`).want(t, 201)
	if cs := (<-done)["changes"].([]any); len(cs) != 1 || cs[0].(map[string]any)["id"] != "b" {
		t.Fatalf("long poll: %v", cs)
	}
	for _, q := range []string{"?after=x", "?after=-1", "?waitMs=600000", "?limit=0", "?limit=1001"} {
		d.do(t, "GET", "/v1/repos/c/changes"+q, ``).wantError(t, 400, backend.CodeInvalidArgument)
	}
}
