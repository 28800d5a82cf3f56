// Package redis is the job store on Redis (go-redis/v9). Every state
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
//	P:q:<queue>:last        hash: dedupe key -> id of the last job enqueued with it
//	P:q:<queue>:counts      hash: status -> number of jobs
//	P:q:<queue>:settings    hash: flow control (flow.go), only while set
//	P:q:<queue>:events      zset: the event feed, each job once, score the number of its latest stamp (events.go)
//	P:evseq                 string: the counter that numbers the stamps
//	P:q:<queue>:created     zset: every job, score createdAt (browsing, issue 20)
//	P:q:<queue>:runat       zset: pending jobs, score runAt (browsing)
//	P:q:<queue>:expired     set: claims whose lease ran out, waiting in ready
//	P:queues                set: every queue name (for pruning)
//	P:configured            set: the queues that have a settings hash
//	P:browse-sets           string: set once the jobs of earlier versions are filed
//	P:wake                  channel: queue names, published on enqueue and retry
//	P:done                  channel: queue names, published when jobs finish
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	goredis "github.com/redis/go-redis/v9"

	"github.com/storaged/storaged/internal/backend"
)

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
	insertScript = script("insert")
	claimScript  = script("claim")
	settleScript = script("settle")
	deleteScript = script("delete")
	flowScript   = script("flow")
	eventsScript = script("events")
)

// deleteBatch bounds the jobs one purge or prune script deletes, so that
// Redis, which runs one script at a time, never stalls for long.
const deleteBatch = 500

var _ backend.JobStore = (*JobStore)(nil)

// JobStore is the Redis job store: one script call per insert, claim or
// settle, whatever the number of jobs in it.
type JobStore struct {
	rdb    *goredis.Client
	prefix string
	poll   time.Duration
	log    *slog.Logger
	closed atomic.Bool
	pubsub *goredis.PubSub
	wg     sync.WaitGroup
}

// Open connects and checks that Redis answers; Watch subscribes to
// wake-ups.
func Open(ctx context.Context, cfg Config) (*JobStore, error) {
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("not a Redis URL: %w", err)
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
		return nil, fmt.Errorf("no answer from Redis at %s: %w", opts.Addr, err)
	}
	b := &JobStore{rdb: rdb, prefix: cfg.Prefix, poll: cfg.PollInterval, log: cfg.Logger}
	b.warnIfVolatile(pctx)
	if err := b.fileOldJobs(ctx); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("filing the jobs of earlier versions for browsing: %w", err)
	}
	return b, nil
}

// warnIfVolatile logs when Redis would lose acknowledged enqueues on a
// restart. CONFIG may be renamed away on managed Redis; then it says
// nothing.
func (b *JobStore) warnIfVolatile(ctx context.Context) {
	v, err := b.rdb.ConfigGet(ctx, "appendonly").Result()
	if err == nil && v["appendonly"] == "no" {
		b.log.Warn("Redis runs without appendonly: jobs enqueued since its last snapshot are lost if Redis restarts; set appendonly yes (and appendfsync always for every acknowledged enqueue)")
	}
}

// Watch implements backend.JobStore: it wakes local long polls on every
// publish. go-redis resubscribes after a reconnect; publishes sent
// meanwhile are lost, so each (re)subscription wakes everyone.
func (b *JobStore) Watch(w backend.Watcher) {
	if b.pubsub != nil {
		return
	}
	done := b.prefix + ":done"
	b.pubsub = b.rdb.Subscribe(context.Background(), b.prefix+":wake", done)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for msg := range b.pubsub.ChannelWithSubscriptions() {
			switch m := msg.(type) {
			case *goredis.Message:
				if m.Channel == done {
					w.Finished(m.Payload)
				} else {
					w.Ready(m.Payload)
				}
			case *goredis.Subscription:
				w.Ready("")
				w.Finished("")
			}
		}
	}()
}

// PollInterval implements backend.JobStore: a publish lost in a reconnect
// costs at most this long.
func (b *JobStore) PollInterval() time.Duration { return b.poll }

func (b *JobStore) jobKey(id string) string { return b.prefix + ":job:" + id }

