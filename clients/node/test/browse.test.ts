import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConflictError, JobStatus, NotFoundError, SocketJobQueueBackend, ValidationError } from "../src/index.js";
import { BACKENDS, lacks, uniqueName, withJobsDaemon, type JobCapability } from "./harness.js";

// Browsing jobs (issue 20) through the client against a real daemon on
// each backend: find in pages, bulk actions, edits of pending jobs, the
// overview of every queue.
for (const backend of BACKENDS) {
  describe(`job browsing on ${backend}`, () => {
    let jobs: SocketJobQueueBackend, caps: Record<JobCapability, boolean>;
    withJobsDaemon(backend, (s) => ({ jobs, caps } = s));

    it("finds failed jobs by data, retries them and sees them complete", async (t) => {
      if (lacks(t, caps, "browse")) return;
      const queue = jobs.queue<{ to: string; n: number }>(uniqueName("browse"));
      for (let n = 0; n < 5; n++) await queue.enqueue({ to: `u${n}@example.com`, n }, { maxAttempts: 1 });
      const claimed = await queue.dequeueMany(5);
      for (const j of claimed) await queue.fail(j, new TypeError(`bad ${j.data.n}`));
      const page = await queue.findJobs({ status: JobStatus.FAILED, filter: { n: { $gte: 3 } }, limit: 1 });
      assert.equal(page.jobs.length, 1);
      assert.ok(page.next);
      assert.ok(page.jobs[0]!.finishedAt instanceof Date);
      assert.equal(page.jobs[0]!.lastError?.name, "TypeError");
      const rest = await queue.findJobs({ status: JobStatus.FAILED, filter: { n: { $gte: 3 } }, limit: 1, after: page.next });
      assert.equal(rest.jobs.length, 1);
      assert.notEqual(rest.jobs[0]!.id, page.jobs[0]!.id);
      assert.deepEqual(await queue.retryJobs({ status: JobStatus.FAILED, filter: { n: { $gte: 3 } } }), { affected: 2 });
      const pending = await queue.findJobs({ status: JobStatus.PENDING });
      assert.deepEqual(pending.jobs.map((j) => j.data.n).sort(), [3, 4]);
      assert.equal(pending.next, null);
      const again = await queue.dequeueMany(2);
      for (const j of again) await queue.acknowledge(j, undefined);
      const done = await queue.findJobs({ status: JobStatus.COMPLETED });
      assert.equal(done.jobs.length, 2);
      assert.deepEqual(await queue.deleteJobs({ ids: done.jobs.map((j) => j.id) }), { affected: 2 });
      assert.deepEqual(await queue.cancelJobs({ status: [JobStatus.PENDING, JobStatus.PROCESSING] }), { affected: 0 });
      await assert.rejects(queue.findJobs({ filter: { "a..b": 1 } }), ValidationError);
      await assert.rejects(queue.retryJobs({ status: JobStatus.PENDING }), ValidationError);
    });

    it("reschedules a pending job and refuses to edit another", async (t) => {
      if (lacks(t, caps, "browse")) return;
      const queue = jobs.queue<{ v: number }>(uniqueName("browse"));
      const id = await queue.enqueue({ v: 1 }, { runAt: new Date(Date.now() + 3_600_000) });
      assert.equal(await queue.dequeue(), null);
      const moved = await queue.updateJob(id, { runAt: new Date(), data: { v: 2 } });
      assert.equal(moved.status, JobStatus.PENDING);
      const job = await queue.dequeue();
      assert.equal(job?.id, id);
      assert.deepEqual(job.data, { v: 2 });
      await assert.rejects(queue.updateJob(id, { priority: 1 }), ConflictError);
      await assert.rejects(queue.updateJob("missing", { priority: 1 }), NotFoundError);
      await queue.acknowledge(job);
    });

    it("lists every queue with its stats and settings", async (t) => {
      if (lacks(t, caps, "browse")) return;
      const name = uniqueName("browse");
      const queue = jobs.queue(name);
      await queue.enqueue({});
      await queue.pause();
      const list = await jobs.queues();
      const mine = list.find((q) => q.queue === name);
      assert.ok(mine);
      assert.equal(mine.stats.pending, 1);
      assert.equal(mine.settings?.paused, true);
      assert.equal(mine.lastHour?.completed.length, 12);
    });

    it("is refused where the job queue cannot list its jobs", async (t) => {
      if (caps.browse) {
        t.skip(`${backend} can browse`);
        return;
      }
      await assert.rejects(jobs.queue(uniqueName("browse")).findJobs(), ValidationError);
    });
  });
}
