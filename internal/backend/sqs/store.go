package sqs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

// SQS's limits that shape the mapping.
const (
	maxDelay      = 15 * time.Minute // DelaySeconds
	maxVisibility = 12 * time.Hour   // VisibilityTimeout
	maxEntries    = 10               // entries of a batch call, messages of a receive
	maxMessage    = 256 << 10        // bytes of one message and of one batch
	maxNameLength = 80               // characters of a queue name
	// retention is the longest SQS keeps a message (14 days): the most a
	// job may wait pending; dead letters keep Config.DeadLetterRetention.
	retention    = 14 * 24 * time.Hour
	minRetention = time.Minute
	// scanLimit bounds the dead letters one listFailed, retryFailed or
	// purge looks through: SQS can only list a queue by receiving it.
	scanLimit = 10_000
	// scanHide is how long a scan hides the dead letters it looks at
	// before it shows them again.
	scanHide  = 60
	dlqSuffix = "-dlq"
	// maxSnapshot bounds the claim a lease token carries (JSON bytes,
	// before base64): the token goes back with every settle of it, so a
	// job larger than this is settled whole only where it was claimed.
	maxSnapshot = 8 << 10
)

// Config opens a Store.
type Config struct {
	// Region, if set, overrides the SDK's (AWS_REGION, the profile).
	Region string
	// Endpoint, if set, replaces SQS's (an emulator, a VPC endpoint).
	Endpoint string
	// Prefix starts the name of every SQS queue of this store.
	Prefix string
	// PollInterval is how often a long poll looks again (SQS tells no
	// one of new messages); 0 is one second.
	PollInterval time.Duration
	// DeadLetterRetention is the MessageRetentionPeriod of the dead letter
	// queues this store creates (STORAGED_RETENTION_FAILED), within SQS's
	// 1 minute to 14 days; 0 is 14 days. SQS expires dead letters itself,
	// so pruning has nothing to scan.
	DeadLetterRetention time.Duration
	Logger              *slog.Logger
	// API, if set, is the client to use (tests); nil builds one from the
	// SDK's default configuration and credential chain.
	API API
}

// Store is the SQS job store. Besides SQS it keeps, in this process, the
// claims it made (the job each lease is for), because SQS cannot read a
// message by id: fail and release of a claim need its job, and a repeated
// ack must be told from a stale one.
type Store struct {
	api    API
	prefix string
	log    *slog.Logger
	poll   time.Duration
	dlqTTL time.Duration

	mu        sync.Mutex
	urls      map[string]string // SQS queue name → URL
	claims    map[string]*claim // by lease
	byID      map[string]*claim // the latest claim of a job
	lastPrune time.Time
}

var _ backend.JobStore = (*Store)(nil)
var _ backend.JobCapabler = (*Store)(nil)
var _ backend.WaitingClaimer = (*Store)(nil)
var _ backend.LeaseGetter = (*Store)(nil)

// message is a job as an SQS message body carries it.
type message struct {
	ID          string          `json:"id"`
	Queue       string          `json:"queue"`
	Data        json.RawMessage `json:"data"`
	MaxAttempts int             `json:"maxAttempts"`
	Backoff     backend.Backoff `json:"backoff"`
	// Attempts counted before this copy of the job was sent: a claim's
	// attempt is Attempts plus SQS's receive count of the copy. A release
	// or an early receive sends a new copy, so its receive is not counted.
	Attempts   int               `json:"attempts"`
	RunAt      time.Time         `json:"runAt"`
	CreatedAt  time.Time         `json:"createdAt"`
	LastError  *backend.JobError `json:"lastError,omitempty"`
	FinishedAt *time.Time        `json:"finishedAt,omitempty"` // dead letters
	// TimeoutMs and Traceparent travel with the job (issue 17).
	TimeoutMs   int64  `json:"timeoutMs,omitempty"`
	Traceparent string `json:"traceparent,omitempty"`
}

// claim is one claim this process made.
type claim struct {
	lease, queue, url, receipt string
	msg                        message
	attempts                   int
	status                     backend.JobStatus
	lastError                  *backend.JobError
	startedAt, expires         time.Time
	leaseLen                   time.Duration
	progress                   []byte
	stale                      bool // the job was claimed again since
}

// Open connects to SQS and checks that it answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := ValidatePrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	api := cfg.API
	if api == nil {
		var opts []func(*config.LoadOptions) error
		if cfg.Region != "" {
			opts = append(opts, config.WithRegion(cfg.Region))
		}
		ac, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("loading the AWS configuration: %w", err)
		}
		if ac.Region == "" {
			return nil, errors.New("no AWS region: set SQS_REGION (or AWS_REGION)")
		}
		api = awssqs.NewFromConfig(ac, func(o *awssqs.Options) {
			if cfg.Endpoint != "" {
				o.BaseEndpoint = aws.String(cfg.Endpoint)
			}
		})
	}
	s := New(api, cfg)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Ping(pctx); err != nil {
		return nil, err
	}
	return s, nil
}

// New returns a store over api without checking that it answers.
func New(api API, cfg Config) *Store {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.DeadLetterRetention <= 0 || cfg.DeadLetterRetention > retention {
		cfg.DeadLetterRetention = retention
	}
	return &Store{api: api, prefix: cfg.Prefix, log: cfg.Logger, poll: cfg.PollInterval, dlqTTL: max(cfg.DeadLetterRetention, minRetention),
		urls: map[string]string{}, claims: map[string]*claim{}, byID: map[string]*claim{}}
}

// ValidatePrefix checks a queue name prefix: what SQS allows in a name,
// short enough to leave room for the queue's own name.
func ValidatePrefix(p string) error {
	if len(p) > 40 {
		return fmt.Errorf("%q is longer than 40 characters (SQS queue names have 80 in all)", p)
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%q may hold only letters, digits, - and _ (what SQS allows in a queue name)", p)
		}
	}
	return nil
}

