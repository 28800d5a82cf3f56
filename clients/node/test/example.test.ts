// The example plan service (examples/plan-service/app.mjs), driven through
// fastify.inject against a real daemon: the seed's routes with the plan and
// its job saved in one transaction, and the background job that runs it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { BACKENDS, sleep, startDaemon, type TestDaemon } from "./harness.js";

interface Plan {
  id: string;
  name: string;
  status: string;
}

type BuildApp = (options: { storaged: { socketPath: string } }) => Promise<FastifyInstance>;
const exampleURL = new URL("../../examples/plan-service/app.mjs", import.meta.url);

// The example enqueues in a transaction: backends whose jobs cannot join one are left out.
for (const backend of BACKENDS.filter((b) => b !== "redis" && b !== "sqs")) {
  describe(`example plan service on ${backend}`, () => {
    let daemon: TestDaemon;
    let app: FastifyInstance;
    before(async () => {
      daemon = await startDaemon(backend);
      const { buildApp } = (await import(exampleURL.href)) as { buildApp: BuildApp };
      app = await buildApp({ storaged: { socketPath: daemon.socketPath } });
      await app.ready();
    });
    after(async () => {
      await app.close();
      await daemon.stop();
    });

    it("creates a plan with its job in one transaction, and the worker executes it", async () => {
      const created = await app.inject({ method: "POST", url: "/plan", payload: { name: "Nightly", steps: ["build", "test"] } });
      assert.equal(created.statusCode, 201);
      const plan = created.json<Plan>();
      assert.equal(plan.status, "created");
      let status = plan.status;
      for (let i = 0; i < 100 && status !== "executed"; i++) {
        await sleep(100);
        status = (await app.inject({ method: "GET", url: `/plan/${plan.id}` })).json<Plan>().status;
      }
      assert.equal(status, "executed", "the job saved with the plan ran (runAt is 1 s after the request)");
      const listed = (await app.inject({ method: "GET", url: "/plans?status=executed" })).json<Plan[]>();
      assert.ok(listed.some((p) => p.id === plan.id));
    });

    it("answers a report at once when it is quick, else 202 and a job to poll", async () => {
      const plan = (await app.inject({ method: "POST", url: "/plan", payload: { name: "Weekly", steps: ["a", "b", "c"] } })).json<Plan>();
      const quick = await app.inject({ method: "POST", url: `/plan/${plan.id}/report` });
      assert.equal(quick.statusCode, 200);
      assert.deepEqual(quick.json(), { planId: plan.id, name: "Weekly", steps: 3 });

      const slow = await app.inject({ method: "POST", url: `/plan/${plan.id}/report?slow=1` });
      assert.equal(slow.statusCode, 202);
      const { jobId } = slow.json<{ jobId: string }>();
      assert.equal(slow.headers["location"], `/jobs/${jobId}`);
      let job = (await app.inject({ method: "GET", url: `/jobs/${jobId}` })).json<{ status: string; progress?: number; result?: unknown }>();
      for (let i = 0; i < 150 && job.status !== "completed"; i++) {
        await sleep(100);
        job = (await app.inject({ method: "GET", url: `/jobs/${jobId}` })).json();
      }
      assert.equal(job.status, "completed");
      assert.equal(job.progress, 50);
      assert.deepEqual(job.result, { planId: plan.id, name: "Weekly", steps: 3 });
      assert.equal((await app.inject({ method: "POST", url: "/plan/nope/report" })).statusCode, 404);
    });
  });
}
