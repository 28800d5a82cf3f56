package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
)

var (
	_ backend.BrowseStore = (*JobStore)(nil)
	_ backend.QueueLister = (*JobStore)(nil)
)

var browseScript = script("browse")

// walkChunk is how many members of a set one walk script reads.
const walkChunk = 200

// walkSet is the sorted set a walk reads: every job of the queue by
// createdAt (the walk keeps those of its status), the pending ones by
// runAt, a finished status's by finishedAt.
func walkSet(w backend.JobWalk) string {
	switch w.Sort {
	case backend.SortRunAt:
		return "runat"
	case backend.SortFinishedAt:
		return string(w.Status)
	}
	return "created"
}

type walkEntry struct {
	pos         backend.JobPos
	status, key string
	candidate   bool
	job         *backend.Job
	matched     bool
}

// FindJobs implements backend.BrowseStore: the walk reads its set in
// chunks (one script each, which also finds where the last chunk ended
// however the set changed since), keeps the members of its status and
// key, and matches their data in the daemon with the reference filter
// (Redis has no JSON to query).
func (b *JobStore) FindJobs(ctx context.Context, w backend.JobWalk) (backend.Walked, error) {
	if w.Status == backend.StatusProcessing {
		return b.findProcessing(ctx, w)
	}
	var out backend.Walked
	set := walkSet(w)
	after := w.After
	examined := 0
	for {
		n := min(walkChunk, w.Scan-examined)
		args := []any{b.prefix, "", "walk", w.Queue, set, flag(w.Desc), flag(after != nil), "", ""}
		if after != nil {
			args[7], args[8] = strconv.FormatInt(after.At.UnixMilli(), 10), after.ID
		}
		res, err := browseScript.Run(ctx, b.rdb, nil, append(args, n)...).Slice()
		if err != nil {
			return out, translate(err)
		}
		more := res[0].(int64) == 1
		var entries []walkEntry
		var ids []string
		for i := 3; i+3 < len(res); i += 4 {
			ms, _ := strconv.ParseFloat(str(res[i+1]), 64)
			e := walkEntry{pos: backend.JobPos{At: time.UnixMilli(int64(ms)).UTC(), ID: str(res[i])}, status: str(res[i+2]), key: str(res[i+3])}
			e.candidate = e.status == string(w.Status) && (w.Key == "" || e.key == w.Key)
			if e.candidate {
				ids = append(ids, e.pos.ID)
			}
			entries = append(entries, e)
		}
		if len(ids) > 0 {
			jobs, err := b.Get(ctx, ids)
			if err != nil {
				return out, err
			}
			k := 0
			for i := range entries {
				if !entries[i].candidate {
					continue
				}
				// The job as read now: it may have moved on since the walk saw it.
				j := jobs[k]
				k++
				entries[i].job = j
				entries[i].matched = j != nil && j.Status == w.Status && (w.Key == "" || j.Key == w.Key) &&
					(w.Filter == nil || memory.Match(w.Filter, memory.DataDoc(j.Data)))
			}
		}
		for i, e := range entries {
			examined++
			if e.matched {
				out.Jobs = append(out.Jobs, e.job)
			}
			last := i == len(entries)-1 && !more
			if len(out.Jobs) == w.Limit || examined == w.Scan {
				if !last {
					pos := e.pos
					out.Cut = &pos
				}
				return out, nil
			}
		}
		if !more {
			return out, nil
		}
		// Resume after the last member examined, kept or dropped.
		ms, _ := strconv.ParseFloat(str(res[2]), 64)
		after = &backend.JobPos{At: time.UnixMilli(int64(ms)).UTC(), ID: str(res[1])}
		if len(entries) == 0 {
			examined += n // members dropped as stale still count against the bound
			if examined >= w.Scan {
				out.Cut = after
				return out, nil
			}
		}
	}
}