// JobCapabilities implements backend.JobStore; see the README's SQS section.
func (s *Store) JobCapabilities() backend.JobCapabilities {
	return backend.JobCapabilities{Name: "SQS"}
}

// sqsName is the SQS queue of a storaged queue. Storaged names may hold
// . and :, SQS names may not; '-' escapes them ("-p", "-c", and "-h" for
// '-' itself), so that the mapping is one to one and no queue's name ends
// like a dead letter queue's ("-dlq" never occurs in an escaped name).
func (s *Store) sqsName(queue string, dlq bool) (string, error) {
	var b strings.Builder
	b.WriteString(s.prefix)
	for i := 0; i < len(queue); i++ {
		switch c := queue[i]; c {
		case '.':
			b.WriteString("-p")
		case ':':
			b.WriteString("-c")
		case '-':
			b.WriteString("-h")
		default:
			b.WriteByte(c)
		}
	}
	if dlq {
		b.WriteString(dlqSuffix)
	}
	if b.Len()+len(dlqSuffix)*boolInt(!dlq) > maxNameLength {
		return "", backend.Errorf(backend.CodeInvalidArgument,
			"queue name %q is too long for SQS: with the prefix %q and %q it needs more than the %d characters SQS allows in a queue name", queue, s.prefix, dlqSuffix, maxNameLength)
	}
	// Every '-' of a queue name is encoded, so only a prefix ending in
	// '-' and the queue "dlq" can make a name that reads as a dead letter
	// queue's (found by FuzzQueueNames): refuse it rather than let the
	// dead letter scans take it for one.
	if !dlq && strings.HasSuffix(b.String(), dlqSuffix) {
		return "", backend.Errorf(backend.CodeInvalidArgument,
			"queue name %q with the prefix %q reads as an SQS dead letter queue (it ends in %q): choose another name or SQS_QUEUE_PREFIX", queue, s.prefix, dlqSuffix)
	}
	return b.String(), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// queueURL finds the URL of queue's SQS queue (or its dead letter queue).
// A missing queue is "" unless create, which creates it: storaged queues
// come into being with their first job, and so do their SQS queues.
func (s *Store) queueURL(ctx context.Context, queue string, dlq, create bool) (string, error) {
	name, err := s.sqsName(queue, dlq)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	u := s.urls[name]
	s.mu.Unlock()
	if u != "" {
		return u, nil
	}
	out, err := s.api.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err == nil {
		u = aws.ToString(out.QueueUrl)
	} else if isCode(err, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue") {
		if !create {
			return "", nil
		}
		ttl := retention
		if dlq {
			ttl = s.dlqTTL
		}
		c, err := s.api.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name),
			Attributes: map[string]string{string(types.QueueAttributeNameMessageRetentionPeriod): strconv.Itoa(int(ttl / time.Second))}})
		if err != nil {
			return "", s.translate(err, "creating queue "+name)
		}
		u = aws.ToString(c.QueueUrl)
	} else {
		return "", s.translate(err, "looking up queue "+name)
	}
	s.mu.Lock()
	s.urls[name] = u
	s.mu.Unlock()
	return u, nil
}

// forget drops a cached URL whose queue is gone.
func (s *Store) forget(err error) {
	if isCode(err, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue") {
		s.mu.Lock()
		s.urls = map[string]string{}
		s.mu.Unlock()
	}
}

// Insert sends the jobs, ten to a call. SQS has no transaction: if a call
// fails, the jobs of the calls before it stay (AtomicBatches false).
func (s *Store) Insert(ctx context.Context, p backend.InsertParams) ([]backend.Inserted, error) {
	now := backend.NowOr(p.Now)
	out := make([]backend.Inserted, len(p.Jobs))
	var sends []send
	for i, j := range p.Jobs {
		if j.Priority != 0 {
			return nil, backend.Errorf(backend.CodeInvalidArgument,
				"priority is not available on the SQS job queue: SQS delivers in no order (job %d has priority %d)", i, j.Priority)
		}
		if j.Key != "" {
			return nil, backend.Errorf(backend.CodeInvalidArgument,
				"dedupe keys are not available on the SQS job queue: SQS standard queues do not deduplicate (job %d has key %q)", i, j.Key)
		}
		runAt := now.Add(j.Delay)
		if j.HasRunAt {
			runAt = j.RunAt
		}
		m := message{ID: j.ID, Queue: p.Queue, Data: j.Data, MaxAttempts: j.MaxAttempts, Backoff: j.Backoff,
			RunAt: runAt, CreatedAt: now, TimeoutMs: j.Timeout.Milliseconds(), Traceparent: j.Trace}
		body, err := json.Marshal(m)
		if err != nil {
			return nil, backend.Wrap(err, backend.CodeInternal, "encoding job %d", i)
		}
		if len(body) > maxMessage {
			return nil, backend.Errorf(backend.CodePayloadTooLarge,
				"job %d makes an SQS message of %d bytes; SQS takes at most %d", i, len(body), maxMessage)
		}
		sends = append(sends, send{body: body, delay: delayUntil(runAt, now)})
		out[i] = backend.Inserted{ID: j.ID}
	}
	u, err := s.queueURL(ctx, p.Queue, false, true)
	if err != nil {
		return nil, err
	}
	if _, err := s.queueURL(ctx, p.Queue, true, true); err != nil {
		return nil, err
	}
	if failed, err := s.sendAll(ctx, u, sends); err != nil || len(failed) > 0 {
		if err == nil {
			err = backend.Errorf(backend.CodeUnavailable, "sqs: %d of %d jobs were not sent: %s", len(failed), len(sends), failed[0])
		}
		return nil, err
	}
	return out, nil
}

