package handlers_test

import (
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// TestJobReports: the wire of issue 17 — a result on ack (single and
// batch), progress, wait — and the keys each call refuses.
func TestJobReports(t *testing.T) {
	d := start(t, time.Minute)
	claim := func() (id, lease string) {
		t.Helper()
		d.do(t, "POST", "/v1/queues/reports/jobs", `{"data":1}`).want(t, 201)
		j := d.do(t, "POST", "/v1/queues/reports/dequeue", `{}`).want(t, 200).json(t)
		return j["id"].(string), j["lease"].(string)
	}

	id, lease := claim()
	d.do(t, "POST", "/v1/jobs/"+id+"/progress", `{"lease":"`+lease+`","progress":{"step":2}}`).want(t, 204)
	d.do(t, "POST", "/v1/jobs/"+id+"/progress", `{"lease":"`+lease+`","progress":50,"leaseMs":60000}`).want(t, 204)
	if p := d.do(t, "GET", "/v1/jobs/"+id, "").want(t, 200).json(t)["progress"]; p != 50.0 {
		t.Fatalf("progress %v, want 50", p)
	}
	d.do(t, "POST", "/v1/jobs/"+id+"/progress", `{"lease":"`+lease+`","progress":"x"}`).wantError(t, 400, backend.CodeInvalidArgument)
	d.do(t, "POST", "/v1/jobs/"+id+"/progress", `{"lease":"`+lease+`"}`).wantError(t, 400, backend.CodeInvalidArgument)
	d.do(t, "POST", "/v1/jobs/"+id+"/wait", `{"waitMs":50}`).want(t, 204)

	waited := make(chan resp, 1)
	go func() { waited <- d.do(t, "POST", "/v1/jobs/"+id+"/wait", `{"waitMs":20000}`) }()
	time.Sleep(50 * time.Millisecond)
	d.do(t, "POST", "/v1/jobs/"+id+"/ack", `{"lease":"`+lease+`","result":{"url":"https://x/r.pdf"}}`).want(t, 204)
	got := (<-waited).want(t, 200).json(t)
	if got["status"] != "completed" || got["result"].(map[string]any)["url"] != "https://x/r.pdf" || got["lease"] != nil {
		t.Fatalf("wait answered %v", got)
	}

	// Batch acks carry a result per item.
	a, la := claim()
	b, lb := claim()
	out := d.do(t, "POST", "/v1/jobs/ack", `[{"id":"`+a+`","lease":"`+la+`","result":1},{"id":"`+b+`","lease":"`+lb+`"}]`).want(t, 200)
	if string(out.body) != "[null,null]" {
		t.Fatalf("ack batch: %s", out.body)
	}
	for id, want := range map[string]any{a: 1.0, b: nil} {
		if r := d.do(t, "GET", "/v1/jobs/"+id, "").want(t, 200).json(t)["result"]; r != want {
			t.Fatalf("job %s result %v, want %v", id, r, want)
		}
	}

	// Keys that do not apply are refused, and change nothing.
	c, lc := claim()
	for _, bad := range []struct{ path, body, word string }{
		{"/v1/jobs/" + c + "/release", `{"lease":"` + lc + `","result":1}`, "result"},
		{"/v1/jobs/" + c + "/heartbeat", `{"lease":"` + lc + `","progress":1}`, "progress"},
		{"/v1/jobs/" + c + "/fail", `{"lease":"` + lc + `","result":1}`, "result"},
		{"/v1/jobs/" + c + "/ack", `{"lease":"` + lc + `","progress":1}`, "progress"},
		{"/v1/jobs/" + c + "/wait", `{"waitMs":60001}`, "waitMs"},
		{"/v1/jobs/" + c + "/wait", `{"lease":"x"}`, "lease"},
	} {
		r := d.do(t, "POST", bad.path, bad.body)
		r.wantError(t, 400, backend.CodeInvalidArgument)
		if !strings.Contains(string(r.body), bad.word) {
			t.Fatalf("POST %s %s: %s does not name %s", bad.path, bad.body, r.body, bad.word)
		}
	}
	if st := d.do(t, "GET", "/v1/jobs/"+c, "").want(t, 200).json(t)["status"]; st != "processing" {
		t.Fatalf("a refused call changed the job: %v", st)
	}
	big, _ := json.Marshal(strings.Repeat("x", 70<<10))
	d.do(t, "POST", "/v1/jobs/"+c+"/ack", `{"lease":"`+lc+`","result":`+string(big)+`}`).wantError(t, 413, backend.CodePayloadTooLarge)
	d.do(t, "POST", "/v1/jobs/no-such/wait", `{"waitMs":10}`).wantError(t, 404, backend.CodeNotFound)
}
