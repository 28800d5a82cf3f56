package backend_test

import (
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// TestJobJSONMatchesLibrary holds the hand-written job encoding to what
// the library writes, byte for byte, over the shapes a job takes.
func TestJobJSONMatchesLibrary(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
	ptr := func(t time.Time) *time.Time { return &t }
	base := time.Date(2026, 11, 29, 3, 4, 5, 0, time.UTC)
	times := []time.Time{
		base,
		base.Add(120 * time.Millisecond),
		base.Add(100 * time.Millisecond),
		base.Add(5 * time.Millisecond),
		base.Add(999 * time.Millisecond),
		base.Add(123456789 * time.Nanosecond),      // finer than a store keeps
		base.In(time.FixedZone("X", 5*3600+30*60)), // another zone
		{}, // year 1
		time.Date(812, 1, 2, 3, 4, 5, 6e6, time.UTC), // a short year
		at(1700000000000), at(-1),
	}
	datas := []json.RawMessage{
		json.RawMessage(`{"i":1}`),
		json.RawMessage(`{"a": 1,  "b" : [1, 2, {"c": "x y"}]}`),
		json.RawMessage("\"<tag> & \u2028 é\""),
		json.RawMessage(`null`),
		json.RawMessage("[\n\t1,\r\n2\n]"),
		nil,
	}
	var jobs []*backend.Job
	for i, tm := range times {
		j := &backend.Job{
			ID: "job-" + string(rune('a'+i)), Queue: "q\"<>", Data: datas[i%len(datas)], Status: backend.StatusProcessing,
			Priority: i - 3, Attempts: i, MaxAttempts: 25, Backoff: backend.DefaultBackoff,
			RunAt: tm, CreatedAt: times[(i+1)%len(times)], UpdatedAt: times[(i+2)%len(times)],
		}
		if i%2 == 0 {
			j.Key, j.Lease, j.TimeoutMs, j.Traceparent = "k\\ey", "tok.job", int64(i*1000), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			j.StartedAt, j.LeaseExpiresAt = ptr(tm), ptr(times[(i+3)%len(times)])
			j.Result = datas[(i+1)%len(datas)]
		}
		if i%3 == 0 {
			j.FinishedAt = ptr(tm)
			j.LastError = &backend.JobError{Name: "Error", Message: "bad\nthing \u2029"}
			if i%2 == 1 {
				j.LastError.Stack = "at x (y.js:1:2)\n  at z"
			}
			j.Progress = json.RawMessage(`{"pct": 50}`)
		}
		jobs = append(jobs, j)
	}
	for _, j := range jobs {
		want, err := backend.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if got := backend.AppendJobJSON(nil, j); string(got) != string(want) {
			t.Errorf("job %s:\n got %s\nwant %s", j.ID, got, want)
		}
	}
	want, err := backend.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	if got := backend.AppendJobsJSON(nil, jobs); string(got) != string(want) {
		t.Errorf("jobs:\n got %s\nwant %s", got, want)
	}
	if got := backend.AppendJobsJSON(nil, nil); string(got) != "[]" {
		t.Errorf("no jobs: %s", got)
	}
}
