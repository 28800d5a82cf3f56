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

// TestJobsFindAndBulk: storaged jobs find pages through a queue by status
// and data; retry, cancel and delete act in bulk by status and filter or
// by ids.
func TestJobsFindAndBulk(t *testing.T) {
	d := testutil.StartDaemon(t)
	env := env(map[string]string{"STORAGED_SOCKET": d.Socket})
	for i := 0; i < 4; i++ {
		mustCall(t, d.Client, "POST", "/v1/queues/mail/jobs", `{"data":{"n":`+string(rune('0'+i))+`},"maxAttempts":1}`)
	}
	body := mustCall(t, d.Client, "POST", "/v1/queues/mail/dequeue", `{"max":2}`)
	var claimed []struct{ ID, Lease string }
	if !decode(t, body, &claimed) {
		t.FailNow()
	}
	for _, j := range claimed {
		mustCall(t, d.Client, "POST", "/v1/jobs/"+j.ID+"/fail", `{"lease":"`+j.Lease+`","error":{"name":"E","message":"boom"}}`)
	}
	jobs := func(args ...string) string {
		var out bytes.Buffer
		if err := jobsCmd(context.Background(), args, env, &out); err != nil {
			t.Fatalf("storaged jobs %v: %v", args, err)
		}
		return out.String()
	}
	if out := jobs("find", "mail", "--status", "pending"); strings.Count(out, "\n") != 2 {
		t.Fatalf("find pending:\n%s", out)
	}
	if out := jobs("find", "mail", "--status", "failed", "--filter", `{"n":1}`); strings.Count(out, "\n") != 1 || !strings.Contains(out, claimed[1].ID) {
		t.Fatalf("find failed n=1:\n%s", out)
	}
	if out := jobs("retry", "mail", "--status", "failed", "--filter", `{"n":{"$gte":0}}`); !strings.Contains(out, "retried: 2 job(s)") {
		t.Fatalf("bulk retry: %s", out)
	}
	if out := jobs("cancel", "mail", "--ids", claimed[0].ID+","+claimed[1].ID); !strings.Contains(out, "cancelled: 2 job(s)") {
		t.Fatalf("bulk cancel: %s", out)
	}
	if out := jobs("delete", "mail", "--status", "cancelled,pending"); !strings.Contains(out, "deleted: 4 job(s)") {
		t.Fatalf("bulk delete: %s", out)
	}
	var out bytes.Buffer
	if err := jobsCmd(context.Background(), []string{"find", "mail", "--filter", `{"a..b":1}`}, env, &out); err == nil || !strings.Contains(err.Error(), "invalid_argument") {
		t.Fatalf("a hostile filter path: %v", err)
	}
	if err := jobsCmd(context.Background(), []string{"delete", "mail", "--status", "processing"}, env, &out); err == nil || !strings.Contains(err.Error(), "invalid_argument") {
		t.Fatalf("delete of processing jobs: %v", err)
	}
}

// TestRetentionZeroDeletesAtAck: STORAGED_RETENTION_COMPLETED=0 makes an
// ack delete its job, through the HTTP API; a repeated ack is still 204.
func TestRetentionZeroDeletesAtAck(t *testing.T) {
	d := testutil.StartDaemon(t, "STORAGED_RETENTION_COMPLETED=0")
	_, b, _ := call(d.Client, "POST", "/v1/queues/r0/jobs", `{"data":{"x":1}}`)
	var r struct{ ID string }
	decode(t, b, &r)
	_, b, _ = call(d.Client, "POST", "/v1/queues/r0/dequeue", `{}`)
	var j struct{ ID, Lease string }
	decode(t, b, &j)
	for range 2 {
		if st, body, _ := call(d.Client, "POST", "/v1/jobs/"+j.ID+"/ack", `{"lease":"`+j.Lease+`"}`); st != 204 {
			t.Fatalf("ack: %d %s", st, body)
		}
	}
	if st, body, _ := call(d.Client, "GET", "/v1/jobs/"+r.ID, ""); st != 404 {
		t.Fatalf("GET of an acknowledged job: %d %s", st, body)
	}
	if st, body, _ := call(d.Client, "GET", "/v1/queues/r0/stats", ""); st != 200 || !strings.Contains(string(body), `"completed":0`) {
		t.Fatalf("stats: %d %s", st, body)
	}
}
