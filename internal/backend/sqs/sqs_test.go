package sqs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/backend/sqs"
	"github.com/storaged/storaged/internal/testutil"
)

// newStore opens the store on the test SQS server (moto) under a fresh
// prefix, polling often so that long polls see other processes' jobs
// soon.
func newStore(t *testing.T) backend.JobStore {
	t.Helper()
	s := sqs.New(testutil.SQSClient(t), sqs.Config{Prefix: testutil.SQSPrefix(t), PollInterval: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("SQS at %s: %v", testutil.SQSEndpoint(t), err)
	}
	return s
}

func TestJobQueue(t *testing.T) {
	backendtest.RunJobQueue(t, newStore)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantInvalid(t *testing.T, err error, words ...string) {
	t.Helper()
	if !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Fatalf("want invalid_argument, got %v", err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%q does not name %q", err, w)
		}
	}
}

// TestRefusesWhatSQSCannotDo: each feature SQS lacks is a 400 that names
// SQS and the feature, and changes nothing.
func TestRefusesWhatSQSCannotDo(t *testing.T) {
	store := newStore(t)
	svc := queue.New(queue.Config{Store: store})
	q := testutil.Name(t, "q")
	_, err := svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{}, {Priority: 5}})
	wantInvalid(t, err, "SQS", "priority", "job 1")
	_, err = svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{Key: "daily"}})
	wantInvalid(t, err, "SQS", "dedupe")
	res, err := svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Get(ctx(t), res[0].ID)
	wantInvalid(t, err, "SQS", "getJob")
	wantInvalid(t, svc.Cancel(ctx(t), res[0].ID), "SQS", "cancel")
	_, err = svc.Dequeue(ctx(t), q, backend.DequeueParams{Lease: 13 * time.Hour})
	wantInvalid(t, err, "SQS", "12 h")
	_, err = svc.Enqueue(ctx(t), strings.Repeat("q", 70), []backend.EnqueueParams{{}})
	wantInvalid(t, err, "too long for SQS")
	// Only the one valid job went in.
	jobs, err := svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 10})
	if err != nil || len(jobs) != 1 || jobs[0].ID != res[0].ID {
		t.Fatalf("after the refusals the queue holds %v (%v)", jobs, err)
	}
	// Browsing (issue 20): SQS cannot list a queue's messages.
	_, err = svc.FindJobs(ctx(t), q, queue.FindParams{})
	wantInvalid(t, err, "SQS", "cannot list")
	_, err = svc.Bulk(ctx(t), q, queue.BulkRetry, queue.BulkParams{IDs: []string{"a"}})
	wantInvalid(t, err, "SQS", "cannot list")
	p := 1
	_, err = svc.UpdateJob(ctx(t), "a", queue.JobPatch{Priority: &p})
	wantInvalid(t, err, "SQS", "cannot list")
	_, err = svc.Queues(ctx(t))
	wantInvalid(t, err, "SQS", "cannot list")
	caps := backend.CapabilitiesOf(store)
	if missing := caps.Missing(backend.AllJobCapabilities); len(missing) != 15 || caps.Name != "SQS" || caps.Browse || caps.Events {
		t.Fatalf("SQS declares %+v", caps)
	}
	// The event feed (issue 17) needs every transition stamped where it
	// can be read; SQS has nowhere to keep it.
	if _, err := svc.Events(ctx(t), q, queue.EventsParams{}); !backend.IsCode(err, backend.CodeInvalidArgument) || !strings.Contains(err.Error(), "SQS") {
		t.Fatalf("events on SQS: %v, want invalid_argument naming SQS", err)
	}
}