// delayUntil is the DelaySeconds that hides a message until runAt, or for
// as long as SQS can (the receive then hides it again).
func delayUntil(runAt, now time.Time) int32 {
	d := runAt.Sub(now)
	if d <= 0 {
		return 0
	}
	return int32(ceilSeconds(min(d, maxDelay))) //nolint:gosec // G115: at most 900 s
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// send is one message to send.
type send struct {
	body  []byte
	delay int32
	item  int // the settle item it belongs to, -1 for none
}

// sendAll sends messages in batches of at most ten and 256 KiB, eight
// calls at a time, and returns what failed per message (by index in
// sends, as text) or an error for a call that failed whole.
func (s *Store) sendAll(ctx context.Context, url string, sends []send) (map[int]string, error) {
	type chunk struct{ from, to int }
	var chunks []chunk
	for i := 0; i < len(sends); {
		j, size := i, 0
		for j < len(sends) && j-i < maxEntries && size+len(sends[j].body) <= maxMessage {
			size += len(sends[j].body)
			j++
		}
		chunks = append(chunks, chunk{i, j})
		i = j
	}
	var mu sync.Mutex
	failed := map[int]string{}
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, c := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			entries := make([]types.SendMessageBatchRequestEntry, 0, c.to-c.from)
			for k := c.from; k < c.to; k++ {
				entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(k)),
					MessageBody: aws.String(string(sends[k].body)), DelaySeconds: sends[k].delay})
			}
			out, err := s.api.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = s.translate(err, "sending messages")
				}
				return
			}
			for _, f := range out.Failed {
				k, _ := strconv.Atoi(aws.ToString(f.Id))
				failed[k] = aws.ToString(f.Code) + ": " + aws.ToString(f.Message)
			}
		}()
	}
	wg.Wait()
	return failed, firstErr
}

// Claim receives up to p.Max messages, ten a call, until SQS has no more
// to give. The visibility timeout is the lease, the receipt handle (with
// the queue's name) the lease token. A message received before its runAt
// (SQS delays by 15 minutes at most) is sent again, delayed, and not
// counted; one whose attempts are spent (its last lease ran out) goes to
// the dead letter queue with p.Expired.
func (s *Store) Claim(ctx context.Context, p backend.ClaimParams) (backend.Claimed, error) {
	return s.claim(ctx, p, 0)
}

// ClaimWait implements backend.WaitingClaimer with SQS's long polling: the
// first receive waits up to wait (in whole seconds, at most 20) for a
// message, and SQS answers it as soon as one is sent, through any daemon.
// The seconds are rounded down, but for a moment's slack (a poll of 15 s
// whose call starts a few milliseconds in is still one 15 s receive): a
// receive that outlived its caller would claim for no one. A queue that
// does not exist yet has nothing to wait on: it is looked for again after
// PollInterval (or when ctx ends).
func (s *Store) ClaimWait(ctx context.Context, p backend.ClaimParams, wait time.Duration) (backend.Claimed, error) {
	secs := int32(min((wait+backend.ClaimWaitSlack)/time.Second, backend.MaxClaimWait/time.Second)) //nolint:gosec // G115: at most 20
	return s.claim(ctx, p, secs)
}

// claim receives with the first receive waiting up to waitSecs.
func (s *Store) claim(ctx context.Context, p backend.ClaimParams, waitSecs int32) (backend.Claimed, error) {
	if p.Lease > maxVisibility {
		return backend.Claimed{}, backend.Errorf(backend.CodeInvalidArgument,
			"leaseMs must be at most %d on the SQS job queue (SQS's longest visibility timeout, 12 h)", maxVisibility.Milliseconds())
	}
	u, err := s.queueURL(ctx, p.Queue, false, false)
	if err == nil && u == "" && waitSecs > 0 {
		t := time.NewTimer(min(s.poll, time.Duration(waitSecs)*time.Second))
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if err != nil || u == "" {
		return backend.Claimed{}, err
	}
	now := backend.NowOr(p.Now)
	s.prune(now)
	vis := int32(ceilSeconds(p.Lease)) //nolint:gosec // G115: the lease was checked against maxVisibility (12 h) above
	var jobs []*backend.Job
	var again, dead []send
	var gone []string // receipts of messages replaced by a copy
	for len(jobs) < p.Max {
		r, err := s.api.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u),
			MaxNumberOfMessages: int32(min(maxEntries, p.Max-len(jobs))), VisibilityTimeout: vis, //nolint:gosec // G115: at most maxEntries (10)
			WaitTimeSeconds:             waitSecs,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
		// Only the first receive waits: after it the queue has what it has.
		waitSecs = 0
		if err != nil {
			s.forget(err)
			if len(jobs) > 0 {
				break
			}
			return backend.Claimed{}, s.translate(err, "receiving messages")
		}
		if len(r.Messages) == 0 {
			break
		}
		if p.Now.IsZero() {
			// A message sent while the receive was under way is not early.
			now = backend.NowOr(time.Time{})
		}
		for _, m := range r.Messages {
			var msg message
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &msg); err != nil || msg.ID == "" {
				// Not a storaged job: leave it hidden as long as SQS can
				// rather than delete someone's message.
				s.log.Warn("sqs: a message that is not a storaged job is in a job queue; hiding it for 12 h", "queue", p.Queue, "messageId", aws.ToString(m.MessageId))
				s.hide(ctx, u, aws.ToString(m.ReceiptHandle), int32(maxVisibility/time.Second))
				continue
			}
			receipt := aws.ToString(m.ReceiptHandle)
			if msg.RunAt.After(now) {
				body, _ := json.Marshal(msg)
				again = append(again, send{body: body, delay: delayUntil(msg.RunAt, now), item: -1})
				gone = append(gone, receipt)
				continue
			}
			rc, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
			attempts := msg.Attempts + max(rc, 1)
			if attempts > msg.MaxAttempts {
				e := p.Expired
				fin := now
				msg.Attempts, msg.LastError, msg.FinishedAt = attempts-1, &e, &fin
				body, _ := json.Marshal(msg)
				dead = append(dead, send{body: body, item: -1})
				gone = append(gone, receipt)
				continue
			}
			lease := makeLease(p.Queue, receipt, snapshot{Msg: msg, Attempts: attempts, LeaseMs: p.Lease.Milliseconds(), StartedAt: now})
			c := &claim{lease: lease, queue: p.Queue, url: u, receipt: receipt, msg: msg, attempts: attempts,
				status: backend.StatusProcessing, startedAt: now, expires: now.Add(p.Lease), leaseLen: p.Lease}
			s.mu.Lock()
			if old := s.byID[msg.ID]; old != nil && old.status == backend.StatusProcessing {
				old.stale = true
			}
			s.claims[lease] = c
			s.byID[msg.ID] = c
			s.mu.Unlock()
			jobs = append(jobs, c.job())
		}
	}
	if len(again)+len(dead) > 0 {
		s.replace(ctx, p.Queue, u, again, dead, gone)
	}
	return backend.Claimed{Jobs: jobs}, nil
}