// findProcessing walks the claims in flight: those under a lease
// (P:q:<q>:leases) and those whose lease ran out, waiting in ready to be
// claimed again (P:q:<q>:expired), read whole and sorted, as few as the
// workers hold.
func (b *JobStore) findProcessing(ctx context.Context, w backend.JobWalk) (backend.Walked, error) {
	var out backend.Walked
	pipe := b.rdb.Pipeline()
	leased := pipe.ZRange(ctx, b.prefix+":q:"+w.Queue+":leases", 0, -1)
	lapsed := pipe.SMembers(ctx, b.prefix+":q:"+w.Queue+":expired")
	if _, err := pipe.Exec(ctx); err != nil {
		return out, translate(err)
	}
	ids := slices.Compact(slices.Sorted(slices.Values(append(leased.Val(), lapsed.Val()...))))
	if len(ids) == 0 {
		return out, nil
	}
	jobs, err := b.Get(ctx, ids)
	if err != nil {
		return out, err
	}
	var walk []*backend.Job
	for _, j := range jobs {
		if j == nil || j.Status != backend.StatusProcessing || w.Key != "" && j.Key != w.Key {
			continue
		}
		if w.After != nil && !w.After.Before(backend.PosOf(j, w.Sort), w.Desc) {
			continue
		}
		walk = append(walk, j)
	}
	slices.SortFunc(walk, func(a, c *backend.Job) int {
		if backend.PosOf(a, w.Sort).Before(backend.PosOf(c, w.Sort), w.Desc) {
			return -1
		}
		return 1
	})
	for i, j := range walk {
		if w.Filter == nil || memory.Match(w.Filter, memory.DataDoc(j.Data)) {
			out.Jobs = append(out.Jobs, j)
		}
		if len(out.Jobs) == w.Limit || i+1 == w.Scan {
			if i+1 < len(walk) {
				pos := backend.PosOf(j, w.Sort)
				out.Cut = &pos
			}
			break
		}
	}
	return out, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// DeleteJobs implements backend.BrowseStore: one script for the batch.
func (b *JobStore) DeleteJobs(ctx context.Context, queue string, ids []string) ([]backend.Settled, error) {
	args := []any{b.prefix, "", "delete", queue}
	for _, id := range ids {
		args = append(args, id)
	}
	res, err := browseScript.Run(ctx, b.rdb, nil, args...).Slice()
	if err != nil {
		return nil, translate(err)
	}
	out := make([]backend.Settled, len(ids))
	for i, r := range res {
		a, _ := r.([]any)
		switch str(a[0]) {
		case "ok":
			out[i] = backend.Settled{Applied: true, Found: true, Queue: queue}
		case "no":
			out[i] = backend.Settled{Found: true, Queue: queue, Status: backend.JobStatus(str(a[1])), Lease: str(a[2])}
		}
	}
	return out, nil
}

// UpdateJob implements backend.BrowseStore.
func (b *JobStore) UpdateJob(ctx context.Context, p backend.UpdateJobParams) (backend.Settled, error) {
	runAt, prio, data := "", "", ""
	if p.RunAt != nil {
		runAt = strconv.FormatInt(p.RunAt.UnixMilli(), 10)
	}
	if p.Priority != nil {
		prio = strconv.Itoa(*p.Priority)
	}
	if p.Data != nil {
		data = string(p.Data)
	}
	res, err := browseScript.Run(ctx, b.rdb, nil, b.prefix, nowArg(p.Now), "update", p.ID, runAt, prio, flag(p.Data != nil), data).Slice()
	if err != nil {
		return backend.Settled{}, translate(err)
	}
	switch str(res[0]) {
	case "ok":
		return backend.Settled{Applied: true, Found: true, Queue: str(res[1])}, nil
	case "no":
		return backend.Settled{Found: true, Queue: str(res[1]), Status: backend.JobStatus(str(res[2])), Lease: str(res[3])}, nil
	}
	return backend.Settled{}, nil
}

// Activity implements backend.BrowseStore: a count of each window of the
// completed and failed sets, in one pipeline.
func (b *JobStore) Activity(ctx context.Context, p backend.ActivityParams) ([]backend.Activity, error) {
	pipe := b.rdb.Pipeline()
	type cmds struct{ completed, failed []*goredis.IntCmd }
	all := make([]cmds, len(p.Queues))
	since := p.Since().UnixMilli()
	for i, q := range p.Queues {
		for k := 0; k < p.Buckets; k++ {
			lo := strconv.FormatInt(since+int64(k)*p.Bucket.Milliseconds(), 10)
			hi := "(" + strconv.FormatInt(since+int64(k+1)*p.Bucket.Milliseconds(), 10)
			all[i].completed = append(all[i].completed, pipe.ZCount(ctx, b.prefix+":q:"+q+":completed", lo, hi))
			all[i].failed = append(all[i].failed, pipe.ZCount(ctx, b.prefix+":q:"+q+":failed", lo, hi))
		}
	}
	if len(p.Queues) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, translate(err)
		}
	}
	out := make([]backend.Activity, len(p.Queues))
	for i, q := range p.Queues {
		out[i] = backend.Activity{Queue: q, Completed: make([]int64, p.Buckets), Failed: make([]int64, p.Buckets)}
		for k := 0; k < p.Buckets; k++ {
			out[i].Completed[k] = all[i].completed[k].Val()
			out[i].Failed[k] = all[i].failed[k].Val()
		}
	}
	return out, nil
}

