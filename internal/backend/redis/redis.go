// Package redis is the job queue port on Redis (go-redis/v9). Every state
// change of a job is one Lua script (lua/*.lua), so it is atomic however
// many daemons share the Redis: claims cannot hand one job to two workers,
// and an acknowledgement, a failure and a lease expiry cannot interleave.
//
// Layout under the prefix P (STORAGED_REDIS_PREFIX):
//
//	P:job:<id>              hash: the job's fields
//	P:q:<queue>:ready       zset: claimable jobs, score -priority, member runAt:id
//	P:q:<queue>:scheduled   zset: pending jobs whose runAt is ahead, score runAt
//	P:q:<queue>:leases      zset: claimed jobs, score lease expiry
//	P:q:<queue>:<status>    zset: completed, failed, cancelled jobs, score finishedAt
//	P:q:<queue>:keys        hash: dedupe key -> id of the job holding it
//	P:q:<queue>:counts      hash: status -> number of jobs
//	P:queues                set: every queue name (for pruning)
//	P:wake                  channel: queue names, published on enqueue and retry
//
// Job keys are computed inside the scripts rather than passed as KEYS, so
// the backend needs one Redis (or a primary with replicas), not a Cluster.
// Durability is Redis's: see the README ("Redis job queue").
package redis

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	goredis "github.com/redis/go-redis/v9"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/wakeup"
	"github.com/storaged/storaged/internal/batch"
)

var _ backend.JobQueueBackend = (*JobQueueBackend)(nil)

// Config configures the backend.
type Config struct {
	// URL is a redis:// or rediss:// URL (or unix://), as go-redis parses it.
	URL string
	// Prefix namespaces every key; default "storaged".
	Prefix string
	// PollInterval bounds a long poll's sleep between claims when no
	// wake-up arrives (a publish lost during a reconnect); default 1s.
	PollInterval time.Duration
	Logger       *slog.Logger
}

//go:embed lua/*.lua
var luaFiles embed.FS

func script(name string) *goredis.Script {
	prelude, err := luaFiles.ReadFile("lua/prelude.lua")
	if err != nil {
		panic(err)
	}
	body, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(err)
	}
	return goredis.NewScript(string(prelude) + "\n" + string(body))
}

var (
	enqueueScript   = script("enqueue")
	dequeueScript   = script("dequeue")
	ackScript       = script("ack")
	failScript      = script("fail")
	heartbeatScript = script("heartbeat")
	cancelScript    = script("cancel")
	retryScript     = script("retry")
	deleteScript    = script("delete")
)

// deleteBatch bounds the jobs one purge or prune script deletes, so that
// Redis, which runs one script at a time, never stalls for long.
const deleteBatch = 500

// JobQueueBackend is the Redis job queue.
type JobQueueBackend struct {
	// Concurrent dequeues of one queue (and lease length) share one
	// script call, and concurrent acks another: Redis runs one script at a
	// time, so fewer, bigger ones drain faster.
	claims batch.Group[claimKey, struct{}, claimResult]
	acks   batch.Batcher[ackReq, error]

	rdb     *goredis.Client
	prefix  string
	poll    time.Duration
	log     *slog.Logger
	waiters wakeup.Set
	closed  atomic.Bool
	pubsub  *goredis.PubSub
	wg      sync.WaitGroup
}

type claimKey struct {
	queue string
	lease time.Duration
}

// claimResult is one dequeue's share of a batch: a job, or how long until
// the queue's next scheduled job or lease expiry (negative: none).
type claimResult struct {
	job  *backend.Job
	next time.Duration
}

type ackReq struct{ id, lease string }

// Open connects, checks that Redis answers and subscribes to wake-ups.
func Open(ctx context.Context, cfg Config) (*JobQueueBackend, error) {
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("not a Redis URL: %v", err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "storaged"
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Long polls block in Go, not in Redis, so the pool only needs to cover
	// concurrent scripts; go-redis's default (10 per CPU) does.
	rdb := goredis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("Redis at %s does not answer: %v", opts.Addr, err)
	}
	b := &JobQueueBackend{rdb: rdb, prefix: cfg.Prefix, poll: cfg.PollInterval, log: cfg.Logger}
	b.claims.Run = func(ctx context.Context, k claimKey, reqs []struct{}) ([]claimResult, error) {
		return b.claimBatch(ctx, k.queue, k.lease, len(reqs))
	}
	b.acks.Run = b.ackBatch
	b.warnIfVolatile(pctx)
	b.pubsub = rdb.Subscribe(ctx, b.prefix+":wake")
	b.wg.Add(1)
	go b.listen()
	return b, nil
}

