package handlers_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
)

// TestAnswersAreNotHTMLEscaped: records, job data, job errors and error
// messages keep '<', '>' and '&' as they are; an HTML-escaping encoder
// wrote six bytes for each.
func TestAnswersAreNotHTMLEscaped(t *testing.T) {
	d := start(t, 0)
	escaped := func(what string, r resp) {
		t.Helper()
		for _, e := range []string{`\u003c`, `\u003e`, `\u0026`} {
			if bytes.Contains(r.body, []byte(e)) {
				t.Fatalf("%s answered %s: %s", what, e, r.body)
			}
		}
		if !bytes.Contains(r.body, []byte("<b>&")) {
			t.Fatalf("%s lost the markup: %s", what, r.body)
		}
	}
	rec := d.do(t, "POST", "/v1/repos/html", `{"h":"<b>&amp;</b>"}`).want(t, 201)
	escaped("create", rec)
	id := rec.json(t)["id"].(string)
	escaped("findById", d.do(t, "GET", "/v1/repos/html/"+id, "").want(t, 200))
	escaped("update", d.do(t, "PATCH", "/v1/repos/html/"+id, `{"more":"<b>&"}`).want(t, 200))
	escaped("findMany", d.do(t, "POST", "/v1/repos/html/find", `{}`).want(t, 200))
	escaped("create with its own id", d.do(t, "POST", "/v1/repos/html", `{"id":"<b>&"}`).want(t, 201))
	escaped("a conflict's message", d.do(t, "POST", "/v1/repos/html", `{"id":"<b>&"}`).want(t, 409))

	jid := d.do(t, "POST", "/v1/queues/html/jobs", `{"data":{"h":"<b>&amp;</b>"}}`).want(t, 201).json(t)["id"].(string)
	job := d.do(t, "POST", "/v1/queues/html/dequeue", `{}`).want(t, 200)
	escaped("dequeue", job)
	lease := job.json(t)["lease"].(string)
	d.do(t, "POST", "/v1/jobs/"+jid+"/fail", `{"lease":"`+lease+`","retry":false,"error":{"name":"Error","message":"<b>&","stack":"at <anonymous>"}}`).want(t, 204)
	escaped("getJob", d.do(t, "GET", "/v1/jobs/"+jid, "").want(t, 200))
	escaped("listFailed", d.do(t, "GET", "/v1/queues/html/failed", "").want(t, 200))
}

// TestFindAnswers: the streamed answer of findMany is a JSON array for no,
// one and several records, with a Content-Length.
func TestFindAnswers(t *testing.T) {
	d := start(t, 0)
	for n := range 4 {
		r := d.do(t, "POST", "/v1/repos/few/find", `{"sort":{"i":"asc"}}`).want(t, 200)
		var got []map[string]any
		if err := json.Unmarshal(r.body, &got); err != nil || len(got) != n {
			t.Fatalf("%d records: %q %v", n, r.body, err)
		}
		for i, rec := range got {
			if rec["i"] != float64(i) {
				t.Fatalf("%d records: record %d is %v", n, i, rec)
			}
		}
		d.do(t, "POST", "/v1/repos/few", fmt.Sprintf(`{"i":%d}`, n)).want(t, 201)
	}
	res, err := d.client.Post("http://storaged/v1/repos/few/find", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.ContentLength <= 0 || len(res.TransferEncoding) > 0 {
		t.Fatalf("findMany answered without a Content-Length: %d %v", res.ContentLength, res.TransferEncoding)
	}
}
