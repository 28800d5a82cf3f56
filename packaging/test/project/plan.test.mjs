// Runs inside an empty project that installed only the packed tarballs
// (@storaged/client, its platform package) and fastify: the seed's Testing
// block with the Memory backends, then the seed's plan routes through the
// Fastify plugin, each against a daemon started from node_modules.
import assert from "node:assert/strict";
import { readlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import Fastify from "fastify";
import storaged, { JobStatus, MemoryJobQueueBackend, MemoryRepositoryBackend } from "@storaged/client";

const platformPackage = `@storaged/daemon-${process.platform}-${process.arch}`;
const installedBinary = join(dirname(createRequire(import.meta.url).resolve(`${platformPackage}/package.json`)), "bin", "storaged");

/** The executable a pid runs (Linux; elsewhere the check is skipped). */
function exeOf(pid) {
  return process.platform === "linux" ? readlinkSync(`/proc/${pid}/exe`) : undefined;
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
    const plan = await repo.create({ name: "Test Plan", steps: ["build"] });
    assert.ok(plan.id);
    assert.deepEqual(await repo.findById(plan.id), plan);
  });

  it("should enqueue and process jobs", async () => {
    const queue = jobQueue.queue();
    const jobId = await queue.enqueue({ planId: "test" });

    const job = await queue.dequeue();
    assert.notEqual(job, null);
    assert.equal(job.id, jobId);
    assert.equal(job.data.planId, "test");

    await queue.acknowledge(job.id);
    const status = await queue.getStatus(job.id);
    assert.equal(status, JobStatus.COMPLETED);
  });

  it("runs the daemon from the installed platform package", { skip: process.platform !== "linux" && "needs /proc" }, () => {
    assert.equal(exeOf(repository.pid), installedBinary);
    assert.equal(exeOf(jobQueue.pid), installedBinary);
  });
});

// The seed's routes (routes/plan/index.ts) and background job, through the plugin.
describe("the seed's plan routes through the Fastify plugin", () => {
  let app;

  beforeEach(async () => {
    app = Fastify();
    await app.register(storaged, { repository: new MemoryRepositoryBackend(), jobQueue: new MemoryJobQueueBackend() });
    app.post("/plan", async (request, reply) => {
      const planRepo = app.repository.repository("plans");
      const savedPlan = await planRepo.create(request.body);
      return reply.code(201).send(savedPlan);
    });
    app.get("/plan/:id", async (request, reply) => {
      const planRepo = app.repository.repository("plans");
      const plan = await planRepo.findById(request.params.id);
      if (!plan) {
        return reply.code(404).send({ error: "Plan not found" });
      }
      return reply.send(plan);
    });
    await app.ready();
  });

  afterEach(async () => {
    await app.close();
  });

  it("POST /plan creates, GET /plan/:id reads it back, an unknown id is 404", async () => {
    const created = await app.inject({ method: "POST", url: "/plan", payload: { name: "Nightly", steps: ["build", "test"] } });
    assert.equal(created.statusCode, 201);
    const plan = created.json();
    assert.equal(plan.name, "Nightly");
    const read = await app.inject({ method: "GET", url: `/plan/${plan.id}` });
    assert.equal(read.statusCode, 200);
    assert.deepEqual(read.json(), plan);
    const missing = await app.inject({ method: "GET", url: "/plan/no-such-plan" });
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(missing.json(), { error: "Plan not found" });
  });

  it("a job enqueued for later waits; one due now is processed and acknowledged", async () => {
    const queue = app.jobQueue.queue();
    const later = await queue.enqueue({ planId: "plan-123", executionId: "exec-456" }, { runAt: new Date(Date.now() + 60000) });
    const now = await queue.enqueue({ planId: "plan-124", executionId: "exec-457" });
    const job = await queue.dequeue();
    assert.equal(job?.id, now, "the job due in a minute is not handed out yet");
    const executed = [];
    try {
      executed.push(job.data.planId);
      await queue.acknowledge(job.id);
    } catch (error) {
      await queue.fail(job.id, error, true);
    }
    assert.deepEqual(executed, ["plan-124"]);
    assert.equal(await queue.getStatus(now), JobStatus.COMPLETED);
    assert.equal(await queue.getStatus(later), JobStatus.PENDING);
    assert.equal(await queue.dequeue(), null);
  });
});