// nowArg is the time argument of every script: ” for Redis's clock.
func nowArg(now time.Time) string {
	if now.IsZero() {
		return ""
	}
	return strconv.FormatInt(now.UnixMilli(), 10)
}

// Insert implements backend.JobStore.
func (b *JobStore) Insert(ctx context.Context, p backend.InsertParams) ([]backend.Inserted, error) {
	args := make([]any, 0, 3+15*len(p.Jobs))
	args = append(args, b.prefix, nowArg(p.Now), p.Queue)
	for _, j := range p.Jobs {
		runAt := ""
		if j.HasRunAt {
			runAt = strconv.FormatInt(j.RunAt.UnixMilli(), 10)
		}
		args = append(args, j.ID, []byte(j.Data), j.Priority, j.MaxAttempts,
			string(j.Backoff.Type), j.Backoff.DelayMs, j.Backoff.MaxDelayMs, j.Key, runAt, j.Delay.Milliseconds(),
			int(j.Hold), j.Period.Milliseconds(), string(j.Mode), timeoutArg(j.Timeout), j.Trace)
	}
	res, err := insertScript.Run(ctx, b.rdb, nil, args...).StringSlice()
	if err != nil {
		return nil, translate(err)
	}
	out := make([]backend.Inserted, len(p.Jobs))
	for i := range out {
		out[i] = backend.Inserted{ID: res[2*i], Deduplicated: res[2*i+1] == "1"}
	}
	return out, nil
}

// Claim implements backend.JobStore.
func (b *JobStore) Claim(ctx context.Context, p backend.ClaimParams) (backend.Claimed, error) {
	var out backend.Claimed
	expired, _ := backend.Marshal(p.Expired)
	leaseMs := p.Lease.Milliseconds()
	res, err := claimScript.Run(ctx, b.rdb, nil, claimArgs(b.prefix, nowArg(p.Now), p.Queue, leaseMs, p.Token, p.Max, expired)...).Slice()
	if err != nil {
		return out, translate(err)
	}
	if next, _ := res[0].(int64); next > 0 {
		out.Next = time.Duration(next) * time.Millisecond
	}
	if len(res) > 2 {
		limited, _ := res[2].(int64)
		out.Limited = limited == 1
	}
	if len(res) < 4 || str(res[1]) == "" {
		return out, nil
	}
	now, err := strconv.ParseInt(str(res[3]), 10, 64)
	if err != nil {
		return out, backend.Wrap(err, backend.CodeInternal, "redis: the claim script's time is not a number")
	}
	rows, err := unpackRows([]byte(str(res[1])))
	if err != nil {
		return out, backend.Wrap(err, backend.CodeInternal, "redis: the claim script's answer is not MessagePack")
	}
	out.Jobs = make([]*backend.Job, len(rows))
	for i, row := range rows {
		if len(row) != len(claimFields) {
			return out, backend.Errorf(backend.CodeInternal, "redis: the claim script answered %d fields of a job, not %d", len(row), len(claimFields))
		}
		m := make(map[string]string, len(claimFields)+8)
		for k, v := range row {
			if v != nil {
				m[claimFields[k]] = *v
			}
		}
		if err := claimed(m, p.Token, leaseMs, now); err != nil {
			return out, err
		}
		j, err := jobFromMap(m)
		if err != nil {
			return out, err
		}
		out.Jobs[i] = j
	}
	return out, nil
}

// claimFields are the fields of a job the claim script reads and answers
// with, status and attempts first (the script looks at them): every field
// jobFromMap reads but those the claim sets (claimed). A field added to
// jobs must be added here or there.
var claimFields = []string{"status", "attempts", "id", "queue", "data", "priority", "maxAttempts",
	"backoffType", "backoffDelayMs", "backoffMaxDelayMs", "key", "runAt", "createdAt", "finishedAt",
	"timeoutMs", "trace", "result", "lastError"}

func claimArgs(fixed ...any) []any {
	args := make([]any, 0, len(fixed)+len(claimFields))
	args = append(args, fixed...)
	for _, f := range claimFields {
		args = append(args, f)
	}
	return args
}

