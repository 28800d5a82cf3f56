import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { afterEach, beforeEach, describe, it } from "node:test";
import { JobStatus, MemoryJobQueueBackend, MemoryRepositoryBackend } from "../src/index.js";
import { sleep } from "./harness.js";
function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    }
    catch {
        return false;
    }
}
// The seed's Testing block, with node:test instead of jest.
describe("Plan Routes", () => {
    let repository;
    let jobQueue;
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
        const repo = repository.repository("plans");
        const plan = await repo.create({ name: "Test Plan", steps: [] });
        assert.ok(plan.id !== undefined);
    });
    it("should enqueue and process jobs", async () => {
        const queue = jobQueue.queue();
        const jobId = await queue.enqueue({ planId: "test" });
        const job = await queue.dequeue();
        assert.notEqual(job, null);
        assert.equal(job.data.planId, "test");
        assert.equal(job.id, jobId);
        await queue.acknowledge(job.id);
        const status = await queue.getStatus(job.id);
        assert.equal(status, JobStatus.COMPLETED);
    });
    it("gives each instance its own data", async () => {
        const other = new MemoryRepositoryBackend();
        await other.connect();
        await repository.repository("plans").create({ id: "mine", name: "x", steps: [] });
        assert.equal(await other.repository("plans").findById("mine"), null);
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
        const pid = r.pid;
        assert.ok(alive(pid));
        await r.disconnect();
        assert.ok(!alive(pid));
    });
    for (const how of ["exits", "is killed with SIGKILL"]) {
        it(`stops the daemon when the owning process ${how}`, async () => {
            const script = `
        import { MemoryRepositoryBackend } from ${JSON.stringify(new URL("../src/index.js", import.meta.url).href)};
        const r = new MemoryRepositoryBackend();
        await r.connect();
        console.log(r.pid);
        ${how === "exits" ? "process.exit(0);" : "setInterval(() => {}, 1000);"}
      `;
            const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
            const pid = await new Promise((resolve, reject) => {
                child.stdout.on("data", (b) => resolve(Number(b.toString().trim())));
                child.once("exit", (code) => reject(new Error(`child exited ${code} before connecting`)));
            });
            assert.ok(pid > 0 && alive(pid));
            if (how !== "exits")
                child.kill("SIGKILL");
            const deadline = Date.now() + 5000;
            while (alive(pid) && Date.now() < deadline)
                await sleep(20);
            assert.ok(!alive(pid), `daemon ${pid} outlived its owner`);
        });
    }
});
//# sourceMappingURL=memory.test.js.map