// warnIfVolatile logs when Redis would lose acknowledged enqueues on a
// restart. CONFIG may be renamed away on managed Redis; then it says
// nothing.
func (b *JobQueueBackend) warnIfVolatile(ctx context.Context) {
	v, err := b.rdb.ConfigGet(ctx, "appendonly").Result()
	if err == nil && v["appendonly"] == "no" {
		b.log.Warn("Redis runs without appendonly: jobs enqueued since its last snapshot are lost if Redis restarts; set appendonly yes (and appendfsync always for every acknowledged enqueue)")
	}
}

// listen wakes local long polls on every publish. go-redis resubscribes
// after a reconnect; publishes sent meanwhile are lost, so each
// (re)subscription wakes everyone.
func (b *JobQueueBackend) listen() {
	defer b.wg.Done()
	for msg := range b.pubsub.ChannelWithSubscriptions() {
		switch m := msg.(type) {
		case *goredis.Message:
			b.waiters.Wake(m.Payload)
		case *goredis.Subscription:
			b.waiters.WakeAll()
		}
	}
}

func (b *JobQueueBackend) jobKey(id string) string { return b.prefix + ":job:" + id }

// Enqueue implements backend.JobQueueBackend.
func (b *JobQueueBackend) Enqueue(ctx context.Context, queue string, jobs []backend.EnqueueParams) ([]string, error) {
	args := make([]any, 0, 2+10*len(jobs))
	args = append(args, b.prefix, queue)
	for i := range jobs {
		p := &jobs[i]
		if err := p.Validate(); err != nil {
			return nil, err
		}
		runAt := ""
		if p.HasRunAt() {
			runAt = strconv.FormatInt(p.RunAt.UnixMilli(), 10)
		}
		args = append(args, backend.NewID(), []byte(p.Data), p.Priority, p.MaxAttempts,
			string(p.Backoff.Type), p.Backoff.DelayMs, p.Backoff.MaxDelayMs, p.Key, runAt, p.Delay.Milliseconds())
	}
	res, err := enqueueScript.Run(ctx, b.rdb, nil, args...).StringSlice()
	if err != nil {
		return nil, translate(err)
	}
	b.waiters.Wake(queue)
	return res, nil
}

// Dequeue implements backend.JobQueueBackend.
func (b *JobQueueBackend) Dequeue(ctx context.Context, queue string, p backend.DequeueParams) (*backend.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return b.waiters.Poll(ctx, queue, wakeup.PollParams{Wait: p.Wait, MaxSleep: b.poll, Closed: b.closed.Load},
		func() (*backend.Job, time.Duration, error) {
			res, err := b.claims.Do(ctx, claimKey{queue, p.Lease}, struct{}{})
			return res.job, res.next, translate(err)
		})
}

// claimBatch claims up to n jobs in one script; the i-th request gets the
// i-th job in claim order, or the wait until the next event.
func (b *JobQueueBackend) claimBatch(ctx context.Context, queue string, lease time.Duration, n int) ([]claimResult, error) {
	args := make([]any, 0, 3+n)
	args = append(args, b.prefix, queue, lease.Milliseconds())
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = backend.NewLease()
		args = append(args, tokens[i])
	}
	res, err := dequeueScript.Run(ctx, b.rdb, nil, args...).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]claimResult, n)
	next, _ := res[0].(int64)
	for i := range out {
		out[i].next = time.Duration(next) * time.Millisecond
		if i+1 < len(res) {
			flat, _ := res[i+1].([]any)
			j, err := parseJob(flat)
			if err != nil {
				return nil, err
			}
			j.Lease = tokens[i]
			out[i].job = j
		}
	}
	return out, nil
}

// Acknowledge implements backend.JobQueueBackend.
func (b *JobQueueBackend) Acknowledge(ctx context.Context, id, lease string) error {
	err, berr := b.acks.Do(ctx, ackReq{id, lease})
	if berr != nil {
		return translate(berr)
	}
	return err
}

func (b *JobQueueBackend) ackBatch(ctx context.Context, reqs []ackReq) ([]error, error) {
	args := make([]any, 0, 1+2*len(reqs))
	args = append(args, b.prefix)
	for _, r := range reqs {
		args = append(args, r.id, r.lease)
	}
	words, err := ackScript.Run(ctx, b.rdb, nil, args...).StringSlice()
	if err != nil {
		return nil, err
	}
	out := make([]error, len(reqs))
	for i, r := range reqs {
		out[i] = answer(words[i], r.id)
	}
	return out, nil
}