// replace sends copies (again to the queue, dead to its dead letter queue)
// and then deletes the messages they replace. Sending first means that a
// failure leaves a duplicate, never a lost job; the messages not deleted
// come back after their visibility timeout and are handled again.
func (s *Store) replace(ctx context.Context, queue, u string, again, dead []send, receipts []string) {
	ok := true
	if len(again) > 0 {
		if f, err := s.sendAll(ctx, u, again); err != nil || len(f) > 0 {
			s.log.Warn("sqs: re-sending early or released jobs failed; they come back after their visibility timeout", "queue", queue, "err", err, "failed", len(f))
			ok = false
		}
	}
	if len(dead) > 0 {
		d, err := s.queueURL(ctx, queue, true, true)
		if err == nil {
			var f map[int]string
			f, err = s.sendAll(ctx, d, dead)
			if err == nil && len(f) > 0 {
				err = errors.New("some dead letters were not sent")
			}
		}
		if err != nil {
			s.log.Warn("sqs: moving jobs whose attempts are spent to the dead letter queue failed; they come back after their visibility timeout", "queue", queue, "err", err)
			ok = false
		}
	}
	if !ok {
		return
	}
	if refused, err := s.deleteAll(ctx, u, receipts); err != nil || len(refused) > 0 {
		s.log.Warn("sqs: messages replaced by a copy could not be deleted; they come back after their visibility timeout", "queue", queue, "err", err, "refused", len(refused))
	}
}

func (s *Store) hide(ctx context.Context, u, receipt string, secs int32) {
	_, err := s.api.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(u),
		Entries: []types.ChangeMessageVisibilityBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: aws.String(receipt), VisibilityTimeout: secs}}})
	if err != nil {
		s.log.Warn("sqs: changing a message's visibility failed", "err", err)
	}
}

// deleteAll deletes messages by receipt and returns, by index, those SQS
// refused (a receipt no longer valid) and an error for a failed call.
func (s *Store) deleteAll(ctx context.Context, u string, receipts []string) (map[int]bool, error) {
	refused := map[int]bool{}
	for i := 0; i < len(receipts); i += maxEntries {
		var entries []types.DeleteMessageBatchRequestEntry
		for k := i; k < min(i+maxEntries, len(receipts)); k++ {
			entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(k)), ReceiptHandle: aws.String(receipts[k])})
		}
		out, err := s.api.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(u), Entries: entries})
		if err != nil {
			return refused, s.translate(err, "deleting messages")
		}
		for _, f := range out.Failed {
			k, _ := strconv.Atoi(aws.ToString(f.Id))
			refused[k] = true
		}
	}
	return refused, nil
}

// setVisibility changes the visibility of messages by receipt, like
// deleteAll.
func (s *Store) setVisibility(ctx context.Context, u string, receipts []string, secs []int32) (map[int]bool, error) {
	refused := map[int]bool{}
	for i := 0; i < len(receipts); i += maxEntries {
		var entries []types.ChangeMessageVisibilityBatchRequestEntry
		for k := i; k < min(i+maxEntries, len(receipts)); k++ {
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(k)),
				ReceiptHandle: aws.String(receipts[k]), VisibilityTimeout: secs[k]})
		}
		out, err := s.api.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(u), Entries: entries})
		if err != nil {
			return refused, s.translate(err, "changing visibility")
		}
		for _, f := range out.Failed {
			k, _ := strconv.Atoi(aws.ToString(f.Id))
			refused[k] = true
		}
	}
	return refused, nil
}

// job is the claim as the API shows it.
func (c *claim) job() *backend.Job {
	m := c.msg
	started := c.startedAt
	j := &backend.Job{ID: m.ID, Queue: m.Queue, Data: m.Data, Status: c.status, Attempts: c.attempts,
		MaxAttempts: m.MaxAttempts, Backoff: m.Backoff, RunAt: m.RunAt, CreatedAt: m.CreatedAt, UpdatedAt: c.startedAt,
		StartedAt: &started, Lease: c.lease, LastError: m.LastError, TimeoutMs: m.TimeoutMs, Traceparent: m.Traceparent}
	if c.lastError != nil {
		j.LastError = c.lastError
	}
	j.Progress = c.progress
	if c.status == backend.StatusProcessing {
		exp := c.expires
		j.LeaseExpiresAt = &exp
	}
	return j
}

// prune forgets claims a minute after their lease ended: SQS has shown
// their messages again by then, and a repeated ack is no longer expected.
func (s *Store) prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastPrune) < time.Minute {
		return
	}
	s.lastPrune = now
	for lease, c := range s.claims {
		if now.Sub(c.expires) > time.Minute {
			delete(s.claims, lease)
			if s.byID[c.msg.ID] == c {
				delete(s.byID, c.msg.ID)
			}
		}
	}
}

