// Package sqs is the job store over Amazon SQS (JOBQUEUE_BACKEND=sqs):
// one SQS standard queue per storaged queue, a companion "-dlq" queue for
// its dead letters. See the README's SQS section and docs/decisions.md for
// the mapping and what SQS cannot do (the store's JobCapabilities).
//
// Every SQS call goes through API, the few methods of the AWS SDK's client
// the store uses, so that the SDK (or its protocol) can change in one
// place and tests can count or fault calls.
package sqs

import (
	"context"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
)

// API is the part of the SQS client the store calls; *awssqs.Client
// implements it.
type API interface {
	GetQueueUrl(ctx context.Context, in *awssqs.GetQueueUrlInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueUrlOutput, error)
	CreateQueue(ctx context.Context, in *awssqs.CreateQueueInput, opts ...func(*awssqs.Options)) (*awssqs.CreateQueueOutput, error)
	ListQueues(ctx context.Context, in *awssqs.ListQueuesInput, opts ...func(*awssqs.Options)) (*awssqs.ListQueuesOutput, error)
	GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error)
	SendMessageBatch(ctx context.Context, in *awssqs.SendMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.SendMessageBatchOutput, error)
	ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *awssqs.ChangeMessageVisibilityBatchInput, opts ...func(*awssqs.Options)) (*awssqs.ChangeMessageVisibilityBatchOutput, error)
}

var _ API = (*awssqs.Client)(nil)
