package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/testutil"
)

// TestJobsCommand lists, inspects, retries and purges dead letters
// through a running daemon, as an operator would.
func TestJobsCommand(t *testing.T) {
	d := testutil.StartDaemon(t)
	env := env(map[string]string{"STORAGED_SOCKET": d.Socket})
	fail := func() string {
		_, b, _ := call(d.Client, "POST", "/v1/queues/dlq/jobs", `{"data":{"x":1},"maxAttempts":1}`)
		var r struct{ ID string }
		decode(t, b, &r)
		_, b, _ = call(d.Client, "POST", "/v1/queues/dlq/dequeue", `{}`)
		var j struct{ ID, Lease string }
		decode(t, b, &j)
		mustCall(t, d.Client, "POST", "/v1/jobs/"+j.ID+"/fail", `{"lease":"`+j.Lease+`","error":{"name":"E","message":"boom"}}`)
		return r.ID
	}
	a, b := fail(), fail()
	jobs := func(args ...string) string {
		var out bytes.Buffer
		if err := jobsCmd(context.Background(), args, env, &out); err != nil {
			t.Fatalf("storaged jobs %v: %v", args, err)
		}
		return out.String()
	}
	if out := jobs("failed", "dlq"); strings.Count(out, "\n") != 2 || !strings.Contains(out, a) || !strings.Contains(out, `"message":"boom"`) {
		t.Fatalf("failed:\n%s", out)
	}
	if out := jobs("inspect", a); !strings.Contains(out, `"status": "failed"`) {
		t.Fatalf("inspect:\n%s", out)
	}
	jobs("retry", a)
	if out := jobs("failed", "dlq", "--limit", "10"); strings.Contains(out, a) || !strings.Contains(out, b) {
		t.Fatalf("after retry:\n%s", out)
	}
	if out := jobs("purge", "dlq"); !strings.Contains(out, "purged 1") {
		t.Fatalf("purge: %s", out)
	}
	if out := jobs("failed", "dlq"); out != "" {
		t.Fatalf("after purge:\n%s", out)
	}
	var out bytes.Buffer
	if err := jobsCmd(context.Background(), []string{"inspect", "nope"}, env, &out); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("inspect of a missing job: %v", err)
	}
	if err := jobsCmd(context.Background(), []string{"retry", "x"}, func(string) (string, bool) { return "/nonexistent.sock", true }, &out); err == nil || !strings.Contains(err.Error(), "STORAGED_SOCKET") {
		t.Fatalf("no daemon: %v", err)
	}
	if err := jobsCmd(context.Background(), []string{"frobnicate", "x"}, env, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
}