// Queues implements backend.QueueLister: the queues ever used (P:queues)
// that hold jobs now, those with settings (P:configured) and those with
// schedules (the members of P:schedules are queue/name).
func (b *JobStore) Queues(ctx context.Context) ([]backend.ListedQueue, error) {
	pipe := b.rdb.Pipeline()
	used := pipe.SMembers(ctx, b.prefix+":queues")
	configured := pipe.SMembers(ctx, b.prefix+":configured")
	scheduled := pipe.ZRange(ctx, b.prefix+":schedules", 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, translate(err)
	}
	n := map[string]int{}
	for _, q := range configured.Val() {
		n[q] += 0
	}
	for _, m := range scheduled.Val() {
		if q, _, ok := strings.Cut(m, "/"); ok {
			n[q]++
		}
	}
	names := used.Val()
	if len(names) > 0 {
		counts := make([]*goredis.StringSliceCmd, len(names))
		pipe = b.rdb.Pipeline()
		for i, q := range names {
			counts[i] = pipe.HVals(ctx, b.prefix+":q:"+q+":counts")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, translate(err)
		}
		for i, q := range names {
			for _, v := range counts[i].Val() {
				if c, _ := strconv.ParseInt(v, 10, 64); c > 0 {
					n[q] += 0
					break
				}
			}
		}
	}
	out := make([]backend.ListedQueue, 0, len(n))
	for q, c := range n {
		out = append(out, backend.ListedQueue{Queue: q, Schedules: c})
	}
	slices.SortFunc(out, func(a, c backend.ListedQueue) int { return strings.Compare(a.Queue, c.Queue) })
	return out, nil
}

// browseMark says that every job of the prefix is filed in the sets of
// browsing (created, runat) and every configured queue in P:configured:
// the scripts file what they change, and fileOldJobs files once what
// earlier versions left.
const browseMark = ":browse-sets"

// fileOldJobs files the jobs and settings an earlier version wrote, once
// per prefix (a SCAN of the prefix's keys). Every daemon sharing the
// prefix must run this version from then on: an older one would enqueue
// jobs that no find sees.
func (b *JobStore) fileOldJobs(ctx context.Context) error {
	mark := b.prefix + browseMark
	n, err := b.rdb.Exists(ctx, mark, b.prefix+":queues").Result()
	if err != nil || n != 1 {
		// Marked already (n 2, or 1 with no queues set: impossible but
		// harmless), or nothing to file: no job was ever enqueued here.
		if err == nil && n == 0 {
			err = b.rdb.Set(ctx, mark, "1", 0).Err()
		}
		return err
	}
	if marked, err := b.rdb.Exists(ctx, mark).Result(); err != nil || marked == 1 {
		return err
	}
	start := time.Now()
	glob := globEscape(b.prefix)
	jobs, configured := 0, 0
	var cursor uint64
	for {
		keys, next, err := b.rdb.Scan(ctx, cursor, glob+":job:*", 1000).Result()
		if err != nil {
			return err
		}
		pipe := b.rdb.Pipeline()
		cmds := make([]*goredis.SliceCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.HMGet(ctx, k, "id", "queue", "status", "createdAt", "runAt")
		}
		if len(keys) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
		pipe = b.rdb.Pipeline()
		for _, c := range cmds {
			f := c.Val()
			id, q, status, created, runAt := str(f[0]), str(f[1]), str(f[2]), str(f[3]), str(f[4])
			if id == "" || q == "" {
				continue
			}
			cs, _ := strconv.ParseFloat(created, 64)
			pipe.ZAdd(ctx, b.prefix+":q:"+q+":created", goredis.Z{Score: cs, Member: id})
			if status == string(backend.StatusPending) {
				rs, _ := strconv.ParseFloat(runAt, 64)
				pipe.ZAdd(ctx, b.prefix+":q:"+q+":runat", goredis.Z{Score: rs, Member: id})
			}
			jobs++
		}
		if pipe.Len() > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	for {
		keys, next, err := b.rdb.Scan(ctx, cursor, glob+":q:*:settings", 1000).Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			q := strings.TrimSuffix(strings.TrimPrefix(k, b.prefix+":q:"), ":settings")
			if err := b.rdb.SAdd(ctx, b.prefix+":configured", q).Err(); err != nil {
				return err
			}
			configured++
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	b.log.Info("redis: filed the jobs of earlier versions for browsing (once)", "jobs", jobs, "configuredQueues", configured,
		"took", time.Since(start).Round(time.Millisecond))
	return b.rdb.Set(ctx, mark, "1", 0).Err()
}

// globEscape quotes the characters SCAN's MATCH reads as a pattern.
func globEscape(s string) string {
	var sb strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(c)
	}
	return sb.String()
}