// snapshot is the claim a lease token carries, so that any daemon (or
// this one after a restart) can fail or release it: SQS cannot give a
// message back by its receipt handle, and fail and release send a copy of
// the job. Like the receipt handle itself, it is the claimant's to hold;
// a client that forged one could only send itself a job it could as well
// have enqueued.
type snapshot struct {
	Msg       message   `json:"m"`
	Attempts  int       `json:"a"`
	LeaseMs   int64     `json:"l"`
	StartedAt time.Time `json:"s"`
}

// makeLease is the lease token of a claim: "queue|snapshot|receipt", the
// snapshot base64url-encoded JSON, or empty for a job too large to carry.
// The receipt handle comes last, whatever it holds.
func makeLease(queue, receipt string, snap snapshot) string {
	enc := ""
	if b, err := json.Marshal(snap); err == nil && snap.Msg.ID != "" && len(b) <= maxSnapshot {
		enc = base64.RawURLEncoding.EncodeToString(b)
	}
	return queue + "|" + enc + "|" + receipt
}

// parseLease splits a lease token into its queue, the claim it carries
// (nil for none) and its receipt handle. A token of the form
// "queue|receipt" (before snapshots) has none.
func parseLease(lease string) (queue string, snap *snapshot, receipt string, ok bool) {
	queue, rest, ok := strings.Cut(lease, "|")
	if !ok || backend.ValidateName("queue", queue) != nil {
		return "", nil, "", false
	}
	enc, receipt, three := strings.Cut(rest, "|")
	if !three {
		enc, receipt = "", rest
	}
	if receipt == "" {
		return "", nil, "", false
	}
	if enc != "" {
		var sn snapshot
		b, err := base64.RawURLEncoding.DecodeString(enc)
		// A token comes from the client: what it claims is checked as an
		// enqueue and a dequeue would be, so that a forged one cannot keep
		// a claim in memory past the longest lease or count attempts
		// below one.
		if err != nil || json.Unmarshal(b, &sn) != nil || backend.ValidateID(sn.Msg.ID) != nil || sn.Msg.Queue != queue ||
			sn.Attempts < 1 || sn.LeaseMs < 1 || sn.LeaseMs > backend.MaxLease.Milliseconds() {
			return "", nil, "", false
		}
		snap = &sn
	}
	return queue, snap, receipt, true
}

// foreignClaim is the claim a lease token carries, for a lease this
// process does not know: another daemon's, or its own before a restart.
// It is kept with this process's claims from then on, so that a repeated
// settle through this daemon is told from a stale one. Called with s.mu
// held; it lets go of it while looking the queue up.
func (s *Store) foreignClaim(ctx context.Context, it backend.SettleItem, now time.Time) (*claim, error) {
	queue, snap, receipt, ok := parseLease(it.Lease)
	if !ok || snap == nil || snap.Msg.ID != it.ID {
		return nil, nil
	}
	s.mu.Unlock()
	u, err := s.queueURL(ctx, queue, false, false)
	s.mu.Lock()
	if err != nil || u == "" {
		return nil, err
	}
	if c := s.claims[it.Lease]; c != nil {
		return c, nil // a concurrent settle took it in meanwhile
	}
	leaseLen := time.Duration(snap.LeaseMs) * time.Millisecond
	c := &claim{lease: it.Lease, queue: queue, url: u, receipt: receipt, msg: snap.Msg, attempts: snap.Attempts,
		status: backend.StatusProcessing, startedAt: snap.StartedAt, expires: now.Add(leaseLen), leaseLen: leaseLen}
	s.claims[it.Lease] = c
	return c, nil
}