// Fail implements backend.JobQueueBackend.
func (b *JobQueueBackend) Fail(ctx context.Context, p backend.FailParams) error {
	lastErr, err := backend.Marshal(p.Error)
	if err != nil {
		return backend.Errorf(backend.CodeInvalidArgument, "error: %v", err)
	}
	retry, delay := "0", int64(0)
	if p.Retry {
		// The delay is backend.Backoff's, computed here so that the retry
		// schedule is written once; the script refuses a stale lease, so
		// the attempts read here are those of the claim being failed.
		f, err := b.rdb.HMGet(ctx, b.jobKey(p.ID), "attempts", "backoffType", "backoffDelayMs", "backoffMaxDelayMs").Result()
		if err != nil {
			return translate(err)
		}
		attempts := atoi(f[0])
		bo := backend.Backoff{Type: backend.BackoffType(str(f[1])), DelayMs: int64(atoi(f[2])), MaxDelayMs: int64(atoi(f[3]))}
		retry, delay = "1", bo.Delay(attempts).Milliseconds()
	}
	return b.change(ctx, failScript, p.ID, b.prefix, p.ID, p.Lease, retry, lastErr, delay)
}

// Heartbeat implements backend.JobQueueBackend.
func (b *JobQueueBackend) Heartbeat(ctx context.Context, p backend.HeartbeatParams) error {
	return b.change(ctx, heartbeatScript, p.ID, b.prefix, p.ID, p.Lease, p.Extend.Milliseconds())
}

// Cancel implements backend.JobQueueBackend.
func (b *JobQueueBackend) Cancel(ctx context.Context, id string) error {
	return b.change(ctx, cancelScript, id, b.prefix, id)
}

// RetryFailed implements backend.JobQueueBackend.
func (b *JobQueueBackend) RetryFailed(ctx context.Context, id string) error {
	return b.change(ctx, retryScript, id, b.prefix, id)
}

// change runs a script that answers "ok" or an error word (lua/prelude.lua,
// claimed).
func (b *JobQueueBackend) change(ctx context.Context, s *goredis.Script, id string, args ...any) error {
	word, err := s.Run(ctx, b.rdb, nil, args...).Text()
	if err != nil {
		return translate(err)
	}
	return answer(word, id)
}

// answer turns a script's answer about job id into the port's error.
func answer(word, id string) error {
	switch {
	case word == "ok":
		return nil
	case word == "not_found":
		return backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	case word == "stale":
		return backend.Errorf(backend.CodeConflict, "lease is stale: job %q was claimed again", id)
	case strings.HasPrefix(word, "status:"):
		return backend.Errorf(backend.CodeConflict, "job %q is %s", id, strings.TrimPrefix(word, "status:"))
	case strings.HasPrefix(word, "key:"):
		return backend.Errorf(backend.CodeConflict, "job %q holds the key of job %q now", strings.TrimPrefix(word, "key:"), id)
	}
	return backend.Errorf(backend.CodeInternal, "redis: unexpected script answer %q", word)
}

