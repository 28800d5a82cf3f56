import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { afterEach, beforeEach, describe, it } from "node:test";
import { JobStatus, MemoryJobQueueBackend, MemoryRepositoryBackend } from "../src/index.js";
import { sleep, tempDir } from "./harness.js";

interface TestPlanV1 {
  id: string;
  name: string;
  steps: string[];
}
interface ExecutePlanJob {
  planId: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// The seed's Testing block, with node:test instead of jest.
describe("Plan Routes", () => {
  let repository: MemoryRepositoryBackend;
  let jobQueue: MemoryJobQueueBackend;

  beforeEach(async () => {
    repository = new MemoryRepositoryBackend();
    jobQueue = new MemoryJobQueueBackend();
    await repository.connect();
    await jobQueue.connect();
  });

  afterEach(async () => {
    await repository.disconnect();
    await jobQueue.disconnect();
  });

  it("should create a plan", async () => {
    const repo = repository.repository<TestPlanV1>("plans");
    const plan = await repo.create({ name: "Test Plan", steps: [] });
    assert.equal(typeof plan.id, "string");
  });

  it("should enqueue and process jobs", async () => {
    const queue = jobQueue.queue<ExecutePlanJob>();
    const jobId = await queue.enqueue({ planId: "test" });

    const job = await queue.dequeue();
    assert.notEqual(job, null);
    assert.equal(job!.data.planId, "test");
    assert.equal(job!.id, jobId);

    await queue.acknowledge(job!.id);
    const status = await queue.getStatus(job!.id);
    assert.equal(status, JobStatus.COMPLETED);
  });

  it("gives each instance its own data", async () => {
    const other = new MemoryRepositoryBackend();
    await other.connect();
    await repository.repository<TestPlanV1>("plans").create({ id: "mine", name: "x", steps: [] });
    assert.equal(await other.repository<TestPlanV1>("plans").findById("mine"), null);
    await other.disconnect();
  });
});

describe("private daemons never outlive their owner", () => {
  it("stops the daemon on disconnect", async () => {
    const started = performance.now();
    const r = new MemoryRepositoryBackend();
    await r.connect();
    const readyMs = performance.now() - started;
    process.stdout.write(`# MemoryRepositoryBackend ready in ${readyMs.toFixed(1)} ms\n`);
    const pid = r.pid!;
    assert.ok(alive(pid));
    await r.disconnect();
    assert.ok(!alive(pid));
  });

  for (const how of ["exits", "is killed with SIGKILL"] as const) {
    it(`stops the daemon when the owning process ${how}`, async () => {
      const script = `
        import { MemoryRepositoryBackend } from ${JSON.stringify(new URL("../src/index.js", import.meta.url).href)};
        const r = new MemoryRepositoryBackend();
        await r.connect();
        console.log(r.pid);
        ${how === "exits" ? "process.exit(0);" : "setInterval(() => {}, 1000);"}
      `;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      const pid = await new Promise<number>((resolve, reject) => {
        child.stdout.on("data", (b: Buffer) => resolve(Number(b.toString().trim())));
        child.once("exit", (code) => reject(new Error(`child exited ${code} before connecting`)));
      });
      assert.ok(pid > 0 && alive(pid));
      if (how !== "exits") child.kill("SIGKILL");
      const deadline = Date.now() + 5000;
      while (alive(pid) && Date.now() < deadline) await sleep(20);
      assert.ok(!alive(pid), `daemon ${pid} outlived its owner`);
    });
  }

  for (const how of ["calls process.exit()", "throws an uncaught exception", "is killed with SIGKILL"] as const) {
    it(`leaves nothing in TMPDIR when the owning process ${how}`, async () => {
      const tmp = tempDir(); // the child's own TMPDIR
      const script = `
        import { MemoryJobQueueBackend, MemoryRepositoryBackend } from ${JSON.stringify(new URL("../src/index.js", import.meta.url).href)};
        const r = new MemoryRepositoryBackend();
        const q = new MemoryJobQueueBackend();
        await r.connect();
        await q.connect();
        console.log(r.pid + " " + q.pid);
        // The parent says when, once it has seen the sockets.
        process.stdin.once("data", () => {
          ${how === "calls process.exit()" ? "process.exit(3);" : how === "throws an uncaught exception" ? "throw new Error('boom');" : "setInterval(() => {}, 1000);"}
        });
      `;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, TMPDIR: tmp },
        stdio: ["pipe", "pipe", "pipe"],
      });
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      const pids = await new Promise<number[]>((resolve, reject) => {
        child.stdout.on("data", (b: Buffer) => resolve(b.toString().trim().split(" ").map(Number)));
        child.once("exit", (code) => reject(new Error(`child exited ${code} before connecting`)));
      });
      assert.equal(readdirSync(tmp).filter((f) => f.endsWith(".sock")).length, 2, "the daemons' sockets are not in the child's TMPDIR");
      if (how === "is killed with SIGKILL") child.kill("SIGKILL");
      else child.stdin.write("now\n");
      const code = await exited;
      if (how === "calls process.exit()") assert.equal(code, 3);
      if (how === "throws an uncaught exception") assert.equal(code, 1);
      const deadline = Date.now() + 10_000;
      while (pids.some(alive) && Date.now() < deadline) await sleep(20);
      assert.ok(!pids.some(alive), "a private daemon outlived its owner");
      assert.deepEqual(readdirSync(tmp), [], "files left in the owner's TMPDIR");
    });
  }
});
