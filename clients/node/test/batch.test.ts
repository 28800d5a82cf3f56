// DESIGN §3a from the client: dequeueMany and the settle-many calls with
// their per-item results, and the batching worker (prefetch, batched
// outcomes, release of prefetched claims on stop).
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ConflictError, JobStatus, NotFoundError, SocketJobQueueBackend, ValidationError, type Job } from "../src/index.js";
import { BACKENDS, lacks, sleep, uniqueName, withJobsDaemon, type JobCapability } from "./harness.js";

interface Item {
  n: number;
}

for (const backend of BACKENDS) {
  describe(`batches on ${backend}`, () => {
    let jobs: SocketJobQueueBackend, caps: Record<JobCapability, boolean>;
    withJobsDaemon(backend, (s) => ({ jobs, caps } = s));
    afterEach(() => {
      assert.equal(jobs.heldClaims(), 0, "claims left in the client's book");
    });

    it("dequeueMany claims in claim order and the settle-many calls answer per item", async (t) => {
      if (lacks(t, caps, "priorities", "getJob", "exactStats")) return;
      const queue = jobs.queue<Item>(uniqueName("many"));
      const ids = await queue.enqueueMany([0, 1, 2, 3, 4, 5].map((n) => ({ data: { n }, priority: n % 2 })));
      const claimed = await queue.dequeueMany(4, { leaseMs: 60_000 });
      // Priority 1 first (ids 1, 3, 5), then priority 0 in id order.
      assert.deepEqual(claimed.map((j) => j.data.n), [1, 3, 5, 0]);
      assert.ok(claimed.every((j) => j.lease && j.status === JobStatus.PROCESSING));
      assert.equal(new Set(claimed.map((j) => j.lease)).size, 4);

      // One of each outcome: done, a stale lease (another claim's), an id
      // this client never claimed (refused without being sent).
      const stale = { ...claimed[1]!, lease: claimed[0]!.lease! };
      const results = await queue.acknowledgeMany([claimed[0]!, stale, "never-claimed"]);
      assert.equal(results[0], null);
      assert.ok(results[1] instanceof ConflictError, String(results[1]));
      assert.ok(results[2] instanceof ValidationError, String(results[2]));
      assert.equal(await queue.getStatus(claimed[1]!.id), JobStatus.PROCESSING);

      const beats = await queue.heartbeatMany([claimed[1]!, claimed[2]!], 90_000);
      assert.deepEqual(beats, [null, null]);
      const fails = await queue.failMany([{ job: claimed[1]!, error: new TypeError("boom"), retry: false }]);
      assert.deepEqual(fails, [null]);
      const failed = await queue.getJob(claimed[1]!.id);
      assert.equal(failed?.status, JobStatus.FAILED);
      assert.equal(failed.lastError?.name, "TypeError");

      const released = await queue.releaseMany([claimed[2]!, claimed[3]!]);
      assert.deepEqual(released, [null, null]);
      const again = await queue.dequeueMany(10);
      assert.equal(again.length, 4);
      const back = again.find((j) => j.id === claimed[2]!.id);
      assert.equal(back?.attempts, 1, "a released claim's attempt is not counted");
      await queue.release(again[0]!);
      const twice = await queue.releaseMany([again[0]!]);
      assert.ok(twice[0] instanceof ConflictError, "a claim released twice");
      again[0] = (await queue.dequeueMany(1))[0]!;
      assert.deepEqual(await queue.dequeueMany(10), []);
      assert.deepEqual(await queue.acknowledgeMany(again), [null, null, null, null]);
      const stats = await queue.stats();
      assert.equal(stats.completed, 5);
      assert.equal(stats.failed, 1);
      assert.equal(ids.length, 6);
      await assert.rejects(queue.dequeueMany(0), ValidationError);
      await assert.rejects(queue.dequeueMany(1001), ValidationError);
    });

    it("a refused item of a batch leaves no claim behind; an unknown job is NotFoundError", async (t) => {
      if (lacks(t, caps, "cancel")) return;
      const queue = jobs.queue<Item>(uniqueName("refused"));
      await queue.enqueue({ n: 1 });
      const [job] = await queue.dequeueMany(1);
      await queue.cancel(job!.id);
      const results = await queue.acknowledgeMany([job!]);
      assert.ok(results[0] instanceof ConflictError);
      const ghost: Job<Item> = { ...job!, id: "no-such-job" };
      const gone = await queue.releaseMany([ghost]);
      assert.ok(gone[0] instanceof NotFoundError);
    });

    it("work() with prefetch runs every job once, in batches, and releases what it holds on stop", async (t) => {
      if (lacks(t, caps, "exactStats")) return;
      const queue = jobs.queue<Item>(uniqueName("worker"));
      const total = 500;
      await queue.enqueueMany(Array.from({ length: total }, (_, n) => ({ data: { n } })));
      const seen = new Map<number, number>();
      const errors: unknown[] = [];
      const worker = queue.work(async (job) => {
        seen.set(job.data.n, (seen.get(job.data.n) ?? 0) + 1);
      }, { concurrency: 8, prefetch: 64, waitMs: 200, onError: (e) => errors.push(e) });
      const deadline = Date.now() + 30_000;
      while ((await queue.stats()).completed < total) {
        assert.ok(Date.now() < deadline, `drained ${(await queue.stats()).completed} of ${total}`);
        await sleep(20);
      }
      await worker.stop();
      assert.equal(seen.size, total);
      assert.ok([...seen.values()].every((c) => c === 1), "a job ran twice");
      assert.deepEqual(errors, []);

      // A slow handler: the prefetched claims wait, and stop() hands them
      // back at once (pending, attempt not counted), not after their leases.
      await queue.enqueueMany(Array.from({ length: 20 }, (_, n) => ({ data: { n: 1000 + n } })));
      let started = 0;
      const slow = queue.work(async () => {
        started++;
        await sleep(300);
      }, { concurrency: 1, prefetch: 10, waitMs: 200 });
      while (started === 0) await sleep(10);
      await sleep(50); // the prefetch has come
      await slow.stop();
      const st = await queue.stats();
      assert.equal(st.processing, 0, "a prefetched claim was kept after stop");
      assert.equal(st.completed, total + started);
      assert.equal(st.pending, 20 - started);
      const next = await queue.dequeueMany(100);
      assert.ok(next.every((j) => j.attempts === 1), "a released claim kept its attempt");
      assert.deepEqual(await queue.acknowledgeMany(next), next.map(() => null));
    });

    it("work() fails a throwing handler's job through failMany and renews waiting claims", async (t) => {
      if (lacks(t, caps, "exactStats", "getJob")) return;
      const queue = jobs.queue<Item>(uniqueName("renew"));
      await queue.enqueueMany([{ data: { n: 1 }, maxAttempts: 1 }, { data: { n: 2 } }, { data: { n: 3 } }]);
      const worker = queue.work(async (job) => {
        if (job.data.n === 1) throw new RangeError("bad input");
        await sleep(400); // longer than the lease: only heartbeats keep the claims
      }, { concurrency: 1, prefetch: 4, leaseMs: 150, waitMs: 100 });
      const deadline = Date.now() + 15_000;
      while ((await queue.stats()).completed < 2) {
        assert.ok(Date.now() < deadline, "did not finish");
        await sleep(20);
      }
      await worker.stop();
      const st = await queue.stats();
      assert.equal(st.failed, 1);
      assert.equal(st.completed, 2);
      const dead = await queue.listFailed();
      assert.equal(dead[0]?.lastError?.name, "RangeError");
      // Renewed while waiting and while running: each ran on its first attempt.
      for (const j of await Promise.all((await queue.listFailed()).map((d) => queue.getJob(d.id)))) assert.equal(j?.attempts, 1);
    });
  });
}
