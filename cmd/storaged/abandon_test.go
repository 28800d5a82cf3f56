package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/testutil"
)

// TestReliabilityAbandonedPollsClaimNothing: long polls whose clients hung up (as
// worker.stop() and every graceful app restart do) must not take the
// next job. Before the fix the dead poll claimed it: an attempt was
// spent, the live worker got 204 and, with maxAttempts 1, the job was
// dead-lettered as LeaseExpired without ever running.
func TestReliabilityAbandonedPollsClaimNothing(t *testing.T) {
	for _, b := range testutil.JobBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			d := testutil.StartDaemon(t, b.Env...)
			queue := testutil.Name(t, "abandoned")
			// Several polls, so that one of them is surely waiting when
			// the job arrives, whatever the scheduling.
			for range 4 {
				c, err := net.Dial("unix", d.Socket)
				if err != nil {
					t.Fatal(err)
				}
				body := `{"waitMs":30000,"leaseMs":60000}`
				fmt.Fprintf(c, "POST /v1/queues/%s/dequeue HTTP/1.1\r\nHost: storaged\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
					queue, len(body), body)
				c.Close()
			}
			// Give the daemon time to start waiting on the dead polls: if
			// it is slower, the polls claim the job as soon as they run,
			// which the fix must also prevent.
			time.Sleep(200 * time.Millisecond)
			status, body, err := call(d.Client, "POST", "/v1/queues/"+queue+"/jobs", `{"data":{"n":1},"maxAttempts":1}`)
			if err != nil || status != 201 {
				t.Fatalf("enqueue: %d %s %v", status, body, err)
			}
			var enq struct{ ID string }
			_ = json.Unmarshal(body, &enq)

			status, body, err = call(d.Client, "POST", "/v1/queues/"+queue+"/dequeue", `{"waitMs":10000}`)
			if err != nil || status != 200 {
				job, _, _ := call(d.Client, "GET", "/v1/jobs/"+enq.ID, "")
				_, jb, _ := call(d.Client, "GET", "/v1/jobs/"+enq.ID, "")
				t.Fatalf("the live worker got %d %s %v; job (%d): %s", status, body, err, job, jb)
			}
			var job struct {
				ID       string
				Attempts int
			}
			_ = json.Unmarshal(body, &job)
			if job.ID != enq.ID || job.Attempts != 1 {
				t.Fatalf("live worker got %s", strings.TrimSpace(string(body)))
			}
		})
	}
}

// TestReliabilityAbandonedPollsHalfClosed: a client that shuts only its write side
// (as the Node client does when a worker stops, so that an answer already
// on its way is not lost) gets its long poll answered at once with 204,
// and the next job is left for the next worker.
func TestReliabilityAbandonedPollsHalfClosed(t *testing.T) {
	for _, b := range testutil.JobBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			d := testutil.StartDaemon(t, b.Env...)
			queue := testutil.Name(t, "halfclosed")
			c, err := net.Dial("unix", d.Socket)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			body := `{"waitMs":30000,"max":10}`
			fmt.Fprintf(c, "POST /v1/queues/%s/dequeue HTTP/1.1\r\nHost: storaged\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				queue, len(body), body)
			time.Sleep(100 * time.Millisecond)
			if err := c.(*net.UnixConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			answer, err := io.ReadAll(c)
			if err != nil || !strings.HasPrefix(string(answer), "HTTP/1.1 204") {
				t.Fatalf("the half-closed poll got %q %v, want 204 at once", answer, err)
			}
			status, out, err := call(d.Client, "POST", "/v1/queues/"+queue+"/jobs", `{"data":1,"maxAttempts":1}`)
			if err != nil || status != 201 {
				t.Fatalf("enqueue: %d %s %v", status, out, err)
			}
			status, out, err = call(d.Client, "POST", "/v1/queues/"+queue+"/dequeue", `{"waitMs":5000}`)
			if err != nil || status != 200 || !strings.Contains(string(out), `"attempts":1`) {
				t.Fatalf("the live worker got %d %s %v", status, out, err)
			}
		})
	}
}
