// What a job reports (issue 17, first part): results, progress, waiting
// for a job to finish, and a handler's signal aborted when its claim is
// gone — against a real daemon on every backend.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ConflictError, JobStatus, JobTimeoutError, SocketJobQueueBackend, ValidationError } from "../src/index.js";
import { BACKENDS, jobCapabilities, lacks, sleep, startDaemon, uniqueName, type JobCapability, type TestDaemon } from "./harness.js";

interface Render {
  page: string;
}
interface Rendered {
  url: string;
  bytes: number;
}

for (const backend of BACKENDS) {
  describe(`job results and progress on ${backend}`, () => {
    let daemon: TestDaemon;
    let jobs: SocketJobQueueBackend;
    // Results, progress and waitFor are read back by id: not on SQS.
    let caps: Record<JobCapability, boolean>;
    before(async () => {
      daemon = await startDaemon(backend);
      caps = await jobCapabilities(daemon.socketPath);
      jobs = new SocketJobQueueBackend({ socketPath: daemon.socketPath });
      await jobs.connect();
    });
    after(async () => {
      await jobs.disconnect();
      await daemon.stop();
    });

    it("keeps what the handler returns as the result, and waitFor answers it", async (t) => {
      if (lacks(t, caps, "getJob")) return;
      const queue = jobs.queue<Render, Rendered>(uniqueName("render"));
      const id = await queue.enqueue({ page: "home" });
      const waiting = queue.waitFor(id, { timeoutMs: 20_000 });
      const seen: number[] = [];
      const worker = queue.work(async (job, { progress }) => {
        await progress(40);
        seen.push((await queue.getJob(job.id))?.progress as number);
        await progress({ step: "upload" });
        return { url: `https://cdn/${job.data.page}.png`, bytes: 1234 };
      });
      const done = await waiting;
      await worker.stop();
      assert.ok(done);
      assert.equal(done.status, JobStatus.COMPLETED);
      assert.deepEqual(done.result, { url: "https://cdn/home.png", bytes: 1234 });
      assert.deepEqual(done.progress, { step: "upload" });
      assert.deepEqual(seen, [40]);
      assert.deepEqual((await queue.getJob(id))?.result, { url: "https://cdn/home.png", bytes: 1234 });
    });

    it("acknowledges with a result by hand, one or many", async (t) => {
      if (lacks(t, caps, "getJob")) return;
      const queue = jobs.queue<number, string>(uniqueName("byhand"));
      const ids = await queue.enqueueMany([{ data: 1 }, { data: 2 }, { data: 3 }]);
      const [a, b, c] = await queue.dequeueMany(3);
      await queue.acknowledge(a!, "one");
      assert.deepEqual(await queue.acknowledgeMany([b!, c!], ["two", undefined]), [null, null]);
      const results = await Promise.all(ids.map(async (id) => (await queue.getJob(id))?.result));
      assert.deepEqual(results, ["one", "two", undefined]);
    });

    it("waitFor answers failed and cancelled jobs, and null when time is up", async (t) => {
      if (lacks(t, caps, "getJob")) return;
      const queue = jobs.queue<number>(uniqueName("ends"));
      const failing = await queue.enqueue(1, { maxAttempts: 1 });
      const worker = queue.work(async () => {
        throw new Error("no such page");
      });
      const failed = await queue.waitFor(failing, { timeoutMs: 20_000 });
      await worker.stop();
      assert.equal(failed?.status, JobStatus.FAILED);
      assert.equal(failed.lastError?.message, "no such page");

      const pending = await queue.enqueue(2, { delayMs: 60_000 });
      const started = Date.now();
      assert.equal(await queue.waitFor(pending, { timeoutMs: 150 }), null);
      assert.ok(Date.now() - started >= 140);
      const cancelling = queue.waitFor(pending, { timeoutMs: 20_000 });
      await sleep(50);
      await queue.cancel(pending);
      assert.equal((await cancelling)?.status, JobStatus.CANCELLED);
      await assert.rejects(queue.waitFor(pending, { timeoutMs: -1 }), ValidationError);
    });

    it("aborts the handler's signal when its job is cancelled", async (t) => {
      if (lacks(t, caps, "getJob", "cancel")) return;
      const queue = jobs.queue<number>(uniqueName("cancel"));
      const id = await queue.enqueue(1);
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      let reason: unknown;
      const errors: unknown[] = [];
      // The default lease (30 s): a running handler's claim is checked
      // every second, not only at a third of the lease.
      const worker = queue.work(
        async (_job, { signal }) => {
          started();
          await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
          reason = signal.reason;
        },
        { onError: (e) => errors.push(e) },
      );
      await running;
      await queue.cancel(id);
      // Well before the 10 s of the lease-paced heartbeat.
      for (let i = 0; i < 100 && reason === undefined; i++) await sleep(50);
      await worker.stop();
      assert.ok(reason instanceof ConflictError, `signal reason: ${String(reason)}`);
      assert.equal((await queue.getJob(id))?.status, JobStatus.CANCELLED);
      assert.ok(errors.length > 0, "the refused heartbeat is reported to onError");
    });

    it("fails a handler at its timeout, aborting its signal, and retries the job", async (t) => {
      if (lacks(t, caps, "getJob")) return;
      const queue = jobs.queue<number, string>(uniqueName("timeout"));
      const id = await queue.enqueue(1, { maxAttempts: 2, backoff: { type: "fixed", delayMs: 0 } });
      const reasons: unknown[] = [];
      const worker = queue.work(
        async (job, { signal }) => {
          if (job.attempts > 1) return "second time lucky";
          await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
          reasons.push(signal.reason);
          return "too late: ignored";
        },
        { timeoutMs: 200 },
      );
      const done = await queue.waitFor(id, { timeoutMs: 20_000 });
      await worker.stop();
      assert.equal(done?.status, JobStatus.COMPLETED);
      assert.equal(done.result, "second time lucky");
      assert.equal(done.attempts, 2);
      assert.equal(done.lastError?.name, "TimeoutError");
      assert.ok(reasons[0] instanceof JobTimeoutError);
    });

    it("refuses progress outside 0-100 and a result over the limit", async (t) => {
      if (lacks(t, caps, "getJob")) return;
      const queue = jobs.queue<number>(uniqueName("limits"));
      await queue.enqueue(1);
      const job = await queue.dequeue();
      assert.ok(job);
      await assert.rejects(queue.progress(job, 101), ValidationError);
      await assert.rejects(queue.acknowledge(job, "x".repeat(70_000)), (e: unknown) => e instanceof ValidationError && e.code === "payload_too_large");
      await queue.acknowledge(job, "ok");
      assert.equal((await queue.getJob(job.id))?.result, "ok");
    });
  });
}
