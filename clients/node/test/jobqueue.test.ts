import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ConflictError, JobStatus, SocketJobQueueBackend, StorageUnavailableError, ValidationError, type Job, type JobQueue } from "../src/index.js";
import { BACKENDS, lacks, sleep, uniqueName, withJobsDaemon, type JobCapability, type TestDaemon } from "./harness.js";

interface ExecutePlanJob {
  planId: string;
  executionId?: string;
  failTimes?: number;
}

for (const backend of BACKENDS) {
  describe(`job queue on ${backend}`, () => {
    let daemon: TestDaemon, jobs: SocketJobQueueBackend, caps: Record<JobCapability, boolean>;
    withJobsDaemon(backend, (s) => ({ daemon, jobs, caps } = s));
    afterEach(() => {
      // Every test settles what it claims, refused settles included: no claim may stay behind.
      assert.equal(jobs.heldClaims(), 0, "claims left in the client's book");
    });

    it("runs the seed's processJobs loop, retrying a failing job", async () => {
      const queue = jobs.queue<ExecutePlanJob>(uniqueName("plans"));
      const fixed = { type: "fixed" as const, delayMs: 0 };
      const ids = [
        await queue.enqueue({ planId: "ok-1" }, { backoff: fixed }),
        await queue.enqueue({ planId: "flaky", failTimes: 2 }, { backoff: fixed }),
        await queue.enqueue({ planId: "ok-2" }, { runAt: new Date(Date.now() + 200), backoff: fixed }),
      ];
      const runs = new Map<string, number>();
      async function executePlan(data: ExecutePlanJob): Promise<void> {
        const n = (runs.get(data.planId) ?? 0) + 1;
        runs.set(data.planId, n);
        if (n <= (data.failTimes ?? 0)) throw new Error(`attempt ${n} of ${data.planId} failed`);
      }
      // The seed's loop, as users wrote it (shorter sleep, and it ends).
      const deadline = Date.now() + 10_000;
      while ((runs.get("ok-2") ?? 0) < 1 || (runs.get("flaky") ?? 0) < 3) {
        assert.ok(Date.now() < deadline, "processing loop did not finish");
        const job = await queue.dequeue();
        if (!job) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        try {
          await executePlan(job.data);
          await queue.acknowledge(job.id);
        } catch (error) {
          await queue.fail(job.id, error as Error, true);
        }
      }
      assert.deepEqual(Object.fromEntries(runs), { "ok-1": 1, flaky: 3, "ok-2": 1 });
      // Where jobs can be looked up by id (not on SQS), their records agree.
      if (caps.getJob) {
        for (const id of ids) assert.equal(await queue.getStatus(id), JobStatus.COMPLETED);
        const flaky = await queue.getJob(ids[1]!);
        assert.equal(flaky?.attempts, 3);
        assert.equal(flaky.lastError?.message, "attempt 2 of flaky failed");
      }
    });

    it("returns Dates and fences stale claims", async (t) => {
      if (lacks(t, caps, "milliseconds", "getJob")) return;
      const name = uniqueName("fence");
      const queue = jobs.queue<ExecutePlanJob>(name);
      const id = await queue.enqueue({ planId: "p" });
      const job = (await queue.dequeue({ leaseMs: 50 }))!;
      assert.equal(job.id, id);
      for (const d of [job.runAt, job.createdAt, job.updatedAt, job.startedAt, job.leaseExpiresAt]) assert.ok(d instanceof Date);
      await sleep(100);
      // Another worker (another client) takes the job over.
      const other = new SocketJobQueueBackend({ socketPath: daemon.socketPath });
      await other.connect();
      const taken = (await other.queue<ExecutePlanJob>(name).dequeue())!;
      assert.equal(taken.id, id);
      assert.equal(taken.attempts, 2);
      await assert.rejects(queue.acknowledge(id), ConflictError);
      await other.queue(name).acknowledge(id);
      assert.equal(await queue.getStatus(id), JobStatus.COMPLETED);
      await other.disconnect();
      await assert.rejects(queue.acknowledge("never-dequeued"), ValidationError);
      assert.equal(await queue.getStatus("no-such-job"), null);
    });

    it("works jobs with concurrency, heartbeats and a drain on stop", async (t) => {
      if (lacks(t, caps, "milliseconds", "exactStats", "getJob")) return;
      const queue = jobs.queue<{ n: number; slow?: boolean; boom?: boolean }>(uniqueName("work"));
      const ids = await queue.enqueueMany(
        Array.from({ length: 40 }, (_, n) => ({ data: { n, slow: n === 0, boom: n === 1 }, backoff: { type: "fixed" as const, delayMs: 0 } })),
      );
      assert.equal(ids.length, 40);
      const seen = new Map<number, number>();
      let boomed = false;
      const worker = queue.work(
        async (job: Job<{ n: number; slow?: boolean; boom?: boolean }>) => {
          seen.set(job.data.n, (seen.get(job.data.n) ?? 0) + 1);
          if (job.data.slow) await sleep(1500); // outlives the 600 ms lease: heartbeats must keep it
          if (job.data.boom && !boomed) {
            boomed = true;
            throw new Error("first try fails");
          }
        },
        { concurrency: 4, leaseMs: 600, waitMs: 200 },
      );
      const deadline = Date.now() + 15_000;
      while ((await queue.stats()).completed < 40) {
        assert.ok(Date.now() < deadline, "worker did not finish");
        await sleep(50);
      }
      await worker.stop();
      assert.equal(seen.get(0), 1, "the slow job was delivered again: heartbeats did not hold its lease");
      assert.equal(seen.get(1), 2);
      for (let n = 2; n < 40; n++) assert.equal(seen.get(n), 1, `job ${n}`);
      const slow = await queue.getJob(ids[0]!);
      assert.equal(slow?.attempts, 1);
    });

    it("stop() waits for the job in flight to be acknowledged", async (t) => {
      if (lacks(t, caps, "getJob")) return;
      const queue = jobs.queue<{ n: number }>(uniqueName("drain"));
      const id = await queue.enqueue({ n: 1 });
      let started!: () => void;
      const isStarted = new Promise<void>((r) => (started = r));
      const worker = queue.work(async () => {
        started();
        await sleep(300);
      }, { waitMs: 1000 });
      await isStarted;
      await worker.stop();
      assert.equal(await queue.getStatus(id), JobStatus.COMPLETED);
    });

    it("dedupes, cancels, lists and retries dead letters", async (t) => {
      if (lacks(t, caps, "dedupeKeys", "cancel", "getJob", "exactStats")) return;
      const queue = jobs.queue<{ k: string }>(uniqueName("dlq"));
      const a = await queue.enqueue({ k: "a" }, { key: "same", maxAttempts: 1 });
      assert.equal(await queue.enqueue({ k: "b" }, { key: "same" }), a);
      const c = await queue.enqueue({ k: "c" }, { delayMs: 60_000 });
      await queue.cancel(c);
      assert.equal(await queue.getStatus(c), JobStatus.CANCELLED);
      const job = (await queue.dequeue())!;
      const err = new TypeError("bad input");
      await queue.fail(job.id, err);
      const failed = await queue.listFailed();
      assert.equal(failed.length, 1);
      assert.equal(failed[0]?.lastError?.name, "TypeError");
      assert.match(failed[0].lastError.stack ?? "", /bad input/);
      const stats = await queue.stats();
      assert.equal(stats.failed, 1);
      assert.equal(stats.cancelled, 1);
      await queue.retryFailed(a);
      assert.equal(await queue.getStatus(a), JobStatus.PENDING);
      const again = (await queue.dequeue())!;
      await queue.fail(again.id, new Error("still bad"), false);
      assert.equal(await queue.purgeFailed(), 1);
      assert.equal(await queue.getJob(a), null);
      assert.deepEqual(await queue.listFailed(), []);
      await assert.rejects(queue.enqueue({ k: "x" }, { maxAttempts: 0 }), ValidationError);
      await assert.rejects(queue.dequeue({ waitMs: 120_000 }), ValidationError);
    });

    /** Claims job id again after its first claim (leaseMs 100) ran out: the second claim, in this process. */
    async function claimAgain<T>(queue: JobQueue<T>, id: string): Promise<Job<T>> {
      const deadline = Date.now() + 15_000;
      for (;;) {
        assert.ok(Date.now() < deadline, "the expired claim was never handed out again");
        const again = await queue.dequeue({ leaseMs: 60_000 });
        if (again) {
          assert.equal(again.id, id);
          return again;
        }
        await sleep(20);
      }
    }

    it("fences two claims of one job in one process: the stale one cannot settle the live one", async (t) => {
      if (lacks(t, caps, "milliseconds", "getJob")) return;
      const queue = jobs.queue<string>(uniqueName("fence1p"));
      const id = await queue.enqueue("x");
      const first = (await queue.dequeue({ leaseMs: 100 }))!;
      assert.equal(first.id, id);
      const second = await claimAgain(queue, id);
      assert.notEqual(second.lease, first.lease);
      assert.equal(jobs.heldClaims(), 2);
      // By id alone the client cannot tell whose claim is meant: refused, nothing sent.
      for (const settle of [() => queue.acknowledge(id), () => queue.fail(id, new Error("slow")), () => queue.heartbeat(id)]) {
        await assert.rejects(settle(), (e: unknown) => e instanceof ConflictError && /pass the Job/.test(e.message));
      }
      assert.equal(await queue.getStatus(id), JobStatus.PROCESSING);
      // The first claim's own token is stale.
      await assert.rejects(queue.heartbeat(first), ConflictError);
      await assert.rejects(queue.acknowledge(first), ConflictError);
      await assert.rejects(queue.fail(first, new Error("slow")), ConflictError);
      assert.equal(jobs.heldClaims(), 1, "a refused settle left its claim behind");
      assert.equal(await queue.getStatus(id), JobStatus.PROCESSING);
      await queue.heartbeat(second, 60_000);
      await queue.acknowledge(second);
      assert.equal(await queue.getStatus(id), JobStatus.COMPLETED);
      assert.equal(jobs.heldClaims(), 0);
      // The seed's form still works when one claim is held.
      const id2 = await queue.enqueue("y");
      const job = (await queue.dequeue())!;
      assert.equal(job.id, id2);
      await queue.fail(job.id, new Error("once"), true);
      assert.equal(jobs.heldClaims(), 0);
    });

    it("work() settles its own claim, not a stale claim of the same job held elsewhere in the process", async (t) => {
      if (lacks(t, caps, "milliseconds", "getJob")) return;
      const queue = jobs.queue<string>(uniqueName("fencework"));
      const id = await queue.enqueue("x");
      const stale = (await queue.dequeue({ leaseMs: 100 }))!;
      await sleep(150);
      const ran: string[] = [];
      const errors: unknown[] = [];
      const worker = queue.work(async (job) => {
        ran.push(job.lease!);
      }, { concurrency: 2, waitMs: 1000, onError: (e) => errors.push(e) });
      const deadline = Date.now() + 15_000;
      while ((await queue.getStatus(id)) !== JobStatus.COMPLETED) {
        assert.ok(Date.now() < deadline, `the worker did not complete its claim: ${errors.map(String).join("; ")}`);
        await sleep(20);
      }
      await worker.stop();
      assert.equal(ran.length, 1);
      assert.notEqual(ran[0], stale.lease);
      assert.deepEqual(errors, []);
      await assert.rejects(queue.acknowledge(stale), ConflictError);
      assert.equal(jobs.heldClaims(), 0);
    });

    it("refuses what cannot be sent with ValidationError, and enqueues no jobs without a request", async () => {
      const queue = jobs.queue(uniqueName("client-errors"));
      await assert.rejects(queue.enqueue({ n: 10n }), (e: unknown) => e instanceof ValidationError && /BigInt/i.test(e.message));
      const circular: Record<string, unknown> = {};
      circular["self"] = circular;
      await assert.rejects(queue.enqueue(circular), (e: unknown) => e instanceof ValidationError && /circular/i.test(e.message));
      await assert.rejects(queue.enqueue(1, { runAt: new Date("x") }), (e: unknown) => e instanceof ValidationError && /runAt/.test(e.message));
      await assert.rejects(
        queue.enqueueMany([{ data: 1 }, { data: 2, runAt: new Date(NaN) }]),
        (e: unknown) => e instanceof ValidationError && /jobs\[1\]\.runAt/.test(e.message),
      );
      assert.deepEqual(await queue.enqueueMany([]), []);
      assert.equal((await queue.stats()).pending, 0);
      const idle = new SocketJobQueueBackend({ socketPath: daemon.socketPath });
      await assert.rejects(idle.queue().enqueueMany([]), StorageUnavailableError, "not connected is still an error");
    });

    it("works jobs to the end and through the dead letters, seen by the worker alone (every backend, SQS too)", async () => {
      const queue = jobs.queue<{ n: number; boom?: boolean }>(uniqueName("observed"));
      const fixed = { type: "fixed" as const, delayMs: 0 };
      const ids = await queue.enqueueMany(
        Array.from({ length: 20 }, (_, n) => ({ data: { n, boom: n === 3 }, maxAttempts: 2, backoff: fixed })),
      );
      const seen = new Map<number, number[]>();
      const worker = queue.work(
        async (job: Job<{ n: number; boom?: boolean }>) => {
          seen.set(job.data.n, [...(seen.get(job.data.n) ?? []), job.attempts]);
          if (job.data.boom) throw new TypeError(`boom ${job.attempts}`);
        },
        { concurrency: 3, waitMs: 200 },
      );
      const deadline = Date.now() + 20_000;
      while ((await queue.listFailed()).length < 1 || seen.size < 20) {
        assert.ok(Date.now() < deadline, `worker did not finish: ${seen.size} of 20 seen`);
        await sleep(50);
      }
      await worker.stop();
      for (let n = 0; n < 20; n++) assert.deepEqual(seen.get(n), n === 3 ? [1, 2] : [1], `job ${n}`);
      const [dead] = await queue.listFailed();
      assert.equal(dead?.id, ids[3]);
      assert.equal(dead?.attempts, 2);
      assert.equal(dead.lastError?.name, "TypeError");
      assert.equal(dead.lastError.message, "boom 2");
      await queue.retryFailed(ids[3]!);
      const again = (await queue.dequeue({ waitMs: 5_000 }))!;
      assert.equal(again.id, ids[3]);
      assert.equal(again.attempts, 1);
      await queue.fail(again, new Error("for good"), false);
      assert.equal(await queue.purgeFailed(), 1);
      assert.deepEqual(await queue.listFailed(), []);
      assert.equal(await queue.dequeue(), null);
    });

    it("wakes a long poll on enqueue", async () => {
      const queue = jobs.queue<string>(uniqueName("poll"));
      const started = Date.now();
      const waiting = queue.dequeue({ waitMs: 20_000 });
      await sleep(100);
      const id = await queue.enqueue("hello");
      const job = await waiting;
      assert.equal(job?.id, id);
      assert.equal(job.data, "hello");
      assert.ok(Date.now() - started < 10_000, "long poll not woken by the enqueue");
      await queue.acknowledge(id);
    });
  });
}
