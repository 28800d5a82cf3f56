package sqs_test

import (
	"context"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
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
