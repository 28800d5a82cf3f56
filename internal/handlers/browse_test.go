package handlers_test

import (
	"fmt"
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

type foundPage struct {
	Jobs []backend.Job `json:"jobs"`
	Next *string       `json:"next"`
}

func TestFindJobsOverHTTP(t *testing.T) {
	d := start(t, 0)
	var ids []string
	for i := 0; i < 7; i++ {
		r := d.do(t, "POST", "/v1/queues/mail/jobs", fmt.Sprintf(`{"data":{"to":"u%d@example.com","n":%d},"maxAttempts":1}`, i, i)).want(t, 201).json(t)
		ids = append(ids, r["id"].(string))
	}
	// Fail one so that there is a dead letter with a stack.
	j := d.do(t, "POST", "/v1/queues/mail/dequeue", `{}`).want(t, 200).json(t)
	d.do(t, "POST", "/v1/jobs/"+j["id"].(string)+"/fail", `{"lease":"`+j["lease"].(string)+`","error":{"name":"TypeError","message":"bad","stack":"TypeError: bad\n    at send (mail.js:1:1)"}}`).want(t, 204)

	var seen []string
	after := ""
	for {
		body := `{"status":"pending","limit":2,"order":"asc"`
		if after != "" {
			body += `,"after":"` + after + `"`
		}
		var page foundPage
		must(t, json.Unmarshal(d.do(t, "POST", "/v1/queues/mail/jobs/find", body+"}").want(t, 200).body, &page))
		for _, j := range page.Jobs {
			seen = append(seen, j.ID)
			if j.Lease != "" {
				t.Fatal("find answers a lease")
			}
		}
		if page.Next == nil {
			break
		}
		after = *page.Next
	}
	if len(seen) != 6 || seen[0] != ids[1] || seen[5] != ids[6] {
		t.Fatalf("pending pages %v, want %v", seen, ids[1:])
	}
	var failed foundPage
	must(t, json.Unmarshal(d.do(t, "POST", "/v1/queues/mail/jobs/find", `{"status":["failed"],"sort":"finishedAt"}`).want(t, 200).body, &failed))
	if len(failed.Jobs) != 1 || failed.Next != nil || failed.Jobs[0].LastError == nil || !strings.Contains(failed.Jobs[0].LastError.Stack, "mail.js") {
		t.Fatalf("failed page %+v", failed)
	}
	var filtered foundPage
	must(t, json.Unmarshal(d.do(t, "POST", "/v1/queues/mail/jobs/find", `{"status":"pending","filter":{"n":{"$in":[2,4]}}}`).want(t, 200).body, &filtered))
	if len(filtered.Jobs) != 2 || filtered.Jobs[0].ID != ids[2] || filtered.Jobs[1].ID != ids[4] {
		t.Fatalf("filtered page %+v", filtered)
	}
	// An empty body finds what createdAt orders: processing, failed and
	// cancelled jobs, newest first.
	var every foundPage
	must(t, json.Unmarshal(d.do(t, "POST", "/v1/queues/mail/jobs/find", ``).want(t, 200).body, &every))
	if len(every.Jobs) != 1 || every.Jobs[0].ID != ids[0] {
		t.Fatalf("an empty find %+v", every)
	}
}

// Filter paths and operators are refused exactly as the records' find
// refuses them, before any store sees them; so are malformed bodies.
func TestFindJobsHostileInput(t *testing.T) {
	d := start(t, 0)
	d.do(t, "POST", "/v1/queues/q/jobs", `{"data":{"a":1}}`).want(t, 201)
	deep := strings.Repeat(`{"$not":`, 40) + `{"a":1}` + strings.Repeat("}", 40)
	bodies := []string{
		`{"filter":{"a..b":1}}`,
		`{"filter":{"a b":1}}`,
		`{"filter":{"a'); DROP TABLE storaged_jobs;--":1}}`,
		`{"filter":{"` + strings.Repeat("a.", 17) + `a":1}}`,
		`{"filter":{"a":{"$where":"1"}}}`,
		`{"filter":{"$expr":{}}}`,
		`{"filter":{"a":{"$gt":[1]}}}`,
		`{"filter":{"a":{"b":1}}}`,
		`{"filter":` + deep + `}`,
		`{"filter":"a = 1"}`,
		`{"filters":{}}`,
		`{"status":"done"}`,
		`{"status":[]}`,
		`{"status":[1]}`,
		`{"sort":"priority"}`,
		`{"sort":""}`,
		`{"sort":"runAt","status":"failed"}`,
		`{"status":["pending","completed"]}`,
		`{"status":"pending","sort":"createdAt"}`,
		`{"order":"sideways"}`,
		`{"limit":0}`,
		`{"limit":1.5}`,
		`{"limit":1001}`,
		`{"after":""}`,
		`{"after":"not-a-cursor"}`,
		`{"key":""}`,
		`{"key":"a\u0001"}`,
		`[]`,
		`{"status":"pending"} {}`,
		`{"filter":{"a":"\ud800"}}`,
	}
	for _, b := range bodies {
		d.do(t, "POST", "/v1/queues/q/jobs/find", b).wantError(t, 400, backend.CodeInvalidArgument)
	}
	d.do(t, "POST", "/v1/queues/bad%20name/jobs/find", `{}`).wantError(t, 400, backend.CodeInvalidArgument)
	d.do(t, "POST", "/v1/queues/q/jobs/find", `{}`, "Storaged-Tx", "x").wantError(t, 400, backend.CodeInvalidArgument)
}

func TestBulkOverHTTP(t *testing.T) {
	d := start(t, 0)
	var ids []string
	for i := 0; i < 6; i++ {
		r := d.do(t, "POST", "/v1/queues/b/jobs", fmt.Sprintf(`{"data":{"g":%d},"maxAttempts":1}`, i%2)).want(t, 201).json(t)
		ids = append(ids, r["id"].(string))
	}
	var claimed []map[string]any
	must(t, json.Unmarshal(d.do(t, "POST", "/v1/queues/b/dequeue", `{"max":6}`).want(t, 200).body, &claimed))
	for _, c := range claimed {
		d.do(t, "POST", "/v1/jobs/"+c["id"].(string)+"/fail", `{"lease":"`+c["lease"].(string)+`","error":{"message":"x"}}`).want(t, 204)
	}
	r := d.do(t, "POST", "/v1/queues/b/jobs/retry", `{"status":"failed","filter":{"g":1}}`).want(t, 200).json(t)
	if r["affected"] != 3.0 || r["more"] != nil {
		t.Fatalf("retry by filter: %v", r)
	}
	r = d.do(t, "POST", "/v1/queues/b/jobs/cancel", `{"ids":["`+ids[1]+`","`+ids[0]+`","nope"]}`).want(t, 200).json(t)
	if r["affected"] != 1.0 {
		t.Fatalf("cancel by ids: %v", r)
	}
	r = d.do(t, "POST", "/v1/queues/b/jobs/delete", `{"status":["failed","cancelled"]}`).want(t, 200).json(t)
	if r["affected"] != 4.0 {
		t.Fatalf("delete: %v", r)
	}
	st := d.do(t, "GET", "/v1/queues/b/stats", "").want(t, 200).json(t)
	if st["pending"] != 2.0 || st["failed"] != 0.0 || st["cancelled"] != 0.0 {
		t.Fatalf("stats after bulk: %v", st)
	}
	for _, b := range []string{``, `{}`, `{"ids":[]}`, `{"ids":null}`, `{"ids":"a"}`, `{"ids":[""]}`, `{"ids":["a"],"status":"failed"}`,
		`{"status":"pending"}`, `{"status":"failed","filter":{"$bad":1}}`, `{"status":"failed","extra":1}`, `{"status":"failed","key":""}`} {
		d.do(t, "POST", "/v1/queues/b/jobs/retry", b).wantError(t, 400, backend.CodeInvalidArgument)
	}
	d.do(t, "POST", "/v1/queues/b/jobs/delete", `{"status":"processing"}`).wantError(t, 400, backend.CodeInvalidArgument)
	d.do(t, "POST", "/v1/queues/b/jobs/purge", `{"ids":["a"]}`).wantError(t, 404, backend.CodeNotFound)
}

func TestPatchJobOverHTTP(t *testing.T) {
	d := start(t, 0)
	id := d.do(t, "POST", "/v1/queues/p/jobs", `{"data":{"v":1},"runAt":"2100-01-01T00:00:00Z"}`).want(t, 201).json(t)["id"].(string)
	got := d.do(t, "PATCH", "/v1/jobs/"+id, `{"runAt":"2000-01-01T00:00:00.000Z","priority":3,"data":{"v":2}}`).want(t, 200).json(t)
	if got["priority"] != 3.0 || got["runAt"] != "2000-01-01T00:00:00Z" || got["data"].(map[string]any)["v"] != 2.0 || got["lease"] != nil {
		t.Fatalf("patched job %v", got)
	}
	d.do(t, "PATCH", "/v1/jobs/"+id, `{"data":null}`).want(t, 200)
	j := d.do(t, "POST", "/v1/queues/p/dequeue", `{}`).want(t, 200).json(t)
	if j["id"] != id || j["data"] != nil {
		t.Fatalf("dequeued %v", j)
	}
	d.do(t, "PATCH", "/v1/jobs/"+id, `{"priority":1}`).wantError(t, 409, backend.CodeConflict)
	d.do(t, "PATCH", "/v1/jobs/missing", `{"priority":1}`).wantError(t, 404, backend.CodeNotFound)
	for _, b := range []string{``, `{}`, `{"runAt":"tomorrow"}`, `{"priority":1.5}`, `{"priority":4294967296}`, `{"delayMs":5}`, `{"runAt":"0000-12-31T23:59:59Z"}`} {
		d.do(t, "PATCH", "/v1/jobs/"+id, b).wantError(t, 400, backend.CodeInvalidArgument)
	}
}

func TestListQueuesOverHTTP(t *testing.T) {
	d := start(t, 0)
	d.do(t, "POST", "/v1/queues/b-queue/jobs", `{"data":1}`).want(t, 201)
	d.do(t, "POST", "/v1/queues/a-queue/pause", ``).want(t, 204)
	d.do(t, "PUT", "/v1/queues/c-queue/schedules/tick", `{"everyMs":60000}`).want(t, 200)
	var list []struct {
		Queue     string
		Stats     map[string]any
		Settings  *struct{ Paused bool }
		Schedules int
		LastHour  *struct {
			BucketMs  int64
			Completed []int64
			Failed    []int64
		}
	}
	must(t, json.Unmarshal(d.do(t, "GET", "/v1/queues", "").want(t, 200).body, &list))
	if len(list) != 3 || list[0].Queue != "a-queue" || list[1].Queue != "b-queue" || list[2].Queue != "c-queue" {
		t.Fatalf("queues %+v", list)
	}
	if !list[0].Settings.Paused || list[1].Stats["pending"] != 1.0 || list[2].Schedules != 1 || list[1].LastHour == nil || len(list[1].LastHour.Completed) != 12 {
		t.Fatalf("queues %+v", list)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestListCollectionsOverHTTP(t *testing.T) {
	d := start(t, 0)
	d.do(t, "POST", "/v1/repos/plans", `{"n":1}`).want(t, 201)
	d.do(t, "POST", "/v1/repos/plans", `{"n":2}`).want(t, 201)
	d.do(t, "PUT", "/v1/repos/plans/indexes/by_n", `{"fields":["n"],"unique":true}`).want(t, 204)
	d.do(t, "POST", "/v1/repos/users", `{"name":"a"}`).want(t, 201)
	var list []struct {
		Collection string
		Count      int64
		Indexes    []struct {
			Name   string
			Fields []string
			Unique bool
		}
	}
	must(t, json.Unmarshal(d.do(t, "GET", "/v1/repos", "").want(t, 200).body, &list))
	if len(list) != 2 || list[0].Collection != "plans" || list[0].Count != 2 || len(list[0].Indexes) != 1 ||
		list[0].Indexes[0].Name != "by_n" || !list[0].Indexes[0].Unique || list[1].Collection != "users" || list[1].Count != 1 || list[1].Indexes == nil {
		t.Fatalf("collections %+v", list)
	}
}
