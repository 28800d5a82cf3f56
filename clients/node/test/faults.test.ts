import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { describe, it } from "node:test";
import { JobStatus, SocketJobQueueBackend } from "../src/index.js";
import { BACKENDS, lacks, sleep, uniqueName, withJobsDaemon, type JobCapability, type TestDaemon } from "./harness.js";

const clientURL = new URL("../src/index.js", import.meta.url).href;

/** Runs a worker in another Node process; its stdout lines arrive in `lines`. */
function workerProcess(socketPath: string, queue: string, body: string): { child: ChildProcess; lines: string[] } {
  const script = `
    import { SocketJobQueueBackend } from ${JSON.stringify(clientURL)};
    const jobs = new SocketJobQueueBackend({ socketPath: ${JSON.stringify(socketPath)} });
    await jobs.connect();
    const queue = jobs.queue(${JSON.stringify(queue)});
    ${body}
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  let buf = "";
  child.stdout.on("data", (b: Buffer) => {
    buf += b.toString();
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
  });
  return { child, lines };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

for (const backend of BACKENDS) {
  describe(`worker faults on ${backend}`, () => {
    let daemon: TestDaemon, jobs: SocketJobQueueBackend, caps: Record<JobCapability, boolean>;
    withJobsDaemon(backend, (s) => ({ daemon, jobs, caps } = s));

    it("redelivers the jobs of a killed worker after their leases, each completed once", async (t) => {
      if (lacks(t, caps, "milliseconds", "exactStats", "getJob")) return;
      const name = uniqueName("killed");
      const queue = jobs.queue<{ n: number }>(name);
      const ids = await queue.enqueueMany(Array.from({ length: 20 }, (_, n) => ({ data: { n } })));
      const w = workerProcess(daemon.socketPath, name, `
        queue.work(async (job) => { console.log("started " + job.id); await new Promise(() => {}); }, { concurrency: 4, leaseMs: 500 });
      `);
      await until("the worker to take 4 jobs", () => w.lines.filter((l) => l.startsWith("started")).length >= 4);
      const inFlight = w.lines.filter((l) => l.startsWith("started")).map((l) => l.slice(8));
      w.child.kill("SIGKILL");
      const done = new Map<string, number>();
      const worker = queue.work(async (job) => {
        done.set(job.id, (done.get(job.id) ?? 0) + 1);
      }, { concurrency: 4, waitMs: 1000 });
      await until("every job to complete", async () => (await queue.stats()).completed === ids.length);
      await worker.stop();
      for (const id of ids) assert.equal(done.get(id), 1, `job ${id} completed ${done.get(id) ?? 0} times`);
      for (const id of inFlight) {
        const j = await queue.getJob(id);
        assert.equal(j?.status, JobStatus.COMPLETED);
        assert.ok(j.attempts >= 2, `job ${id} was not redelivered`);
      }
    });

    it("fences a hung handler: after its lease is taken over it cannot acknowledge", async (t) => {
      if (lacks(t, caps, "milliseconds", "getJob")) return;
      const name = uniqueName("hung");
      const queue = jobs.queue<string>(name);
      const id = await queue.enqueue("slow");
      const w = workerProcess(daemon.socketPath, name, `
        queue.work(async () => {
          console.log("started");
          const end = Date.now() + 1200; while (Date.now() < end) {} // blocks the event loop: no heartbeats
        }, { leaseMs: 300, waitMs: 1000, onError: (e) => { console.log("ERROR " + e.name); } });
      `);
      await until("the hung handler to start", () => w.lines.includes("started"));
      await sleep(400);
      const taken = await queue.dequeue({ waitMs: 2000 });
      assert.equal(taken?.id, id, "the expired claim was not taken over");
      await queue.acknowledge(id);
      await until("the hung worker's refused ack", () => w.lines.includes("ERROR ConflictError"));
      w.child.kill("SIGKILL");
      const j = await queue.getJob(id);
      assert.equal(j?.status, JobStatus.COMPLETED);
      assert.equal(j.attempts, 2);
    });
  });
}
