// Issue 17, the rest: a job's own timeout (kept with it, winning over the
// worker's) and queue.events(), against a real daemon on every backend.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JobTimeoutError, SocketJobQueueBackend, ValidationError, type QueueEvent } from "../src/index.js";
import { BACKENDS, lacks, sleep, uniqueName, withJobsDaemon, type JobCapability } from "./harness.js";

for (const backend of BACKENDS) {
  describe(`job timeouts and queue events on ${backend}`, () => {
    let jobs: SocketJobQueueBackend, caps: Record<JobCapability, boolean>;
    withJobsDaemon(backend, (s) => ({ jobs, caps } = s));

    it("keeps a job's timeoutMs with it, and the job's own timeout wins over work()'s", async () => {
      const queue = jobs.queue<string>(uniqueName("timeouts"));
      await queue.enqueue("short", { timeoutMs: 300, maxAttempts: 1 });
      await queue.enqueue("long", { timeoutMs: 20_000 });
      await queue.enqueue("plain");
      const outcome = new Map<string, string>();
      const timeouts = new Map<string, number | undefined>();
      const worker = queue.work(
        async (job, { signal }) => {
          timeouts.set(job.data, job.timeoutMs);
          // Runs 1.5 s unless its signal aborts first.
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 1_500);
            signal.addEventListener("abort", () => {
              clearTimeout(t);
              resolve();
            });
          });
          outcome.set(job.data, signal.aborted ? (signal.reason as Error).name : "finished");
        },
        { concurrency: 3, timeoutMs: 800 },
      );
      const end = Date.now() + 20_000;
      while (outcome.size < 3 && Date.now() < end) await sleep(20);
      await worker.stop();
      assert.deepEqual(Object.fromEntries(timeouts), { short: 300, long: 20_000, plain: undefined });
      // short: its own 300 ms; long: its own 20 s beats the worker's 0.8 s; plain: the worker's.
      assert.deepEqual(Object.fromEntries(outcome), { short: new JobTimeoutError("x").name, long: "finished", plain: new JobTimeoutError("x").name });
      await assert.rejects(queue.enqueue("bad", { timeoutMs: 0 }), ValidationError);
      await assert.rejects(queue.enqueueMany([{ data: "bad", timeoutMs: 2 ** 31 }]), ValidationError);
    });

    it("events() follows a queue: in order, each with a cursor that goes on after a restart of the iteration", async (t) => {
      if (lacks(t, caps, "events")) return;
      const queue = jobs.queue<number, string>(uniqueName("events"));
      const stop = new AbortController();
      const seen: QueueEvent<string>[] = [];
      const reading = (async () => {
        for await (const e of queue.events({ signal: stop.signal, waitMs: 1_000 })) {
          seen.push(e);
          if (e.type === "completed") break;
        }
      })();
      await sleep(200); // the feed starts when it is first read
      const id = await queue.enqueue(7);
      const worker = queue.work(async (job, { progress }) => {
        await progress(50);
        await sleep(300);
        return `done ${job.data}`;
      });
      await reading;
      await worker.stop();
      const mine = seen.filter((e) => e.jobId === id);
      const types = mine.map((e) => e.type);
      // A reader that keeps up sees every step; one that fell behind a
      // step sees the job's later state instead (the feed keeps each job's
      // latest transition): the steps seen are in order, ending completed.
      const order = ["enqueued", "started", "progress", "completed"];
      assert.equal(types.at(-1), "completed");
      assert.deepEqual(types, [...types].sort((a, b) => order.indexOf(a) - order.indexOf(b)), `events ${types.join(",")}`);
      assert.equal(new Set(types).size, types.length, `events ${types.join(",")}`);
      const done = mine.at(-1)!;
      assert.equal(done.result, "done 7");
      assert.ok(done.at instanceof Date && done.at.getTime() > 0);
      assert.equal(done.attempt, 1);
      const progress = mine.find((e) => e.type === "progress");
      if (progress) assert.equal(progress.progress, 50);

      // Going on from the last cursor sees only what happens next.
      const more = await queue.enqueue(8);
      const next: QueueEvent<string>[] = [];
      for await (const e of queue.events({ after: done.cursor, waitMs: 1_000 })) {
        next.push(e);
        break;
      }
      assert.deepEqual(
        next.map((e) => [e.type, e.jobId]),
        [["enqueued", more]],
      );
      // An aborted iteration ends without an error.
      const idle = new AbortController();
      setTimeout(() => idle.abort(), 100);
      for await (const e of queue.events({ after: next[0]!.cursor, signal: idle.signal, waitMs: 10_000 })) assert.fail(`no event expected, got ${e.type}`);
      stop.abort();
    });
  });
}
