// The seed's plan service on storaged: the routes and the background job
// are written as before; the plugin registration is new, and POST /plan
// saves the plan and its job in one transaction (DESIGN §4 "Transactional
// jobs"), so there is never a plan without its job or a job without its
// plan. That needs the jobs in the records' database (SQLite file or
// PostgreSQL database, or memory with memory); GET /v1/info says
// `transactionalJobs`.
import Fastify from "fastify";
import storaged from "../../dist/index.js";

/** Builds the service; options go to Fastify, storaged to the plugin. */
export async function buildApp({ storaged: pluginOptions = {}, ...options } = {}) {
  const fastify = Fastify(options);
  await fastify.register(storaged, pluginOptions);

  fastify.post("/plan", async (request, reply) => {
    const savedPlan = await fastify.repository.transaction(async (tx) => {
      const plan = await tx.repository("plans").create({ ...request.body, status: "created" });
      await tx.queue().enqueue({ planId: plan.id }, { runAt: new Date(Date.now() + 1000) });
      return plan;
    });
    return reply.code(201).send(savedPlan);
  });

  fastify.get("/plan/:id", async (request, reply) => {
    const planRepo = fastify.repository.repository("plans");
    const plan = await planRepo.findById(request.params.id);
    if (!plan) {
      return reply.code(404).send({ error: "Plan not found" });
    }
    return reply.send(plan);
  });

  fastify.get("/plans", async (request) => {
    const planRepo = fastify.repository.repository("plans");
    return planRepo.findMany({ filter: request.query.status ? { status: request.query.status } : {}, sort: { name: "asc" }, limit: 100 });
  });

  // "202 then poll": a report is made by a worker; the route waits a
  // little for it (woken by the job's finish, on any daemon), answers 200
  // with the result if it came in time, else 202 with where to look.
  fastify.post("/plan/:id/report", async (request, reply) => {
    const plan = await fastify.repository.repository("plans").findById(request.params.id);
    if (!plan) {
      return reply.code(404).send({ error: "Plan not found" });
    }
    const reports = fastify.jobQueue.queue("reports");
    const jobId = await reports.enqueue({ planId: plan.id, slow: request.query.slow === "1" });
    const done = await reports.waitFor(jobId, { timeoutMs: 2_000 });
    if (done?.status === "completed") {
      return reply.send(done.result);
    }
    return reply.code(202).header("location", `/jobs/${jobId}`).send({ jobId });
  });

  fastify.get("/jobs/:id", async (request, reply) => {
    const job = await fastify.jobQueue.queue("reports").getJob(request.params.id);
    if (!job) {
      return reply.code(404).send({ error: "Job not found" });
    }
    return reply.send({ status: job.status, progress: job.progress, result: job.result, error: job.lastError?.message });
  });

  // The background loops, done by the client: long poll, heartbeats, ack on
  // success, retry with backoff on a throw. fastify.close() drains them.
  async function executePlan({ planId }) {
    const plans = fastify.repository.repository("plans");
    await plans.update(planId, { status: "executed", executedAt: new Date().toISOString() });
  }
  async function makeReport({ planId, slow }, { progress }) {
    const plan = await fastify.repository.repository("plans").findById(planId);
    await progress(50);
    if (slow) await new Promise((resolve) => setTimeout(resolve, 3_000));
    return { planId, name: plan?.name, steps: plan?.steps?.length ?? 0 };
  }
  fastify.addHook("onReady", async () => {
    fastify.jobQueue.queue().work(async (job) => executePlan(job.data), { concurrency: 4 });
    fastify.jobQueue.queue("reports").work(async (job, context) => makeReport(job.data, context), { concurrency: 2 });
  });
  return fastify;
}
