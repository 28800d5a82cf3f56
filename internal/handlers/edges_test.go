package handlers_test

import (
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

// TestRunAtYearOne: "0001-01-01T00:00:00Z" is Go's zero time, which used
// to mean "runAt not given", so such a job ran at the time of the enqueue
// and showed that time. An explicit early date is a date: kept as given,
// claimed before later ones. Dates outside 0001-01-01..9999-12-31 (which
// an offset can reach from a date string inside it) are refused.
func TestRunAtYearOne(t *testing.T) {
	d := start(t, 0)
	later := d.do(t, "POST", "/v1/queues/early/jobs", `{"data":"later","runAt":"1970-01-01T00:00:00Z"}`).want(t, 201).json(t)["id"]
	first := d.do(t, "POST", "/v1/queues/early/jobs", `{"data":"first","runAt":"0001-01-01T00:00:00Z"}`).want(t, 201).json(t)["id"].(string)
	got := d.do(t, "GET", "/v1/jobs/"+first, "").want(t, 200).json(t)
	if got["runAt"] != "0001-01-01T00:00:00Z" {
		t.Fatalf("runAt kept as %v", got["runAt"])
	}
	if j := d.do(t, "POST", "/v1/queues/early/dequeue", `{}`).want(t, 200).json(t); j["id"] != first {
		t.Fatalf("claimed %v (%v) before the job of year 1", j["id"], j["data"])
	}
	if j := d.do(t, "POST", "/v1/queues/early/dequeue", `{}`).want(t, 200).json(t); j["id"] != later {
		t.Fatalf("claimed %v second", j["id"])
	}
	for _, runAt := range []string{"0000-12-31T23:59:59.999Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z"} {
		d.do(t, "POST", "/v1/queues/early/jobs", `{"data":1,"runAt":"`+runAt+`"}`).wantError(t, 400, backend.CodeInvalidArgument)
	}
	d.do(t, "POST", "/v1/queues/early/jobs/batch", `[{"data":1,"runAt":"0001-01-01T00:00:00Z"},{"data":2,"runAt":"9999-12-31T23:59:59.999Z"}]`).want(t, 201)
}

// TestLoneSurrogates: a \u escape of half a UTF-16 surrogate pair names no
// character; decoders replaced it with U+FFFD without a word (and
// PostgreSQL refuses it in jsonb). Every body refuses it, in records, job
// data, filters and job errors alike; a whole pair is a character as any
// other.
func TestLoneSurrogates(t *testing.T) {
	d := start(t, 0)
	id := d.do(t, "POST", "/v1/repos/s", `{"v":"ok"}`).want(t, 201).json(t)["id"].(string)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/repos/s", `{"v":"\ud800"}`},
		{"POST", "/v1/repos/s", `{"v":"a\udfffb"}`},
		{"POST", "/v1/repos/s", `{"v":"\ud83d"}`},
		{"POST", "/v1/repos/s", `{"v":"\ud83d\u0041"}`},
		{"POST", "/v1/repos/s", `{"v":"\ude00\ud83d"}`},
		{"POST", "/v1/repos/s", `{"\ud800":1}`},
		{"PATCH", "/v1/repos/s/" + id, `{"v":["\uDBFF"]}`},
		{"POST", "/v1/repos/s/find", `{"filter":{"v":"\ud800"}}`},
		{"POST", "/v1/repos/s/count", `{"filter":{"v":"\ud800"}}`},
		{"POST", "/v1/queues/s/jobs", `{"data":{"v":"\ud800"}}`},
		{"POST", "/v1/queues/s/jobs/batch", `[{"data":1},{"data":"\udc00"}]`},
	} {
		r := d.do(t, c.method, c.path, c.body)
		r.wantError(t, 400, backend.CodeInvalidArgument)
		if !strings.Contains(string(r.body), "surrogate") {
			t.Fatalf("%s %s %s: %s does not say what is wrong", c.method, c.path, c.body, r.body)
		}
	}
	rec := d.do(t, "POST", "/v1/repos/s", `{"v":"\ud83d\ude00 \\ud800 \u00e9"}`).want(t, 201).json(t)
	if rec["v"] != "😀 \\ud800 é" {
		t.Fatalf("a surrogate pair (or an escaped backslash before ud800) came back as %q", rec["v"])
	}
	j := d.do(t, "POST", "/v1/queues/s/jobs", `{"data":"\uD83D\uDE00"}`).want(t, 201).json(t)["id"].(string)
	if got := d.do(t, "GET", "/v1/jobs/"+j, "").want(t, 200).json(t); got["data"] != "😀" {
		t.Fatalf("job data %q", got["data"])
	}
}
