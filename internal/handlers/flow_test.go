package handlers_test

import (
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// TestQueueSettingsRoutes drives the flow control routes end to end over
// the socket: the settings round trip, pause and resume, the refusals, and
// that a refused change changes nothing.
func TestQueueSettingsRoutes(t *testing.T) {
	d := start(t, 0)
	if got := string(d.do(t, "GET", "/v1/queues/q/settings", ``).want(t, 200).body); got != `{"paused":false,"concurrency":null,"rateLimit":null}` {
		t.Fatalf("settings of a fresh queue: %s", got)
	}
	want := `{"paused":false,"concurrency":2,"rateLimit":{"max":5,"durationMs":1000}}`
	if got := string(d.do(t, "PUT", "/v1/queues/q/settings", want).want(t, 200).body); got != want {
		t.Fatalf("PUT answered %s", got)
	}
	if got := string(d.do(t, "GET", "/v1/queues/q/settings", ``).want(t, 200).body); got != want {
		t.Fatalf("GET after PUT: %s", got)
	}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/queues/q/settings", ``},
		{"PUT", "/v1/queues/q/settings", `{"concurrency":0}`},
		{"PUT", "/v1/queues/q/settings", `{"concurrency":1.5}`},
		{"PUT", "/v1/queues/q/settings", `{"concurrency":"2"}`},
		{"PUT", "/v1/queues/q/settings", `{"rateLimit":{"max":5}}`},
		{"PUT", "/v1/queues/q/settings", `{"rateLimit":{"max":5,"durationMs":0}}`},
		{"PUT", "/v1/queues/q/settings", `{"paused":true,"priority":1}`},
		{"PUT", "/v1/queues/bad%20q/settings", `{}`},
		{"POST", "/v1/queues/q/pause", `{"now":true}`},
		{"POST", "/v1/queues/bad%20q/resume", ``},
	} {
		d.do(t, c.method, c.path, c.body).wantError(t, 400, backend.CodeInvalidArgument)
	}
	if got := string(d.do(t, "GET", "/v1/queues/q/settings", ``).want(t, 200).body); got != want {
		t.Fatalf("a refused change changed the settings: %s", got)
	}

	d.do(t, "POST", "/v1/queues/q/jobs", `{"data":1}`).want(t, 201)
	d.do(t, "POST", "/v1/queues/q/pause", ``).want(t, 204)
	if st := d.do(t, "GET", "/v1/queues/q/stats", ``).json(t); st["paused"] != true || st["pending"] != 1.0 {
		t.Fatalf("stats of the paused queue: %v", st)
	}
	d.do(t, "POST", "/v1/queues/q/dequeue", `{}`).want(t, 204)
	d.do(t, "POST", "/v1/queues/q/resume", ``).want(t, 204)
	if st := d.do(t, "GET", "/v1/queues/q/stats", ``).json(t); st["paused"] != false {
		t.Fatalf("stats after resume: %v", st)
	}
	d.do(t, "POST", "/v1/queues/q/dequeue", `{}`).want(t, 200)
	// Pause and resume leave the limits alone.
	if got := string(d.do(t, "GET", "/v1/queues/q/settings", ``).want(t, 200).body); got != want {
		t.Fatalf("settings after pause and resume: %s", got)
	}
	d.do(t, "PUT", "/v1/queues/q/settings", `{}`).want(t, 200)
	if got := string(d.do(t, "GET", "/v1/queues/q/settings", ``).want(t, 200).body); got != `{"paused":false,"concurrency":null,"rateLimit":null}` {
		t.Fatalf("settings after an empty PUT: %s", got)
	}
}

