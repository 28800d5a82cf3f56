package main

import (
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/testutil"
)

// TestSQSDaemonRefusals: a daemon on the SQS job store says what it
// lacks in /v1/info and refuses it over HTTP with 400 naming SQS and the
// feature; Storaged-Tx on a job call is refused naming both backends.
func TestSQSDaemonRefusals(t *testing.T) {
	d := testutil.StartDaemon(t, append([]string{"REPOSITORY_BACKEND=memory"}, testutil.SQSEnv(t)...)...)
	_, body, err := call(d.Client, "GET", "/v1/info", "")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		JobQueueBackend   string
		TransactionalJobs bool
		JobCapabilities   map[string]bool
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	if info.JobQueueBackend != "sqs" || info.TransactionalJobs || len(info.JobCapabilities) != 14 {
		t.Fatalf("info %s", body)
	}
	for k, v := range info.JobCapabilities {
		if v {
			t.Fatalf("SQS claims %s: %s", k, body)
		}
	}
	st, body, _ := call(d.Client, "POST", "/v1/queues/q/jobs", `{"data":1}`)
	if st != 201 {
		t.Fatalf("enqueue: %d %s", st, body)
	}
	var job struct{ ID string }
	decode(t, body, &job)

	_, txb, _ := call(d.Client, "POST", "/v1/tx", "")
	var tx struct{ ID string }
	decode(t, txb, &tx)
	req, _ := newReq("POST", "/v1/queues/q/jobs", `{"data":2}`)
	req.Header.Set("Storaged-Tx", tx.ID)
	res, err := d.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if txBody := readAll(res); res.StatusCode != 400 || !strings.Contains(txBody, "memory") || !strings.Contains(txBody, "sqs") {
		t.Fatalf("enqueue in a transaction on sqs: %d %s", res.StatusCode, txBody)
	}
	res.Body.Close()

	for _, c := range []struct{ method, path, body, words string }{
		{"GET", "/v1/jobs/" + job.ID, "", "getJob"},
		{"POST", "/v1/jobs/" + job.ID + "/cancel", "", "cancel"},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"priority":3}`, "priority"},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"key":"k"}`, "dedupe"},
	} {
		st, body, err := call(d.Client, c.method, c.path, c.body)
		if err != nil || st != 400 || !strings.Contains(string(body), "invalid_argument") || !strings.Contains(string(body), "SQS") ||
			!strings.Contains(string(body), c.words) {
			t.Fatalf("%s %s: %d %s %v", c.method, c.path, st, body, err)
		}
	}
	// The refusals changed nothing: the one job is there, and only it.
	st, body, _ = call(d.Client, "POST", "/v1/queues/q/dequeue", `{"max":10}`)
	var jobs []struct{ ID string }
	decode(t, body, &jobs)
	if st != 200 || len(jobs) != 1 || jobs[0].ID != job.ID {
		t.Fatalf("after the refusals: %d %s", st, body)
	}
}
