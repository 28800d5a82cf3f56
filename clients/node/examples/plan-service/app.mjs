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

  // The background loop, done by the client: long poll, heartbeats, ack on
  // success, retry with backoff on a throw. fastify.close() drains it.
  async function executePlan({ planId }) {
    const plans = fastify.repository.repository("plans");
    await plans.update(planId, { status: "executed", executedAt: new Date().toISOString() });
  }
  fastify.addHook("onReady", async () => {
    fastify.jobQueue.queue().work(async (job) => executePlan(job.data), { concurrency: 4 });
  });
  return fastify;
}