// TestUniqueEnqueueRoute: the enqueue answer says whether it deduplicated,
// for unique's rules as for the key shorthand; bad unique options are 400.
func TestUniqueEnqueueRoute(t *testing.T) {
	d := start(t, 0)
	body := `{"data":{"v":1},"unique":{"key":"hook-1","states":["completed"],"periodMs":60000}}`
	first := d.do(t, "POST", "/v1/queues/q/jobs", body).want(t, 201).json(t)
	if first["deduplicated"] != nil {
		t.Fatalf("first enqueue: %v", first)
	}
	again := d.do(t, "POST", "/v1/queues/q/jobs", body).want(t, 201).json(t)
	if again["deduplicated"] != true || again["id"] != first["id"] {
		t.Fatalf("duplicate: %v, first %v", again, first)
	}
	if r := d.do(t, "POST", "/v1/queues/q/jobs", `{"key":"hook-1"}`).want(t, 201).json(t); r["deduplicated"] != true {
		t.Fatalf("key shorthand: %v", r)
	}
	for _, b := range []string{
		`{"unique":{}}`,
		`{"unique":{"key":""}}`,
		`{"unique":{"key":"k","states":[]}}`,
		`{"unique":{"key":"k","states":["done"]}}`,
		`{"unique":{"key":"k","periodMs":-1}}`,
		`{"unique":{"key":"k","periodMs":1.5}}`,
		`{"unique":{"key":"k","mode":"merge"}}`,
		`{"unique":{"key":"k","ttl":5}}`,
		`{"key":"k","unique":{"key":"k"}}`,
	} {
		d.do(t, "POST", "/v1/queues/q/jobs", b).wantError(t, 400, backend.CodeInvalidArgument)
	}
	if st := d.do(t, "GET", "/v1/queues/q/stats", ``).json(t); st["pending"] != 1.0 {
		t.Fatalf("stats: %v", st)
	}
	var batch struct {
		IDs          []string `json:"ids"`
		Deduplicated []bool   `json:"deduplicated"`
	}
	b := d.do(t, "POST", "/v1/queues/q/jobs/batch", `[{"data":1},{"unique":{"key":"hook-1"}}]`).want(t, 201).body
	if err := json.Unmarshal(b, &batch); err != nil || len(batch.IDs) != 2 || batch.IDs[1] != first["id"] ||
		len(batch.Deduplicated) != 2 || batch.Deduplicated[0] || !batch.Deduplicated[1] {
		t.Fatalf("batch with a duplicate: %s", b)
	}
	if b := d.do(t, "POST", "/v1/queues/q/jobs/batch", `[{"data":1}]`).want(t, 201).body; strings.Contains(string(b), "deduplicated") {
		t.Fatalf("batch without a duplicate: %s", b)
	}
}

// TestScheduleRoutes: put (idempotent), get, list, delete over the socket,
// and the refusals.
func TestScheduleRoutes(t *testing.T) {
	d := start(t, 0)
	body := `{"cron":"*/5 * * * *","tz":"Europe/Paris","data":{"report":"x"},"overlap":"skip","backfillMs":600000}`
	first := d.do(t, "PUT", "/v1/queues/q/schedules/report", body).want(t, 200).json(t)
	if first["name"] != "report" || first["queue"] != "q" || first["next"] == nil || first["overlap"] != "skip" || first["tz"] != "Europe/Paris" {
		t.Fatalf("put: %v", first)
	}
	again := d.do(t, "PUT", "/v1/queues/q/schedules/report", body).want(t, 200).json(t)
	if again["next"] != first["next"] || again["updatedAt"] != first["updatedAt"] {
		t.Fatalf("a repeated put changed the schedule: %v, was %v", again, first)
	}
	d.do(t, "PUT", "/v1/queues/q/schedules/tick", `{"everyMs":60000}`).want(t, 200)
	var list []map[string]any
	if err := json.Unmarshal(d.do(t, "GET", "/v1/queues/q/schedules", ``).want(t, 200).body, &list); err != nil || len(list) != 2 ||
		list[0]["name"] != "report" || list[1]["name"] != "tick" {
		t.Fatalf("list: %v %v", list, err)
	}
	if got := d.do(t, "GET", "/v1/queues/q/schedules/tick", ``).want(t, 200).json(t); got["everyMs"] != 60000.0 {
		t.Fatalf("get: %v", got)
	}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/queues/q/schedules/s", ``},
		{"PUT", "/v1/queues/q/schedules/s", `{}`},
		{"PUT", "/v1/queues/q/schedules/s", `{"cron":"nope"}`},
		{"PUT", "/v1/queues/q/schedules/s", `{"cron":"* * * * *","everyMs":1000}`},
		{"PUT", "/v1/queues/q/schedules/s", `{"everyMs":"1000"}`},
		{"PUT", "/v1/queues/q/schedules/s", `{"everyMs":1000,"when":"now"}`},
		{"PUT", "/v1/queues/q/schedules/s", `{"cron":"0 9 * * *","tz":"Nowhere/City"}`},
		{"PUT", "/v1/queues/q/schedules/bad%20name", `{"everyMs":1000}`},
		{"DELETE", "/v1/queues/q/schedules/tick", `{"force":true}`},
	} {
		d.do(t, c.method, c.path, c.body).wantError(t, 400, backend.CodeInvalidArgument)
	}
	d.do(t, "DELETE", "/v1/queues/q/schedules/tick", ``).want(t, 204)
	d.do(t, "GET", "/v1/queues/q/schedules/tick", ``).wantError(t, 404, backend.CodeNotFound)
	d.do(t, "DELETE", "/v1/queues/q/schedules/tick", ``).wantError(t, 404, backend.CodeNotFound)
	if err := json.Unmarshal(d.do(t, "GET", "/v1/queues/q/schedules", ``).want(t, 200).body, &list); err != nil || len(list) != 1 {
		t.Fatalf("list after delete: %v", list)
	}
}
