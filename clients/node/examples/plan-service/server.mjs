// The seed's plan service on storaged: the routes and the background job
// are written exactly as before; only the plugin registration is new.
//   make run       # in one terminal: the daemon on ./var/storaged.sock
//   make example   # in another: this service on http://127.0.0.1:3000
import Fastify from "fastify";
import storaged from "../../dist/index.js";

const fastify = Fastify({ logger: true });
await fastify.register(storaged, { socketPath: process.env.STORAGED_SOCKET });

fastify.post("/plan", async (request, reply) => {
  const planRepo = fastify.repository.repository("plans");
  const savedPlan = await planRepo.create({ ...request.body, status: "created" });
  const queue = fastify.jobQueue.queue();
  await queue.enqueue({ planId: savedPlan.id }, { runAt: new Date(Date.now() + 1000) });
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
fastify.jobQueue.queue().work(async (job) => executePlan(job.data), { concurrency: 4 });

const port = Number(process.env.PORT ?? 3000);
await fastify.listen({ port, host: "127.0.0.1" });
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => fastify.close().then(() => process.exit(0)));
}