// GetJob implements backend.JobQueueBackend.
func (b *JobQueueBackend) GetJob(ctx context.Context, id string) (*backend.Job, error) {
	res, err := b.rdb.HGetAll(ctx, b.jobKey(id)).Result()
	if err != nil {
		return nil, translate(err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return jobFromMap(res)
}

// Stats implements backend.JobQueueBackend.
func (b *JobQueueBackend) Stats(ctx context.Context, queue string) (backend.QueueStats, error) {
	s := backend.QueueStats{Queue: queue}
	res, err := b.rdb.HGetAll(ctx, b.prefix+":q:"+queue+":counts").Result()
	if err != nil {
		return s, translate(err)
	}
	for status, v := range res {
		n, _ := strconv.ParseInt(v, 10, 64)
		s.Add(backend.JobStatus(status), n)
	}
	return s, nil
}

// ListFailed implements backend.JobQueueBackend. The page is read in one
// pipeline, not one script: a job retried meanwhile is left out.
func (b *JobQueueBackend) ListFailed(ctx context.Context, queue string, p backend.ListParams) ([]*backend.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	ids, err := b.rdb.ZRevRange(ctx, b.prefix+":q:"+queue+":failed", int64(p.Offset), int64(p.Offset+p.Limit-1)).Result()
	if err != nil {
		return nil, translate(err)
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, b.jobKey(id))
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, translate(err)
		}
	}
	out := make([]*backend.Job, 0, len(ids))
	for _, c := range cmds {
		m := c.Val()
		if len(m) == 0 || m["status"] != string(backend.StatusFailed) {
			continue
		}
		j, err := jobFromMap(m)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// PurgeFailed implements backend.JobQueueBackend.
func (b *JobQueueBackend) PurgeFailed(ctx context.Context, queue string) (int, error) {
	return b.deleteFinished(ctx, []any{queue, string(backend.StatusFailed), "+inf"})
}

// Prune implements backend.JobQueueBackend.
func (b *JobQueueBackend) Prune(ctx context.Context, p backend.PruneParams) (int, error) {
	queues, err := b.rdb.SMembers(ctx, b.prefix+":queues").Result()
	if err != nil {
		return 0, translate(err)
	}
	var sets []any
	for _, q := range queues {
		done, failed := p.CompletedBefore.UnixMilli(), p.FailedBefore.UnixMilli()
		sets = append(sets,
			q, string(backend.StatusCompleted), done,
			q, string(backend.StatusCancelled), done,
			q, string(backend.StatusFailed), failed)
	}
	if len(sets) == 0 {
		return 0, nil
	}
	return b.deleteFinished(ctx, sets)
}

// deleteFinished runs delete.lua until it deletes nothing more.
func (b *JobQueueBackend) deleteFinished(ctx context.Context, sets []any) (int, error) {
	total := 0
	for {
		n, err := deleteScript.Run(ctx, b.rdb, nil, append([]any{b.prefix, deleteBatch}, sets...)...).Int()
		if err != nil {
			return total, translate(err)
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// Ping implements backend.JobQueueBackend.
func (b *JobQueueBackend) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return backend.Errorf(backend.CodeUnavailable, "backend is closed")
	}
	return translate(b.rdb.Ping(ctx).Err())
}

// Close implements backend.JobQueueBackend; waiting dequeues return.
func (b *JobQueueBackend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.waiters.WakeAll()
	err := b.pubsub.Close()
	b.wg.Wait()
	return errors.Join(err, b.rdb.Close())
}

// str and atoi read HMGET answers (nil for a missing field or job).
func str(v any) string { s, _ := v.(string); return s }

func atoi(v any) int { n, _ := strconv.Atoi(str(v)); return n }

// parseJob reads the flat field/value list HGETALL returns in a script.
func parseJob(flat []any) (*backend.Job, error) {
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	return jobFromMap(m)
}

func jobFromMap(m map[string]string) (*backend.Job, error) {
	var bad error
	num := func(field string) int64 {
		v := m[field]
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil && bad == nil {
			bad = backend.Errorf(backend.CodeInternal, "redis: job field %s is %q", field, v)
		}
		return n
	}
	at := func(field string) *time.Time {
		if m[field] == "" {
			return nil
		}
		t := time.UnixMilli(num(field)).UTC()
		return &t
	}
	must := func(field string) time.Time {
		if t := at(field); t != nil {
			return *t
		}
		if bad == nil {
			bad = backend.Errorf(backend.CodeInternal, "redis: job field %s is missing", field)
		}
		return time.Time{}
	}
	j := &backend.Job{
		ID:          m["id"],
		Queue:       m["queue"],
		Data:        json.RawMessage(m["data"]),
		Status:      backend.JobStatus(m["status"]),
		Priority:    int(num("priority")),
		Attempts:    int(num("attempts")),
		MaxAttempts: int(num("maxAttempts")),
		Backoff: backend.Backoff{
			Type:       backend.BackoffType(m["backoffType"]),
			DelayMs:    num("backoffDelayMs"),
			MaxDelayMs: num("backoffMaxDelayMs"),
		},
		Key:            m["key"],
		RunAt:          must("runAt"),
		CreatedAt:      must("createdAt"),
		UpdatedAt:      must("updatedAt"),
		StartedAt:      at("startedAt"),
		FinishedAt:     at("finishedAt"),
		LeaseExpiresAt: at("leaseExpiresAt"),
	}
	if e := m["lastError"]; e != "" {
		j.LastError = &backend.JobError{}
		if err := json.Unmarshal([]byte(e), j.LastError); err != nil {
			return nil, backend.Errorf(backend.CodeInternal, "redis: job %s has a corrupt lastError: %v", j.ID, err)
		}
	}
	return j, bad
}

// translate turns go-redis errors into the port's errors.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var be *backend.Error
	if errors.As(err, &be) {
		return be
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return backend.Errorf(backend.CodeUnavailable, "timed out waiting for Redis")
	}
	if errors.Is(err, goredis.ErrClosed) || errors.Is(err, goredis.ErrPoolTimeout) {
		return backend.Errorf(backend.CodeUnavailable, "Redis is unavailable: %v", err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection refused") {
		return backend.Errorf(backend.CodeUnavailable, "Redis is unreachable")
	}
	msg := err.Error()
	// Redis refuses writes it cannot keep: out of memory, a read-only
	// replica after failover, a failed background save, loading.
	for _, prefix := range []string{"OOM ", "READONLY ", "MISCONF ", "LOADING ", "MASTERDOWN ", "BUSY "} {
		if strings.HasPrefix(msg, prefix) {
			return backend.Errorf(backend.CodeUnavailable, "Redis refused: %s", msg)
		}
	}
	return backend.Errorf(backend.CodeInternal, "redis: %s", msg)
}
