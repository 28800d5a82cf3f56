// Issue 13, item 1: stopping a worker (or closing the Fastify app) while
// its long poll waits must not cost the next job an attempt. Before the
// fix the abandoned poll stayed in the daemon, claimed the next job and
// nobody ran it: with maxAttempts 1 it was dead-lettered as LeaseExpired.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import storaged, { JobStatus, SocketJobQueueBackend } from "../src/index.js";
import { BACKENDS, jobCapabilities, sleep, startDaemon, uniqueName, type JobCapability, type TestDaemon } from "./harness.js";

for (const backend of BACKENDS) {
  describe(`abandoned long polls on ${backend}`, () => {
    let daemon: TestDaemon;
    let caps: Record<JobCapability, boolean>;
    before(async () => {
      daemon = await startDaemon(backend);
      caps = await jobCapabilities(daemon.socketPath);
    });
    after(async () => {
      await daemon.stop();
    });

    it("worker.stop() leaves the next job to the next worker", async () => {
      const jobs = new SocketJobQueueBackend({ socketPath: daemon.socketPath });
      await jobs.connect();
      const name = uniqueName("stopped");
      const queue = jobs.queue<{ n: number }>(name);
      const worker = queue.work(async () => assert.fail("the stopped worker must not run a job"), { waitMs: 30_000, concurrency: 2 });
      await sleep(100); // the polls are waiting in the daemon
      await worker.stop();
      const id = await queue.enqueue({ n: 1 }, { maxAttempts: 1 });

      const ran: string[] = [];
      const next = queue.work(async (job) => {
        ran.push(job.id);
        assert.equal(job.attempts, 1);
      }, { waitMs: 5_000 });
      const deadline = Date.now() + 10_000;
      while (ran.length === 0 && Date.now() < deadline) await sleep(20);
      await next.stop();
      assert.deepEqual(ran, [id]);
      if (caps.getJob) assert.equal(await queue.getStatus(id), JobStatus.COMPLETED);
      await jobs.disconnect();
    });

    it("fastify.close() leaves the next job to the next app", async () => {
      const name = uniqueName("closed");
      const app = Fastify();
      await app.register(storaged, { socketPath: daemon.socketPath });
      await app.ready();
      app.jobQueue.queue<{ n: number }>(name).work(async () => assert.fail("the closed app must not run a job"), { waitMs: 30_000 });
      await sleep(100);
      await app.close();

      const app2 = Fastify();
      await app2.register(storaged, { socketPath: daemon.socketPath });
      await app2.ready();
      const queue = app2.jobQueue.queue<{ n: number }>(name);
      const id = await queue.enqueue({ n: 2 }, { maxAttempts: 1 });
      const job = await queue.dequeue({ waitMs: 5_000 });
      assert.equal(job?.id, id);
      assert.equal(job.attempts, 1);
      await queue.acknowledge(id);
      await app2.close();
    });
  });
}
