// The batching worker's own rules, against a fake queue whose timings the
// test sets: claims wait for their acknowledgements (backpressure), every
// claim held is renewed until it is settled, and stop() releases what has
// not started.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConflictError, JobStatus, type Job, type ItemResult } from "../src/index.js";
import type { WorkerQueue } from "../src/jobqueue.js";
import { QueueWorker } from "../src/worker.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function job(n: number): Job<number> {
  const now = new Date();
  return {
    id: `j${n}`, queue: "q", data: n, status: JobStatus.PROCESSING, priority: 0, attempts: 1, maxAttempts: 3,
    backoff: { type: "fixed", delayMs: 0, maxDelayMs: 0 }, runAt: now, createdAt: now, updatedAt: now, lease: `l${n}`,
  };
}

/** A queue with `total` jobs whose acknowledgements take ackMs each call, and dequeues dequeueMs. */
function fakeQueue(total: number, ackMs: number, dequeueMs = 0) {
  let next = 0;
  const unsettled = new Set<string>();
  // Applied as an acknowledgement arrives, answered ackMs later, as a
  // daemon commits and then replies.
  const completed = new Set<string>();
  const stats = {
    maxUnsettled: 0, renewed: new Set<string>(), released: [] as string[], acked: 0,
    // Dequeues under way, the most at once, and the most of them long polls.
    dequeuing: 0, maxDequeuing: 0, polling: 0, maxPolling: 0,
  };
  const q: Partial<WorkerQueue<number>> = {
    async dequeueMany(max: number, opts?: { waitMs?: number }) {
      const poll = (opts?.waitMs ?? 0) > 0 ? 1 : 0;
      stats.dequeuing++;
      stats.polling += poll;
      stats.maxDequeuing = Math.max(stats.maxDequeuing, stats.dequeuing);
      stats.maxPolling = Math.max(stats.maxPolling, stats.polling);
      try {
        await sleep(dequeueMs);
      } finally {
        stats.dequeuing--;
        stats.polling -= poll;
      }
      const n = Math.min(max, total - next);
      if (n <= 0) {
        await sleep(5);
        return [];
      }
      const out = Array.from({ length: n }, () => job(next++));
      for (const j of out) unsettled.add(j.id);
      stats.maxUnsettled = Math.max(stats.maxUnsettled, unsettled.size);
      return out;
    },
    async acknowledgeMany(jobs: ReadonlyArray<Job<number> | string>): Promise<ItemResult[]> {
      for (const j of jobs) completed.add((j as Job<number>).id);
      await sleep(ackMs);
      for (const j of jobs) unsettled.delete((j as Job<number>).id);
      stats.acked += jobs.length;
      return jobs.map(() => null);
    },
    async failMany(items) {
      return items.map(() => null);
    },
    async heartbeatMany(jobs: ReadonlyArray<Job<number> | string>): Promise<ItemResult[]> {
      for (const j of jobs) stats.renewed.add((j as Job<number>).id);
      return jobs.map((j) => {
        const id = (j as Job<number>).id;
        return completed.has(id) ? new ConflictError(`job "${id}" is completed, not processing`) : null;
      });
    },
    async releaseMany(jobs: ReadonlyArray<Job<number> | string>): Promise<ItemResult[]> {
      for (const j of jobs) {
        stats.released.push((j as Job<number>).id);
        unsettled.delete((j as Job<number>).id);
      }
      return jobs.map(() => null);
    },
  };
  return { queue: q as WorkerQueue<number>, stats };
}

describe("the batching worker", () => {
  it("takes no more claims while acknowledgements lag, so nothing waits past its lease", async () => {
    const { queue, stats } = fakeQueue(3000, 50);
    const w = new QueueWorker<number>(queue, async () => {}, { concurrency: 4, prefetch: 100, leaseMs: 30_000, waitMs: 10 });
    const deadline = Date.now() + 20_000;
    while (stats.acked < 3000) {
      assert.ok(Date.now() < deadline, `acked ${stats.acked} of 3000`);
      await sleep(10);
    }
    await w.stop();
    // Claims held (waiting, running, or finished and not yet acknowledged)
    // stay within concurrency + prefetch.
    assert.ok(stats.maxUnsettled <= 104, `held ${stats.maxUnsettled} claims at once, bound 104`);
  });

  it("overlaps a second dequeue while dequeues come back full, and polls an idle queue once", async () => {
    const { queue, stats } = fakeQueue(5000, 1, 20);
    const w = new QueueWorker<number>(queue, async () => {}, { concurrency: 16, leaseMs: 30_000, waitMs: 50 });
    try {
      const deadline = Date.now() + 20_000;
      while (stats.acked < 5000) {
        assert.ok(Date.now() < deadline, `acked ${stats.acked} of 5000`);
        await sleep(10);
      }
      assert.equal(stats.maxDequeuing, 2, "two dequeues under way at once while the queue was full");
      // Drained: the fetchers settle down to one waiting poll.
      await sleep(300);
      assert.equal(stats.maxPolling, 1, "never two long polls at once");
      assert.ok(stats.dequeuing <= 1, `${stats.dequeuing} dequeues under way on an empty queue`);
    } finally {
      await w.stop();
    }
  });

  it("renews finished claims until their acknowledgement lands, and releases unstarted ones on stop", async () => {
    const { queue, stats } = fakeQueue(50, 2000);
    let started = 0;
    // Quick jobs first, so that the worker learns it may hold claims ahead
    // (its adaptive prefetch), then a slow one while those wait.
    const w = new QueueWorker<number>(queue, async () => {
      started++;
      if (started >= 6) await sleep(1000);
    }, { concurrency: 1, prefetch: 10, leaseMs: 90, waitMs: 10 });
    while (started < 6) await sleep(5);
    // The first job finished and its acknowledgement takes 2 s (long enough for a loaded machine): meanwhile
    // its claim is still renewed (every 30 ms, a third of the lease).
    stats.renewed.clear();
    await sleep(100);
    assert.equal(stats.acked, 0);
    assert.ok(stats.renewed.has("j0"), "a finished claim whose ack is on its way was not renewed");
    await w.stop();
    assert.ok(stats.released.length > 0, "prefetched claims were not released on stop");
    for (let n = 0; n < 6; n++) assert.ok(!stats.released.includes(`j${n}`), `started claim j${n} was released`);
  });

  it("does not report a renewal refused because the job's own acknowledgement landed first", async () => {
    // The renewal of every claim held includes finished ones whose ack is
    // on its way; when the ack commits first, the daemon refuses the
    // renewal ("is completed"): that is the worker's own doing, not news.
    const { queue, stats } = fakeQueue(2000, 30);
    const errors: unknown[] = [];
    const w = new QueueWorker<number>(queue, async () => {}, {
      concurrency: 4, prefetch: 50, leaseMs: 30, waitMs: 10, onError: (e) => errors.push(e),
    });
    const deadline = Date.now() + 20_000;
    while (stats.acked < 2000) {
      assert.ok(Date.now() < deadline, `acked ${stats.acked} of 2000`);
      await sleep(10);
    }
    await w.stop();
    assert.ok(stats.renewed.size > 0, "no renewal happened: the case was not exercised");
    assert.deepEqual(errors.map(String), []);
  });
});
