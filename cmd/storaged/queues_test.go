package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/testutil"
)

// TestQueuesCommand pauses, resumes and configures a queue of a running
// daemon, as an operator would, and checks the daemon's answers.
func TestQueuesCommand(t *testing.T) {
	d := testutil.StartDaemon(t)
	env := env(map[string]string{"STORAGED_SOCKET": d.Socket})
	queues := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := queuesCmd(context.Background(), args, env, &out); err != nil {
			t.Fatalf("storaged queues %v: %v", args, err)
		}
		return out.String()
	}
	mustCall(t, d.Client, "POST", "/v1/queues/work/jobs", `{"data":1}`)
	queues("pause", "work")
	if status, _, _ := call(d.Client, "POST", "/v1/queues/work/dequeue", `{}`); status != 204 {
		t.Fatalf("dequeue of a queue paused by the CLI: %d", status)
	}
	if out := queues("settings", "work"); !strings.Contains(out, `"paused": true`) {
		t.Fatalf("settings:\n%s", out)
	}
	queues("resume", "work")
	if status, _, _ := call(d.Client, "POST", "/v1/queues/work/dequeue", `{}`); status != 200 {
		t.Fatalf("dequeue of a queue resumed by the CLI: %d", status)
	}
	out := queues("settings", "work", "--set", `{"concurrency":4,"rateLimit":{"max":100,"durationMs":60000}}`)
	if !strings.Contains(out, `"concurrency": 4`) || !strings.Contains(out, `"durationMs": 60000`) {
		t.Fatalf("settings --set:\n%s", out)
	}
	if _, b, _ := call(d.Client, "GET", "/v1/queues/work/settings", ``); !strings.Contains(string(b), `"concurrency":4`) {
		t.Fatalf("the daemon's settings after --set: %s", b)
	}
	var sink bytes.Buffer
	for _, args := range [][]string{
		{"settings", "work", "--set", `{"concurrency":0}`},
		{"pause"},
		{"pause", "work", "--set", `{}`},
		{"frobnicate", "work"},
	} {
		if err := queuesCmd(context.Background(), args, env, &sink); err == nil {
			t.Fatalf("storaged queues %v succeeded", args)
		}
	}
	if _, b, _ := call(d.Client, "GET", "/v1/queues/work/settings", ``); !strings.Contains(string(b), `"concurrency":4`) {
		t.Fatalf("a refused --set changed the settings: %s", b)
	}
}

// TestSchedulesCommand lists and deletes a running daemon's schedules,
// and checks the daemon's answers.
func TestSchedulesCommand(t *testing.T) {
	d := testutil.StartDaemon(t)
	env := env(map[string]string{"STORAGED_SOCKET": d.Socket})
	schedules := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := schedulesCmd(context.Background(), args, env, &out); err != nil {
			t.Fatalf("storaged schedules %v: %v", args, err)
		}
		return out.String()
	}
	mustCall(t, d.Client, "PUT", "/v1/queues/reports/schedules/nightly", `{"cron":"0 3 * * *","tz":"Europe/Paris","data":{"r":1}}`)
	mustCall(t, d.Client, "PUT", "/v1/queues/reports/schedules/hourly", `{"cron":"@hourly"}`)
	out := schedules("list", "reports")
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, `"name":"hourly"`) || !strings.Contains(out, `"tz":"Europe/Paris"`) {
		t.Fatalf("list:\n%s", out)
	}
	if out := schedules("delete", "reports", "nightly"); !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %s", out)
	}
	if _, b, _ := call(d.Client, "GET", "/v1/queues/reports/schedules", ``); strings.Contains(string(b), "nightly") || !strings.Contains(string(b), "hourly") {
		t.Fatalf("the daemon's schedules after delete: %s", b)
	}
	var sink bytes.Buffer
	for _, args := range [][]string{
		{"delete", "reports", "nightly"},
		{"delete", "reports"},
		{"list"},
		{"frobnicate"},
	} {
		if err := schedulesCmd(context.Background(), args, env, &sink); err == nil {
			t.Fatalf("storaged schedules %v succeeded", args)
		}
	}
}