// claimed makes to a job, as the claim script read it, the changes the
// script then wrote (the HSET of claim.lua): all but the attempt and the
// lease are the same for every job of the claim, so the script sends the
// fields as it found them, not a copy per job with the changes made.
func claimed(m map[string]string, token string, leaseMs, now int64) error {
	attempts, err := strconv.ParseInt(m["attempts"], 10, 64)
	if err != nil {
		return backend.Errorf(backend.CodeInternal, "redis: job %s has attempts %q", m["id"], m["attempts"])
	}
	at := strconv.FormatInt(now, 10)
	m["status"] = string(backend.StatusProcessing)
	m["attempts"] = strconv.FormatInt(attempts+1, 10)
	m["lease"] = token + "." + m["id"]
	m["leaseMs"] = strconv.FormatInt(leaseMs, 10)
	m["startedAt"] = at
	m["updatedAt"] = at
	m["leaseExpiresAt"] = strconv.FormatInt(now+leaseMs, 10)
	m["progress"] = ""
	return nil
}

var kindWords = map[backend.SettleKind]string{
	backend.Complete: "complete", backend.Retry: "retry", backend.Fail: "fail", backend.Extend: "extend",
	backend.Progress: "progress", backend.Release: "release", backend.Cancel: "cancel", backend.Revive: "revive",
}

// Settle implements backend.JobStore: every change in one script call.
func (b *JobStore) Settle(ctx context.Context, p backend.SettleParams) ([]backend.Settled, error) {
	args := make([]any, 0, 2+6*len(p.Items))
	args = append(args, b.prefix, nowArg(p.Now))
	for _, it := range p.Items {
		word, ok := kindWords[it.Kind]
		if !ok {
			return nil, backend.Errorf(backend.CodeInternal, "redis: unknown change %d", it.Kind)
		}
		if p.Drop && it.Kind == backend.Complete {
			word = "drop"
		}
		errText := ""
		if it.Error != nil {
			e, _ := backend.Marshal(it.Error)
			errText = string(e)
		}
		args = append(args, word, it.ID, it.Lease, it.Delay.Milliseconds(), errText, string(it.Value))
	}
	res, err := settleScript.Run(ctx, b.rdb, nil, args...).Slice()
	if err != nil {
		return nil, translate(err)
	}
	out := make([]backend.Settled, len(p.Items))
	for i, r := range res {
		a, _ := r.([]any)
		word := str(a[0])
		switch word {
		case "ok":
			out[i] = backend.Settled{Applied: true, Found: true, Queue: str(a[1]), Trace: str(a[2])}
		case "nf":
		case "no":
			out[i] = backend.Settled{Found: true, Queue: str(a[1]), Status: backend.JobStatus(str(a[2])), Lease: str(a[3]), KeyHolder: str(a[4])}
		default:
			return nil, backend.Errorf(backend.CodeInternal, "redis: unexpected settle answer %q", word)
		}
	}
	return out, nil
}

// Get implements backend.JobStore: one pipeline for every id.
func (b *JobStore) Get(ctx context.Context, ids []string) ([]*backend.Job, error) {
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, b.jobKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, translate(err)
	}
	out := make([]*backend.Job, len(ids))
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			j, err := jobFromMap(m)
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
	}
	return out, nil
}

// Stats implements backend.JobStore: the counts of every queue in one
// pipeline.
func (b *JobStore) Stats(ctx context.Context, queues []string) ([]backend.QueueStats, error) {
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(queues))
	for i, q := range queues {
		cmds[i] = pipe.HGetAll(ctx, b.prefix+":q:"+q+":counts")
	}
	if len(queues) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, translate(err)
		}
	}
	out := make([]backend.QueueStats, len(queues))
	for i, c := range cmds {
		out[i].Queue = queues[i]
		for status, v := range c.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			out[i].Add(backend.JobStatus(status), n)
		}
	}
	return out, nil
}