// GetByLease implements backend.LeaseGetter: the claim of each lease, as
// this process knows it or as its token carries it (nil for neither), for
// fail's retry decision through any daemon.
func (s *Store) GetByLease(_ context.Context, refs []backend.LeaseRef) ([]*backend.Job, error) {
	out := make([]*backend.Job, len(refs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range refs {
		if c := s.claims[r.Lease]; c != nil && c.msg.ID == r.ID {
			out[i] = c.job()
			if c.stale {
				out[i].Status = backend.StatusProcessing
			}
			continue
		}
		if _, snap, _, ok := parseLease(r.Lease); ok && snap != nil && snap.Msg.ID == r.ID {
			c := &claim{lease: r.Lease, queue: snap.Msg.Queue, msg: snap.Msg, attempts: snap.Attempts,
				status: backend.StatusProcessing, startedAt: snap.StartedAt}
			out[i] = c.job()
			continue
		}
		if c := s.byID[r.ID]; c != nil {
			out[i] = c.job()
		}
	}
	return out, nil
}

// op is one SQS change of a Settle: what to send, then what to delete or
// show again, for one item.
type op struct {
	item    int
	c       *claim // nil: a claim of another process
	url     string
	receipt string
	send    *send // a copy to send first (to dlqURL if dead)
	dead    bool
	delete  bool
	vis     int32 // visibility to set when !delete and send == nil
	then    backend.JobStatus
}

// Settle applies each item through SQS: ack deletes the message,
// heartbeat and retry change its visibility, fail sends it to the dead
// letter queue and release sends a fresh copy (so that the attempt is not
// counted) before deleting the claimed one. What this process knows of
// its claims answers stale and repeated items without asking SQS.
func (s *Store) Settle(ctx context.Context, p backend.SettleParams) ([]backend.Settled, error) {
	now := backend.NowOr(p.Now)
	out := make([]backend.Settled, len(p.Items))
	var ops []op
	var revive []int
	s.mu.Lock()
	for i, it := range p.Items {
		switch it.Kind {
		case backend.Revive:
			revive = append(revive, i)
			continue
		case backend.Cancel:
			continue // refused by the service (JobCapabilities.Cancel); not found here
		}
		c := s.claims[it.Lease]
		if c == nil || c.msg.ID != it.ID {
			fc, err := s.foreignClaim(ctx, it, now)
			if err != nil {
				s.mu.Unlock()
				return nil, err
			}
			if fc != nil {
				c = fc
			}
		}
		if c == nil || c.msg.ID != it.ID {
			if k := s.byID[it.ID]; k != nil {
				st := k.status
				if k.stale {
					st = backend.StatusProcessing
				}
				out[i] = backend.Settled{Found: true, Queue: k.queue, Status: st, Lease: k.lease}
				continue
			}
			queue, _, receipt, ok := parseLease(it.Lease)
			if !ok {
				continue // no such job, as far as anyone can tell
			}
			// A claim of another process, or of this one before a restart,
			// whose token carries no job (larger than maxSnapshot): what
			// needs only the receipt works; fail and release need the job,
			// which only the claiming process has (SettleAnywhere).
			o := op{item: i, receipt: receipt}
			switch it.Kind {
			case backend.Complete:
				o.delete, o.then = true, backend.StatusCompleted
			case backend.Extend, backend.Progress:
				o.vis, o.then = int32(ceilSeconds(min(orDefault(it.Delay, backend.DefaultLease), maxVisibility))), backend.StatusProcessing //nolint:gosec // G115: at most maxVisibility (12 h)
			default:
				continue
			}
			s.mu.Unlock()
			u, err := s.queueURL(ctx, queue, false, false)
			s.mu.Lock()
			if err != nil {
				s.mu.Unlock()
				return nil, err
			}
			if u == "" {
				continue
			}
			o.url = u
			out[i] = backend.Settled{Found: true, Queue: queue, Status: backend.StatusProcessing}
			ops = append(ops, o)
			continue
		}
		out[i] = backend.Settled{Found: true, Queue: c.queue, Status: c.status, Lease: c.lease}
		if c.stale {
			out[i].Status, out[i].Lease = backend.StatusProcessing, ""
			if k := s.byID[it.ID]; k != nil {
				out[i].Lease = k.lease
			}
			continue
		}
		if c.status != backend.StatusProcessing {
			continue
		}
		o := op{item: i, c: c, url: c.url, receipt: c.receipt}
		switch it.Kind {
		case backend.Complete:
			o.delete, o.then = true, backend.StatusCompleted
		case backend.Extend, backend.Progress:
			// Progress is kept with the claim (getJob, which would show
			// it, is refused on SQS); it extends the lease like a heartbeat.
			d := min(orDefault(it.Delay, c.leaseLen), maxVisibility)
			o.vis, o.then = int32(ceilSeconds(d)), backend.StatusProcessing //nolint:gosec // G115: at most maxVisibility (12 h)
		case backend.Retry:
			o.then = backend.StatusPending
			if it.Delay <= maxVisibility {
				o.vis = int32(ceilSeconds(it.Delay)) //nolint:gosec // G115: at most maxVisibility (12 h), checked above
			} else {
				m := c.msg
				m.Attempts, m.RunAt, m.LastError = c.attempts, now.Add(it.Delay), it.Error
				body, _ := json.Marshal(m)
				o.send, o.delete = &send{body: body, delay: delayUntil(m.RunAt, now), item: i}, true
			}
		case backend.Fail:
			m := c.msg
			fin := now
			m.Attempts, m.LastError, m.FinishedAt = c.attempts, it.Error, &fin
			body, _ := json.Marshal(m)
			o.send, o.dead, o.delete, o.then = &send{body: body, item: i}, true, true, backend.StatusFailed
		case backend.Release:
			m := c.msg
			m.Attempts = c.attempts - 1
			body, _ := json.Marshal(m)
			o.send, o.delete, o.then = &send{body: body, delay: delayUntil(m.RunAt, now), item: i}, true, backend.StatusPending
		}
		ops = append(ops, o)
	}
	s.mu.Unlock()

	if err := s.apply(ctx, p.Items, ops, out, now); err != nil {
		return nil, err
	}
	if len(revive) > 0 {
		if err := s.revive(ctx, p.Items, revive, out, now); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// apply runs ops against SQS: copies first, then deletes and visibility
// changes, each queue's in batch calls. An item SQS refuses (its receipt
// is no longer valid: the job was received again elsewhere) is stale.
func (s *Store) apply(ctx context.Context, items []backend.SettleItem, ops []op, out []backend.Settled, now time.Time) error {
	sendFailed := map[int]bool{}
	type dest struct {
		url  string
		dead bool
	}
	sends := map[dest][]int{}
	for k, o := range ops {
		if o.send != nil {
			d := dest{o.url, o.dead}
			sends[d] = append(sends[d], k)
		}
	}
	for d, ks := range sends {
		u := d.url
		if d.dead {
			var err error
			if u, err = s.queueURL(ctx, ops[ks[0]].c.queue, true, true); err != nil {
				return err
			}
		}
		batch := make([]send, len(ks))
		for i, k := range ks {
			batch[i] = *ops[k].send
		}
		failed, err := s.sendAll(ctx, u, batch)
		if err != nil {
			return err
		}
		for i := range failed {
			sendFailed[ks[i]] = true
		}
	}
	if len(sendFailed) > 0 {
		return backend.Errorf(backend.CodeUnavailable, "sqs: %d messages of a settle were not sent; nothing of those items changed", len(sendFailed))
	}
	type group struct {
		url    string
		delete bool
	}
	groups := map[group][]int{}
	for k, o := range ops {
		g := group{o.url, o.delete}
		groups[g] = append(groups[g], k)
	}
	for g, ks := range groups {
		receipts := make([]string, len(ks))
		secs := make([]int32, len(ks))
		for i, k := range ks {
			receipts[i], secs[i] = ops[k].receipt, ops[k].vis
		}
		var refused map[int]bool
		var err error
		if g.delete {
			refused, err = s.deleteAll(ctx, g.url, receipts)
		} else {
			refused, err = s.setVisibility(ctx, g.url, receipts, secs)
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		for i, k := range ks {
			o := ops[k]
			if refused[i] {
				if o.send != nil {
					s.log.Warn("sqs: a settle's copy was sent but the claimed message could not be deleted (its lease went stale); the job may run twice", "job", items[o.item].ID)
				}
				out[o.item].Status, out[o.item].Lease = backend.StatusProcessing, ""
				if o.c != nil {
					o.c.stale = true
				}
				continue
			}
			out[o.item].Applied = true
			if o.c != nil {
				out[o.item].Trace = o.c.msg.Traceparent
				o.c.status = o.then
				if items[o.item].Error != nil {
					o.c.lastError = items[o.item].Error
				}
				if items[o.item].Kind == backend.Progress {
					o.c.progress = items[o.item].Value
				}
				if o.then == backend.StatusProcessing {
					o.c.expires = now.Add(time.Duration(o.vis) * time.Second)
				}
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// deadLetter is a message of a dead letter queue, seen by a scan.
type deadLetter struct {
	msg     message
	receipt string
}

// scan receives every message of a dead letter queue (up to scanLimit),
// hiding each for scanHide seconds: SQS can show a queue's messages only
// by receiving them. The caller deletes some and shows the rest again.
func (s *Store) scan(ctx context.Context, u string) ([]deadLetter, error) {
	var out []deadLetter
	for len(out) < scanLimit {
		r, err := s.api.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u), MaxNumberOfMessages: maxEntries, VisibilityTimeout: scanHide})
		if err != nil {
			s.show(ctx, u, out)
			return nil, s.translate(err, "reading dead letters")
		}
		if len(r.Messages) == 0 {
			break
		}
		for _, m := range r.Messages {
			var msg message
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &msg); err != nil {
				continue // not ours: it shows again after scanHide
			}
			out = append(out, deadLetter{msg: msg, receipt: aws.ToString(m.ReceiptHandle)})
		}
	}
	return out, nil
}

// show makes scanned dead letters visible again.
func (s *Store) show(ctx context.Context, u string, dls []deadLetter) {
	if len(dls) == 0 {
		return
	}
	receipts := make([]string, len(dls))
	for i, d := range dls {
		receipts[i] = d.receipt
	}
	if _, err := s.setVisibility(ctx, u, receipts, make([]int32, len(dls))); err != nil {
		s.log.Warn("sqs: showing dead letters again failed; they show after a minute", "err", err)
	}
}

// dlqURLs are the dead letter queues of queue, or of every queue of this
// store's prefix when queue is "".
func (s *Store) dlqURLs(ctx context.Context, queue string) ([]string, error) {
	if queue != "" {
		u, err := s.queueURL(ctx, queue, true, false)
		if err != nil || u == "" {
			return nil, err
		}
		return []string{u}, nil
	}
	var out []string
	in := &awssqs.ListQueuesInput{QueueNamePrefix: aws.String(s.prefix), MaxResults: aws.Int32(1000)}
	for {
		r, err := s.api.ListQueues(ctx, in)
		if err != nil {
			return nil, s.translate(err, "listing queues")
		}
		for _, u := range r.QueueUrls {
			if strings.HasSuffix(u, dlqSuffix) {
				out = append(out, u)
			}
		}
		if r.NextToken == nil {
			return out, nil
		}
		in.NextToken = r.NextToken
	}
}

// revive brings dead letters back: each found is sent to its queue with
// its attempts back to 0 and deleted from the dead letter queue.
func (s *Store) revive(ctx context.Context, items []backend.SettleItem, idx []int, out []backend.Settled, now time.Time) error {
	want := map[string]int{}
	for _, i := range idx {
		want[items[i].ID] = i
	}
	urls, err := s.dlqURLs(ctx, "")
	if err != nil {
		return err
	}
	for _, d := range urls {
		if len(want) == 0 {
			break
		}
		dls, err := s.scan(ctx, d)
		if err != nil {
			return err
		}
		var keep []deadLetter
		for _, dl := range dls {
			i, ok := want[dl.msg.ID]
			if !ok {
				keep = append(keep, dl)
				continue
			}
			delete(want, dl.msg.ID)
			m := dl.msg
			m.Attempts, m.FinishedAt, m.RunAt = 0, nil, now
			body, _ := json.Marshal(m)
			u, err := s.queueURL(ctx, m.Queue, false, true)
			if err == nil {
				var f map[int]string
				f, err = s.sendAll(ctx, u, []send{{body: body, item: -1}})
				if err == nil && len(f) > 0 {
					err = backend.Errorf(backend.CodeUnavailable, "sqs: sending the revived job failed")
				}
			}
			if err != nil {
				s.show(ctx, d, append(keep, dl))
				return err
			}
			if _, err := s.deleteAll(ctx, d, []string{dl.receipt}); err != nil {
				s.log.Warn("sqs: a revived job's dead letter could not be deleted; it shows again", "job", m.ID, "err", err)
			}
			out[i] = backend.Settled{Applied: true, Found: true, Queue: m.Queue, Status: backend.StatusPending}
		}
		s.show(ctx, d, keep)
	}
	return nil
}

// Get answers from this process's claims (for fail's decision); jobs it
// has not claimed are nil: SQS cannot look a message up by id, so getJob
// is refused by the service (JobCapabilities.GetByID).
func (s *Store) Get(_ context.Context, ids []string) ([]*backend.Job, error) {
	out := make([]*backend.Job, len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		if c := s.byID[id]; c != nil {
			out[i] = c.job()
			if c.lease != "" && c.stale {
				out[i].Status = backend.StatusProcessing
			}
		}
	}
	return out, nil
}

// Stats are SQS's approximate counts: pending (visible and delayed),
// processing (in flight) and failed (the dead letter queue). Completed
// and cancelled jobs are not kept, so not counted (ExactStats false).
func (s *Store) Stats(ctx context.Context, queues []string) ([]backend.QueueStats, error) {
	out := make([]backend.QueueStats, len(queues))
	for i, q := range queues {
		out[i].Queue = q
		for _, dlq := range []bool{false, true} {
			u, err := s.queueURL(ctx, q, dlq, false)
			if err != nil {
				return nil, err
			}
			if u == "" {
				continue
			}
			r, err := s.api.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(u), AttributeNames: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
				types.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
			if err != nil {
				s.forget(err)
				return nil, s.translate(err, "reading queue attributes")
			}
			n := func(a types.QueueAttributeName) int64 {
				v, _ := strconv.ParseInt(r.Attributes[string(a)], 10, 64)
				return v
			}
			visible, hidden, delayed := n(types.QueueAttributeNameApproximateNumberOfMessages),
				n(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible), n(types.QueueAttributeNameApproximateNumberOfMessagesDelayed)
			if dlq {
				out[i].Failed = visible + hidden + delayed
			} else {
				out[i].Pending, out[i].Processing = visible+delayed, hidden
			}
		}
	}
	return out, nil
}

// ListFailed scans the queue's dead letter queue and pages through it,
// newest first.
func (s *Store) ListFailed(ctx context.Context, queue string, p backend.ListParams) ([]*backend.Job, error) {
	urls, err := s.dlqURLs(ctx, queue)
	if err != nil || len(urls) == 0 {
		return nil, err
	}
	dls, err := s.scan(ctx, urls[0])
	if err != nil {
		return nil, err
	}
	s.show(ctx, urls[0], dls)
	sort.Slice(dls, func(a, b int) bool {
		fa, fb := finished(dls[a].msg), finished(dls[b].msg)
		if !fa.Equal(fb) {
			return fa.After(fb)
		}
		return dls[a].msg.ID > dls[b].msg.ID
	})
	var out []*backend.Job
	for i := p.Offset; i < len(dls) && len(out) < p.Limit; i++ {
		m := dls[i].msg
		fin := finished(m)
		out = append(out, &backend.Job{ID: m.ID, Queue: m.Queue, Data: m.Data, Status: backend.StatusFailed, Attempts: m.Attempts,
			MaxAttempts: m.MaxAttempts, Backoff: m.Backoff, RunAt: m.RunAt, CreatedAt: m.CreatedAt, UpdatedAt: fin,
			FinishedAt: &fin, LastError: m.LastError})
	}
	return out, nil
}

func finished(m message) time.Time {
	if m.FinishedAt != nil {
		return *m.FinishedAt
	}
	return m.CreatedAt
}

// DeleteFinished deletes the dead letters of a queue (purgeFailed).
// Completed and cancelled jobs are not kept on SQS (an ack deletes the
// message), and SQS expires dead letters itself after the dead letter
// queue's retention, so pruning every queue (Queue "") does nothing:
// scanning every dead letter queue each minute would hide dead letters
// from listFailed while it ran.
func (s *Store) DeleteFinished(ctx context.Context, p backend.DeleteParams) (int, error) {
	failed := false
	for _, st := range p.Statuses {
		failed = failed || st == backend.StatusFailed
	}
	if !failed || p.Queue == "" {
		return 0, nil
	}
	urls, err := s.dlqURLs(ctx, p.Queue)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range urls {
		dls, err := s.scan(ctx, u)
		if err != nil {
			return n, err
		}
		var del []string
		var keep []deadLetter
		for _, dl := range dls {
			if p.Before.IsZero() || finished(dl.msg).Before(p.Before) {
				del = append(del, dl.receipt)
			} else {
				keep = append(keep, dl)
			}
		}
		s.show(ctx, u, keep)
		refused, err := s.deleteAll(ctx, u, del)
		n += len(del) - len(refused)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Watch does nothing: SQS tells no one of new messages; long polls look again every
// PollInterval (and wake at once for this process's own changes).
func (s *Store) Watch(backend.Watcher) {}

// PollInterval is how often a long poll looks again.
func (s *Store) PollInterval() time.Duration { return s.poll }

// Ping lists at most one queue of the prefix: it proves the endpoint, the
// region and the credentials.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.api.ListQueues(ctx, &awssqs.ListQueuesInput{QueueNamePrefix: aws.String(s.prefix), MaxResults: aws.Int32(1)})
	if err != nil {
		return s.translate(err, "listing queues")
	}
	return nil
}

// Close has nothing to close: the SDK's client holds idle connections only.
func (s *Store) Close() error { return nil }

// translate turns an SDK error into a backend error: throttling and
// transport errors are unavailable (worth a retry), the rest internal.
// The SDK's messages name the operation, never the credentials.
func (s *Store) translate(err error, what string) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "RequestThrottled", "ServiceUnavailable", "InternalError", "InternalFailure", "KmsThrottled":
			return backend.Wrap(err, backend.CodeUnavailable, "sqs: %s: %s", what, ae.ErrorMessage())
		}
		return backend.Wrap(err, backend.CodeInternal, "sqs: %s: %s: %s", what, ae.ErrorCode(), ae.ErrorMessage())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return backend.Wrap(err, backend.CodeUnavailable, "sqs: %s: timed out", what)
	}
	return backend.Wrap(err, backend.CodeUnavailable, "sqs: %s: %v", what, err)
}

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	var qe *types.QueueDoesNotExist
	return errors.As(err, &qe)
}