// TestQueueNames: storaged names map one to one onto SQS names, and no
// queue's SQS name is another's dead letter queue.
func TestQueueNames(t *testing.T) {
	store := newStore(t)
	svc := queue.New(queue.Config{Store: store})
	names := []string{"a.b", "a:b", "a-b", "a_b", "a-pb", "x.dlq", "x"}
	for i, n := range names {
		if _, err := svc.Enqueue(ctx(t), n, []backend.EnqueueParams{{Data: testutil.MustJSON(t, i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range names {
		jobs, err := svc.Dequeue(ctx(t), n, backend.DequeueParams{Max: 10})
		if err != nil || len(jobs) != 1 || string(jobs[0].Data) != string(testutil.MustJSON(t, i)) {
			t.Fatalf("queue %q gave %v %v", n, jobs, err)
		}
	}
}

// TestRunAtBeyondSQSDelay: a message received before its runAt (SQS
// delays by 15 minutes at most) is hidden again without counting an
// attempt. The message is put in the queue directly, undelayed, as SQS
// hands back one whose longest delay has passed.
func TestRunAtBeyondSQSDelay(t *testing.T) {
	api := testutil.SQSClient(t)
	prefix := testutil.SQSPrefix(t)
	store := sqs.New(api, sqs.Config{Prefix: prefix, PollInterval: 100 * time.Millisecond})
	svc := queue.New(queue.Config{Store: store})
	q := testutil.Name(t, "far")
	if _, err := svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`1`)}}); err != nil {
		t.Fatal(err) // creates the queue
	}
	first, err := svc.Dequeue(ctx(t), q, backend.DequeueParams{})
	if err != nil || first == nil {
		t.Fatalf("%v %v", first, err)
	}
	runAt := backend.Now().Add(2 * time.Second)
	body := fmt.Sprintf(`{"id":"far-1","queue":%q,"data":2,"maxAttempts":1,"backoff":{"type":"fixed","delayMs":0,"maxDelayMs":0},"attempts":0,"runAt":%q,"createdAt":%q}`,
		q, runAt.Format(time.RFC3339Nano), backend.Now().Format(time.RFC3339Nano))
	u, err := api.GetQueueUrl(ctx(t), &awssqs.GetQueueUrlInput{QueueName: aws.String(prefix + q)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.SendMessage(ctx(t), &awssqs.SendMessageInput{QueueUrl: u.QueueUrl, MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
	if j, err := svc.Dequeue(ctx(t), q, backend.DequeueParams{}); err != nil || len(j) != 0 {
		t.Fatalf("a job was claimed before its runAt: %v %v", j, err)
	}
	j, err := svc.Dequeue(ctx(t), q, backend.DequeueParams{Wait: 10 * time.Second})
	if err != nil || len(j) != 1 || j[0].ID != "far-1" || j[0].Attempts != 1 {
		t.Fatalf("after its runAt: %+v %v", j, err)
	}
	if time.Now().Before(runAt) {
		t.Fatalf("claimed at %v, before its runAt %v", time.Now(), runAt)
	}
}

// TestDeadLetterRetention: dead letter queues are created with the
// failed-job retention (SQS expires them), and pruning scans nothing, so
// that dead letters stay listable.
func TestDeadLetterRetention(t *testing.T) {
	api := testutil.SQSClient(t)
	prefix := testutil.SQSPrefix(t)
	store := sqs.New(api, sqs.Config{Prefix: prefix, DeadLetterRetention: 3 * time.Hour})
	svc := queue.New(queue.Config{Store: store})
	q := testutil.Name(t, "ttl")
	res, err := svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := svc.Dequeue(ctx(t), q, backend.DequeueParams{})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("%v %v", jobs, err)
	}
	if out, err := svc.Fail(ctx(t), []backend.FailParams{{ID: res[0].ID, Lease: jobs[0].Lease}}); err != nil || out[0] != nil {
		t.Fatalf("%v %v", out, err)
	}
	for name, want := range map[string]string{prefix + q: "1209600", prefix + q + "-dlq": "10800"} {
		u, err := api.GetQueueUrl(ctx(t), &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		a, err := api.GetQueueAttributes(ctx(t), &awssqs.GetQueueAttributesInput{QueueUrl: u.QueueUrl,
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameMessageRetentionPeriod}})
		if err != nil || a.Attributes["MessageRetentionPeriod"] != want {
			t.Fatalf("%s retention %v %v, want %s", name, a.Attributes, err, want)
		}
	}
	if n, err := svc.Prune(ctx(t), backend.PruneParams{CompletedBefore: time.Now().Add(time.Hour), FailedBefore: time.Now().Add(time.Hour)}); err != nil || n != 0 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if dead, err := svc.ListFailed(ctx(t), q, backend.ListParams{Limit: 10}); err != nil || len(dead) != 1 {
		t.Fatalf("after prune: %v %v", dead, err)
	}
}
