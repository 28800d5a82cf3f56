// storagedDashboard, the dashboard mounted in a user's Fastify app: the
// app's own auth in front, the pages served, the allowed API calls passed
// to the daemon's socket, read-only refusals (the browser side is in
// ui-test/, make test-ui).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { SocketJobQueueBackend, storagedDashboard, type StoragedDashboardOptions } from "../src/index.js";
import { join } from "node:path";
import { startDaemon, tempDir, uniqueName, type TestDaemon } from "./harness.js";

const UI = { "storaged-ui": "1", authorization: "Bearer admin" };

/** An app whose /admin scope lets only "Bearer admin" in, the dashboard under it. */
async function app(options: StoragedDashboardOptions): Promise<FastifyInstance> {
  const fastify = Fastify();
  await fastify.register(async (admin) => {
    admin.addHook("onRequest", async (req, reply) => {
      if (req.headers.authorization !== "Bearer admin") return reply.code(401).send({ error: "admins only" });
    });
    await admin.register(storagedDashboard, { ...options, prefix: "/admin/storaged" });
  });
  fastify.get("/public", () => ({ ok: true }));
  await fastify.ready();
  return fastify;
}

describe("storagedDashboard", () => {
  let daemon: TestDaemon;
  let jobs: SocketJobQueueBackend;
  before(async () => {
    daemon = await startDaemon("memory");
    jobs = new SocketJobQueueBackend({ socketPath: daemon.socketPath });
    await jobs.connect();
  });
  after(async () => {
    await jobs.disconnect();
    await daemon.stop();
  });

  it("serves the pages behind the app's auth, with the daemon's headers", async () => {
    const fastify = await app({ socketPath: daemon.socketPath });
    try {
      assert.equal((await fastify.inject({ url: "/admin/storaged/" })).statusCode, 401);
      const redirect = await fastify.inject({ url: "/admin/storaged", headers: UI });
      assert.equal(redirect.statusCode, 302);
      assert.equal(redirect.headers.location, "/admin/storaged/");
      const index = await fastify.inject({ url: "/admin/storaged/", headers: UI });
      assert.equal(index.statusCode, 200);
      assert.match(index.headers["content-type"] as string, /text\/html/);
      assert.match(index.body, /src="\.\/app\.js"/);
      assert.match(index.headers["content-security-policy"] as string, /default-src 'none'; script-src 'self'/);
      assert.equal(index.headers["x-frame-options"], "DENY");
      const script = await fastify.inject({ url: "/admin/storaged/vendor/preact.js", headers: UI });
      assert.equal(script.statusCode, 200);
      assert.match(script.headers["content-type"] as string, /javascript/);
      assert.equal((await fastify.inject({ url: "/admin/storaged/../package.json", headers: UI })).statusCode, 404);
      assert.equal((await fastify.inject({ url: "/admin/storaged/nope.js", headers: UI })).statusCode, 404);
      // The app's other routes are untouched by the dashboard's body parsing.
      assert.deepEqual((await fastify.inject({ url: "/public" })).json(), { ok: true });
    } finally {
      await fastify.close();
    }
  });

  it("passes the dashboard's API calls to the daemon and no others", async () => {
    const fastify = await app({ socketPath: daemon.socketPath });
    try {
      const name = uniqueName("dash");
      const queue = jobs.queue<{ n: number }>(name);
      await queue.enqueue({ n: 7 });
      const list = await fastify.inject({ url: "/admin/storaged/v1/queues", headers: UI });
      assert.equal(list.statusCode, 200);
      assert.ok(list.json<Array<{ queue: string }>>().some((q) => q.queue === name));
      const found = await fastify.inject({ method: "POST", url: `/admin/storaged/v1/queues/${name}/jobs/find`, headers: UI, payload: { status: ["pending"], filter: { n: 7 } } });
      assert.equal(found.statusCode, 200);
      assert.equal(found.json<{ jobs: unknown[] }>().jobs.length, 1);
      const bad = await fastify.inject({ method: "POST", url: `/admin/storaged/v1/queues/${name}/jobs/find`, headers: UI, payload: { status: ["nope"] } });
      assert.equal(bad.statusCode, 400);
      const paused = await fastify.inject({ method: "POST", url: `/admin/storaged/v1/queues/${name}/pause`, headers: UI, payload: {} });
      assert.equal(paused.statusCode, 204);
      assert.equal((await queue.stats()).paused, true);
      const noHeader = await fastify.inject({ method: "POST", url: `/admin/storaged/v1/queues/${name}/resume`, headers: { authorization: "Bearer admin" }, payload: {} });
      assert.equal(noHeader.statusCode, 403);
      assert.equal((await queue.stats()).paused, true);
      for (const [method, url] of [["POST", `/v1/queues/${name}/jobs`], ["POST", `/v1/queues/${name}/dequeue`], ["POST", "/v1/tx"], ["GET", "/metrics"]] as const) {
        const res = await fastify.inject({ method, url: `/admin/storaged${url}`, headers: UI, payload: method === "POST" ? {} : undefined });
        assert.equal(res.statusCode, 404, `${method} ${url}`);
      }
      assert.equal((await queue.stats()).pending, 1);
    } finally {
      await fastify.close();
    }
  });

  it("read-only refuses every action and still reads", async () => {
    const fastify = await app({ socketPath: daemon.socketPath, readOnly: true });
    try {
      const name = uniqueName("dashro");
      const queue = jobs.queue<{ n: number }>(name);
      const id = await queue.enqueue({ n: 1 });
      for (const [method, url] of [
        ["POST", `/v1/queues/${name}/pause`],
        ["POST", `/v1/queues/${name}/jobs/cancel`],
        ["POST", `/v1/jobs/${id}/cancel`],
        ["PATCH", `/v1/jobs/${id}`],
      ] as const) {
        const res = await fastify.inject({ method, url: `/admin/storaged${url}`, headers: UI, payload: {} });
        assert.equal(res.statusCode, 403, `${method} ${url}`);
        assert.match(res.body, /read-only/);
        assert.equal(res.headers["storaged-ui-mode"], "read-only");
      }
      const stats = await queue.stats();
      assert.equal(stats.paused, false);
      assert.equal(stats.pending, 1);
      const job = await fastify.inject({ url: `/admin/storaged/v1/jobs/${id}`, headers: UI });
      assert.equal(job.statusCode, 200);
      assert.equal(job.json<{ id: string }>().id, id);
    } finally {
      await fastify.close();
    }
  });

  it("answers 502 when the daemon does not answer, and refuses a directory without the pages", async () => {
    const gone = await app({ socketPath: join(tempDir(), "nobody.sock") });
    try {
      const res = await gone.inject({ url: "/admin/storaged/v1/queues", headers: UI });
      assert.equal(res.statusCode, 502);
      assert.match(res.body, /storaged is not answering on .*nobody\.sock/);
    } finally {
      await gone.close();
    }
    // A call that outlasts requestTimeoutMs (a long poll here) is cut.
    const slow = await app({ socketPath: daemon.socketPath, requestTimeoutMs: 200 });
    try {
      const res = await slow.inject({ url: `/admin/storaged/v1/queues/${uniqueName("idle")}/events?waitMs=5000`, headers: UI });
      assert.equal(res.statusCode, 502);
      assert.match(res.body, /timeout/);
    } finally {
      await slow.close();
    }
    await assert.rejects(app({ socketPath: daemon.socketPath, assetsDir: tempDir() }), /no dashboard in/);
  });
});
