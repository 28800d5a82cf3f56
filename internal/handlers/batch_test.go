package handlers_test

import (
	"fmt"
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// TestBatchRoutes: DESIGN §3a over HTTP — dequeue with max answers an
// array, the settle-many routes answer one outcome per item in order
// (null or the error body's object), and bad batches are refused whole.
func TestBatchRoutes(t *testing.T) {
	d := start(t, 0)
	jobs := make([]string, 5)
	for i := range jobs {
		jobs[i] = fmt.Sprintf(`{"data":{"i":%d}}`, i)
	}
	d.do(t, "POST", "/v1/queues/b/jobs/batch", "["+strings.Join(jobs, ",")+"]").want(t, 201)

	var claimed []struct {
		ID, Lease string
		Attempts  int
	}
	r := d.do(t, "POST", "/v1/queues/b/dequeue", `{"max":3,"leaseMs":60000}`).want(t, 200)
	if err := json.Unmarshal(r.body, &claimed); err != nil || len(claimed) != 3 {
		t.Fatalf("dequeue max 3: %s", r.body)
	}
	// One good ack, one stale lease, one unknown job.
	body := fmt.Sprintf(`[{"id":%q,"lease":%q},{"id":%q,"lease":"stale"},{"id":"nope","lease":"x"}]`,
		claimed[0].ID, claimed[0].Lease, claimed[1].ID)
	var outcomes []*struct{ Code, Message string }
	r = d.do(t, "POST", "/v1/jobs/ack", body).want(t, 200)
	if err := json.Unmarshal(r.body, &outcomes); err != nil || len(outcomes) != 3 {
		t.Fatalf("ack many: %s", r.body)
	}
	if outcomes[0] != nil || outcomes[1] == nil || outcomes[1].Code != string(backend.CodeConflict) ||
		outcomes[2] == nil || outcomes[2].Code != string(backend.CodeNotFound) {
		t.Fatalf("ack many outcomes: %s", r.body)
	}
	d.do(t, "POST", "/v1/jobs/heartbeat", fmt.Sprintf(`[{"id":%q,"lease":%q,"leaseMs":90000}]`, claimed[1].ID, claimed[1].Lease)).want(t, 200)
	d.do(t, "POST", "/v1/jobs/fail", fmt.Sprintf(`[{"id":%q,"lease":%q,"error":{"message":"no"},"retry":false}]`, claimed[1].ID, claimed[1].Lease)).want(t, 200)
	r = d.do(t, "POST", "/v1/jobs/release", fmt.Sprintf(`[{"id":%q,"lease":%q}]`, claimed[2].ID, claimed[2].Lease)).want(t, 200)
	if strings.TrimSpace(string(r.body)) != "[null]" {
		t.Fatalf("release many: %s", r.body)
	}
	d.do(t, "POST", "/v1/jobs/"+claimed[1].ID+"/release", `{"lease":"x"}`).wantError(t, 409, backend.CodeConflict)
	st := d.do(t, "GET", "/v1/queues/b/stats", "").want(t, 200).json(t)
	if st["completed"] != 1.0 || st["failed"] != 1.0 || st["pending"] != 3.0 {
		t.Fatalf("stats %v", st)
	}
	// Without max the answer is one job, not an array.
	one := d.do(t, "POST", "/v1/queues/b/dequeue", `{}`).want(t, 200).json(t)
	if one["id"] == nil || one["lease"] == nil {
		t.Fatalf("dequeue without max: %v", one)
	}
	d.do(t, "POST", "/v1/queues/empty/dequeue", `{"max":10}`).want(t, 204)

	for _, c := range []struct{ path, body string }{
		{"/v1/jobs/ack", `[]`},
		{"/v1/jobs/ack", `{"id":"a","lease":"b"}`},
		{"/v1/jobs/ack", `[{"lease":"b"}]`},
		{"/v1/jobs/ack", `[{"id":"a","lease":""}]`},
		{"/v1/jobs/ack", `[{"id":"a","lease":"b","retry":true}]`},
		{"/v1/jobs/release", `[{"id":"a","lease":"b","leaseMs":5}]`},
		{"/v1/jobs/heartbeat", `[{"id":"a","lease":"b","leaseMs":0}]`},
		{"/v1/jobs/fail", `[{"id":"a","lease":"b","error":"x"}]`},
		{"/v1/jobs/a/ack", `{"id":"a","lease":"b"}`},
		{"/v1/queues/b/dequeue", `{"max":0}`},
		{"/v1/queues/b/dequeue", `{"max":1001}`},
		{"/v1/queues/b/dequeue", `{"max":2.5}`},
		{"/v1/queues/b/dequeue", `{"leaseMs":0}`},
	} {
		d.do(t, "POST", c.path, c.body).wantError(t, 400, backend.CodeInvalidArgument)
	}
	many := make([]string, 1001)
	for i := range many {
		many[i] = `{"id":"a","lease":"b"}`
	}
	d.do(t, "POST", "/v1/jobs/ack", "["+strings.Join(many, ",")+"]").wantError(t, 400, backend.CodeInvalidArgument)
}
