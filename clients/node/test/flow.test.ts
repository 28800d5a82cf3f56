import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JobStatus, NotFoundError, SocketJobQueueBackend, ValidationError, type Job } from "../src/index.js";
import { BACKENDS, lacks, uniqueName, withJobsDaemon, type JobCapability } from "./harness.js";

// Flow control (issue 16) through the client against a real daemon on
// each backend: settings, pause and resume, and a worker held to the
// queue's concurrency.
for (const backend of BACKENDS) {
  describe(`queue flow control on ${backend}`, () => {
    let jobs: SocketJobQueueBackend, caps: Record<JobCapability, boolean>;
    withJobsDaemon(backend, (s) => ({ jobs, caps } = s));

    it("configures, reads back, and refuses bad settings", async (t) => {
      if (lacks(t, caps, "flowControl")) return;
      const queue = jobs.queue(uniqueName("flow"));
      assert.deepEqual(await queue.settings(), { paused: false, concurrency: null, rateLimit: null });
      const set = await queue.configure({ concurrency: 2, rateLimit: { max: 10, durationMs: 1000 } });
      assert.deepEqual(set, { paused: false, concurrency: 2, rateLimit: { max: 10, durationMs: 1000 } });
      assert.deepEqual(await queue.settings(), set);
      await assert.rejects(queue.configure({ concurrency: 0 }), ValidationError);
      assert.deepEqual(await queue.settings(), set);
      await queue.configure({});
      assert.deepEqual(await queue.settings(), { paused: false, concurrency: null, rateLimit: null });
    });

    it("pauses and resumes: a waiting dequeue gets the job at resume", async (t) => {
      if (lacks(t, caps, "flowControl")) return;
      const queue = jobs.queue<{ n: number }>(uniqueName("flow"));
      await queue.pause();
      const id = await queue.enqueue({ n: 1 });
      assert.equal(await queue.dequeue(), null);
      const stats = await queue.stats();
      assert.equal(stats.paused, true);
      assert.equal(stats.pending, 1);
      const waiting = queue.dequeueMany(1, { waitMs: 20_000 });
      const start = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 200));
      await queue.resume();
      const got = await waiting;
      assert.equal(got.length, 1);
      assert.equal(got[0]!.id, id);
      assert.ok(Date.now() - start < 10_000, "the resume did not wake the waiting dequeue");
      await queue.acknowledge(got[0]!);
      assert.equal((await queue.stats()).paused, false);
    });

    it("holds a worker to the queue's concurrency", async (t) => {
      if (lacks(t, caps, "flowControl")) return;
      const queue = jobs.queue<{ n: number }>(uniqueName("flow"));
      await queue.configure({ concurrency: 2 });
      await queue.enqueueMany(Array.from({ length: 12 }, (_, n) => ({ data: { n } })));
      let running = 0;
      let peak = 0;
      const done: number[] = [];
      const worker = queue.work(
        async (job: Job<{ n: number }>) => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((resolve) => setTimeout(resolve, 10));
          running--;
          done.push(job.data.n);
        },
        { concurrency: 8 },
      );
      const deadline = Date.now() + 20_000;
      while (done.length < 12 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      await worker.stop();
      assert.equal(done.length, 12);
      assert.ok(peak <= 2, `${peak} handlers ran at once under concurrency 2`);
    });
  });
}

for (const backend of BACKENDS) {
  describe(`unique enqueue on ${backend}`, () => {
    let jobs: SocketJobQueueBackend, caps: Record<JobCapability, boolean>;
    withJobsDaemon(backend, (s) => ({ jobs, caps } = s));

    it("holds a key past completion, and replaces a pending holder", async (t) => {
      if (lacks(t, caps, "dedupeKeys", "getJob")) return;
      const queue = jobs.queue<{ v: number }>(uniqueName("uniq"));
      const unique = { key: "hook-1", states: [JobStatus.COMPLETED] };
      const id = await queue.enqueue({ v: 1 }, { unique });
      assert.equal(await queue.enqueue({ v: 2 }, { unique }), id);
      const job = await queue.dequeue();
      assert.equal(job?.id, id);
      await queue.acknowledge(job);
      assert.equal(await queue.enqueue({ v: 3 }, { unique }), id, "a completed job holds the key for states [completed]");

      const replace = { key: "profile", mode: "replace" as const };
      const held = await queue.enqueue({ v: 1 }, { unique: replace, delayMs: 60_000 });
      assert.equal(await queue.enqueue({ v: 2 }, { unique: replace }), held);
      const got = await queue.dequeue();
      assert.equal(got?.id, held);
      assert.deepEqual(got.data, { v: 2 });
      await queue.acknowledge(got);
      await assert.rejects(queue.enqueue({ v: 1 }, { unique: { key: "k", mode: "merge" as "keep" } }), ValidationError);
    });
  });
}

for (const backend of BACKENDS) {
  describe(`schedules on ${backend}`, () => {
    let jobs: SocketJobQueueBackend, caps: Record<JobCapability, boolean>;
    withJobsDaemon(backend, (s) => ({ jobs, caps } = s));

    it("puts a schedule idempotently, fires it, lists and deletes it", async (t) => {
      if (lacks(t, caps, "schedules")) return;
      const queue = jobs.queue<{ report: string }>(uniqueName("sched"));
      const s = await queue.schedule("tick", { everyMs: 1000 }, { report: "r" }, { priority: 2, overlap: "allow" });
      assert.equal(s.name, "tick");
      assert.equal(s.everyMs, 1000);
      assert.ok(s.next instanceof Date && s.next.getTime() % 1000 === 0);
      const again = await queue.schedule("tick", { everyMs: 1000 }, { report: "r" }, { priority: 2, overlap: "allow" });
      assert.equal(again.updatedAt.getTime(), s.updatedAt.getTime(), "the same schedule again changed it");
      await queue.schedule("nightly", { cron: "0 3 * * *", tz: "Europe/Paris" }, { report: "nightly" });
      assert.deepEqual((await queue.schedules()).map((x) => x.name), ["nightly", "tick"]);
      // The daemon's scheduler enqueues the slot's job.
      const got = await queue.dequeueMany(1, { waitMs: 10_000 });
      assert.equal(got.length, 1);
      assert.deepEqual(got[0]!.data, { report: "r" });
      assert.equal(got[0]!.priority, 2);
      await queue.acknowledge(got[0]!);
      await queue.unschedule("tick");
      await queue.unschedule("nightly");
      assert.deepEqual(await queue.schedules(), []);
      await assert.rejects(queue.unschedule("tick"), NotFoundError);
      await assert.rejects(queue.schedule("bad", { cron: "not cron" }, { report: "x" }), ValidationError);
      // Jobs fired before the delete may wait; drain them.
      for (const j of await queue.dequeueMany(100)) await queue.acknowledge(j);
    });
  });
}