// ListFailed implements backend.JobStore. The page is read in one
// pipeline, not one script: a job retried meanwhile is left out.
func (b *JobStore) ListFailed(ctx context.Context, queue string, p backend.ListParams) ([]*backend.Job, error) {
	//nolint:staticcheck // SA1019: ZREVRANGE works on every Redis; ZRANGE ... REV needs 6.2
	ids, err := b.rdb.ZRevRange(ctx, b.prefix+":q:"+queue+":failed", int64(p.Offset), int64(p.Offset+p.Limit-1)).Result()
	if err != nil {
		return nil, translate(err)
	}
	jobs := []*backend.Job{}
	if len(ids) == 0 {
		return jobs, nil
	}
	got, err := b.Get(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, j := range got {
		if j != nil && j.Status == backend.StatusFailed {
			jobs = append(jobs, j)
		}
	}
	return jobs, nil
}

// DeleteFinished implements backend.JobStore.
func (b *JobStore) DeleteFinished(ctx context.Context, p backend.DeleteParams) (int, error) {
	queues := []string{p.Queue}
	if p.Queue == "" {
		var err error
		if queues, err = b.rdb.SMembers(ctx, b.prefix+":queues").Result(); err != nil {
			return 0, translate(err)
		}
	}
	cutoff := "+inf"
	if !p.Before.IsZero() {
		cutoff = strconv.FormatInt(p.Before.UnixMilli(), 10)
	}
	var sets []any
	for _, q := range queues {
		for _, s := range p.Statuses {
			sets = append(sets, q, string(s), cutoff)
		}
	}
	if len(sets) == 0 {
		return 0, nil
	}
	total := 0
	for {
		n, err := deleteScript.Run(ctx, b.rdb, nil, append([]any{b.prefix, "", deleteBatch}, sets...)...).Int()
		if err != nil {
			return total, translate(err)
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// Ping implements backend.JobStore.
func (b *JobStore) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return backend.Errorf(backend.CodeUnavailable, "the job store is closed")
	}
	return translate(b.rdb.Ping(ctx).Err())
}

// Close implements backend.JobStore.
func (b *JobStore) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	var err error
	if b.pubsub != nil {
		err = b.pubsub.Close()
	}
	b.wg.Wait()
	return errors.Join(err, b.rdb.Close())
}

// str reads a string out of a script's answer (nil for a missing value).
func str(v any) string { s, _ := v.(string); return s }

// jobFromMap reads a job's hash. A field read here is either in
// claimFields or set by claimed, or a claim's answer lacks it.
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
		Lease:          m["lease"],
		TimeoutMs:      num("timeoutMs"),
		Traceparent:    m["trace"],
	}
	if r := m["result"]; r != "" {
		j.Result = json.RawMessage(r)
	}
	if p := m["progress"]; p != "" {
		j.Progress = json.RawMessage(p)
	}
	if e := m["lastError"]; e != "" {
		j.LastError = &backend.JobError{}
		if err := json.Unmarshal([]byte(e), j.LastError); err != nil {
			return nil, backend.Errorf(backend.CodeInternal, "redis: job %s has a corrupt lastError: %v", j.ID, err)
		}
	}
	return j, bad
}

// translate turns go-redis errors into the port's errors. The driver's
// text stays in the cause, for the log; messages are our own.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var be *backend.Error
	if errors.As(err, &be) {
		return be
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return backend.Wrap(err, backend.CodeUnavailable, "timed out waiting for Redis")
	}
	if errors.Is(err, goredis.ErrClosed) || errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.ErrPoolExhausted) {
		return backend.Wrap(err, backend.CodeUnavailable, "Redis is unavailable (no connection could be had in time)")
	}
	if backend.IsConnectionLost(err) || strings.Contains(err.Error(), "connection refused") {
		return backend.Wrap(err, backend.CodeUnavailable, "Redis is unreachable (the connection failed)")
	}
	msg := err.Error()
	// Redis refuses writes it cannot keep: out of memory, a read-only
	// replica after failover, a failed background save, loading.
	for _, r := range []struct{ prefix, why string }{
		{"OOM ", "it is out of memory (maxmemory)"},
		{"READONLY ", "it is a read-only replica (after a failover?)"},
		{"MISCONF ", "it cannot save to disk"},
		{"LOADING ", "it is loading its data"},
		{"MASTERDOWN ", "its primary is down"},
		{"BUSY ", "a script is running too long"},
	} {
		if strings.HasPrefix(msg, r.prefix) {
			return backend.Wrap(err, backend.CodeUnavailable, "Redis refused the command: %s", r.why)
		}
	}
	return backend.Wrap(err, backend.CodeInternal, "redis: unexpected error")
}
