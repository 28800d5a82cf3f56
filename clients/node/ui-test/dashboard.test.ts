// The dashboard (issue 20) in a real browser: Debian's Chromium, headless,
// against a daemon with STORAGED_UI_LISTEN, with a worker of this client
// running beside it. `make test-ui`.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { JobStatus, SocketJobQueueBackend, SocketRepositoryBackend, storagedDashboard, type Worker } from "../src/index.js";
import { startDaemon, uniqueName, type TestDaemon } from "../test/harness.js";
import type { Page } from "playwright-core";
import { freePort, launch, watchErrors, type Browser } from "./browser.js";

const TOKEN = "ui-test-token-0123456789";

interface Setup {
  daemon: TestDaemon;
  jobs: SocketJobQueueBackend;
  url: string;
}

async function setup(env: Record<string, string> = {}, backend = "memory"): Promise<Setup> {
  const port = await freePort();
  const daemon = await startDaemon(backend, { STORAGED_UI_LISTEN: `127.0.0.1:${port}`, ...env });
  const jobs = new SocketJobQueueBackend({ socketPath: daemon.socketPath });
  await jobs.connect();
  return { daemon, jobs, url: `http://127.0.0.1:${port}/` };
}

async function teardown(s: Setup | undefined): Promise<void> {
  await s?.jobs.disconnect();
  await s?.daemon.stop();
}

/**
 * The operator's 3 a.m. path, run on each backend below: find the failed
 * job from the queues page, open it, read its stack, retry it, and watch
 * the worker (still running) complete it.
 */
async function failedJobScenario(s: Setup, page: Page): Promise<void> {
  const errors = watchErrors(page);
  const name = uniqueName("mail");
  const queue = s.jobs.queue<{ to: string }, string>(name);
  const id = await queue.enqueue({ to: "ops@example.com" }, { maxAttempts: 1 });
  let retried = false;
  // A named handler, so that its frame in the stack is recognisable.
  const worker: Worker = queue.work(async function deliverMail() {
    await Promise.resolve();
    if (!retried) throw new Error("smtp refused the message");
    return "sent";
  });
  try {
    const deadline = Date.now() + 10_000;
    while ((await queue.getJob(id))?.status !== JobStatus.FAILED) {
      assert.ok(Date.now() < deadline, "the job did not fail");
      await new Promise((r) => setTimeout(r, 50));
    }
    await page.goto(`${s.url}#/queues`);
    const row = page.locator(`tr[data-queue="${name}"]`);
    await row.getByRole("link", { name: `1 failed jobs in ${name}` }).click();
    await page.getByRole("heading", { name: `Queue ${name}` }).waitFor();
    assert.equal(await page.locator('select[name="status"]').inputValue(), "failed");
    await page.getByRole("link", { name: id }).click();
    await page.getByRole("heading", { name: new RegExp(`Job ${id}`) }).waitFor();
    const stack = page.getByLabel("Stack trace");
    await stack.waitFor();
    const text = await stack.textContent();
    assert.match(text ?? "", /smtp refused the message/);
    assert.match(text ?? "", /at \S*deliverMail/);
    retried = true;
    await page.getByRole("button", { name: "Retry" }).click();
    // The worker, still running, takes it again; the page refreshes by itself.
    await page.locator("h1 .status-completed").waitFor({ timeout: 15_000 });
    assert.equal(await page.getByLabel("Result").textContent(), '"sent"');
    await page.getByRole("status").getByText("Job is now completed").waitFor();
    assert.equal((await queue.getJob(id))?.status, JobStatus.COMPLETED);
    assert.deepEqual(errors, []);
  } finally {
    await worker.stop();
  }
}

/** A time as the page's datetime-local input takes it (local, to the second). */
function localInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

describe("dashboard", () => {
  let browser: Browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser.close();
  });

  describe("writable", () => {
    let s: Setup;
    before(async () => {
      s = await setup();
    });
    after(async () => {
      await teardown(s);
    });

    it("finds a failed job, shows its stack, retries it and watches it complete", async () => {
      await failedJobScenario(s, browser.page);
    });

    it("edits a pending job: reschedules and reprioritises it, refuses bad data JSON, shows the API's refusals", async () => {
      const page = browser.page;
      const errors = watchErrors(page);
      const name = uniqueName("edit");
      const queue = s.jobs.queue<{ to: string }>(name);
      const id = await queue.enqueue({ to: "a@example.com" }, { runAt: new Date(Date.now() + 3_600_000), priority: 1 });
      await page.goto(`${s.url}#/jobs/${id}`);
      await page.getByRole("button", { name: "Edit" }).click();
      const later = new Date(Date.now() + 2 * 86_400_000);
      later.setMilliseconds(0);
      await page.getByLabel("Run at").fill(localInput(later));
      await page.getByLabel("Priority").fill("7");
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByRole("status").getByText("Saved runAt, priority").waitFor();
      let job = await queue.getJob(id);
      assert.ok(job);
      assert.equal(job.runAt.toISOString(), later.toISOString());
      assert.equal(job.priority, 7);
      assert.deepEqual(job.data, { to: "a@example.com" });
      // The page shows the new values after its reload.
      await page.locator(".details").locator(`time[datetime="${later.toISOString()}"]`).waitFor();
      await page.locator(".details dd", { hasText: /^7$/ }).waitFor();

      await page.getByRole("button", { name: "Edit" }).click();
      await page.getByLabel("Data (JSON)").fill('{"to": ');
      await page.getByLabel("Priority").fill("9");
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByRole("alert").getByText(/The data must be JSON/).waitFor();
      job = await queue.getJob(id);
      assert.ok(job);
      assert.equal(job.priority, 7);
      assert.deepEqual(job.data, { to: "a@example.com" });

      // A priority the page takes but the API refuses (out of enqueue's range): its 400 is shown.
      await page.getByLabel("Data (JSON)").fill(JSON.stringify({ to: "a@example.com" }, null, 2));
      await page.getByLabel("Priority").fill("1.5");
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByRole("alert").getByText("Priority must be a whole number.").waitFor();
      await page.getByLabel("Priority").fill("99999999999999999999");
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByRole("alert").getByText(/priority.*\(400\)/).waitFor();
      job = await queue.getJob(id);
      assert.ok(job);
      assert.equal(job.priority, 7);

      // The job stops being pending while the form is open: the API's 409 is shown.
      await queue.cancel(id);
      await page.getByLabel("Priority").fill("7");
      await page.getByLabel("Data (JSON)").fill('{"to": "b@example.com"}');
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByRole("alert").getByText(/only pending jobs can be changed \(409\)/).waitFor();
      job = await queue.getJob(id);
      assert.ok(job);
      assert.equal(job.status, JobStatus.CANCELLED);
      assert.equal(job.priority, 7);
      assert.deepEqual(job.data, { to: "a@example.com" });
      assert.deepEqual(errors.filter((e) => !/status of 40[09]/.test(e)), []);
    });

    it("pauses a queue, after which dequeue hands out nothing, and resumes it", async () => {
      const name = uniqueName("paused");
      const queue = s.jobs.queue<{ n: number }>(name);
      await queue.enqueue({ n: 1 });
      const page = browser.page;
      await page.goto(`${s.url}#/queues`);
      const row = page.locator(`tr[data-queue="${name}"]`);
      await row.getByRole("button", { name: `Pause ${name}` }).click();
      await row.getByText("paused", { exact: true }).waitFor();
      assert.equal((await queue.stats()).paused, true);
      assert.equal(await queue.dequeue({ waitMs: 300 }), null);
      await row.getByRole("button", { name: `Resume ${name}` }).click();
      await row.getByText("running", { exact: true }).waitFor();
      const job = await queue.dequeue({ waitMs: 2_000 });
      assert.equal(job?.data.n, 1);
      await queue.acknowledge(job, undefined);
    });

    it("pages through a queue's jobs and filters them by data", async () => {
      const name = uniqueName("pages");
      const queue = s.jobs.queue<{ n: number; tier: string }>(name);
      for (let n = 0; n < 60; n++) await queue.enqueue({ n, tier: n % 2 ? "gold" : "basic" });
      const page = browser.page;
      await page.goto(`${s.url}#/queues/${name}?status=pending`);
      const caption = page.locator("table.jobs caption");
      await caption.getByText("50 on this page").waitFor();
      await page.getByRole("link", { name: "Next page →" }).click();
      await caption.getByText("10 on this page").waitFor();
      assert.equal(await page.getByRole("link", { name: "Next page →" }).count(), 0);
      await page.getByRole("link", { name: "← Previous page" }).click();
      await caption.getByText("50 on this page").waitFor();
      await page.getByLabel("Data filter (JSON)").fill('{"tier": "gold", "n": {"$lt": 20}}');
      await page.getByRole("button", { name: "Find" }).click();
      await caption.getByText("pending jobs matching the filter, 10 on this page").waitFor();
      assert.equal(await page.locator("table.jobs tbody tr").count(), 10);
    });

    it("keeps what is typed in the search form across the page's refreshes", async () => {
      const name = uniqueName("typing");
      await s.jobs.queue(name).enqueue({ n: 1 });
      const page = browser.page;
      await page.goto(`${s.url}#/queues/${name}?status=pending`);
      await page.locator("table.jobs caption").getByText("1 on this page").waitFor();
      await page.getByLabel("Key").fill("half-typed");
      await page.getByLabel("Data filter (JSON)").fill('{"n": ');
      await page.locator('select[name="status"]').selectOption("failed");
      // Two refreshes of the list, each a re-render of the page.
      for (let n = 0; n < 2; n++) await page.waitForResponse((r) => r.url().endsWith(`/v1/queues/${name}/jobs/find`));
      await page.locator("table.jobs caption").getByText("1 on this page").waitFor();
      assert.equal(await page.getByLabel("Key").inputValue(), "half-typed");
      assert.equal(await page.getByLabel("Data filter (JSON)").inputValue(), '{"n": ');
      assert.equal(await page.locator('select[name="status"]').inputValue(), "failed");
      // Navigating starts the form afresh from the URL.
      await page.goto(`${s.url}#/queues/${name}?status=completed&key=k1`);
      await page.locator("table.jobs caption").getByText("completed jobs with key k1").waitFor();
      assert.equal(await page.getByLabel("Key").inputValue(), "k1");
      assert.equal(await page.getByLabel("Data filter (JSON)").inputValue(), "");
      assert.equal(await page.locator('select[name="status"]').inputValue(), "completed");
    });

    it("lists schedules and browses records with a filter", async () => {
      const name = uniqueName("sched");
      await s.jobs.queue(name).schedule("nightly", { cron: "0 3 * * *" }, {});
      const page = browser.page;
      await page.goto(`${s.url}#/schedules`);
      const row = page.getByRole("row", { name: new RegExp(`${name} nightly`) });
      await row.waitFor();
      assert.match((await row.textContent()) ?? "", /0 3 \* \* \*.*never/);

      const collection = uniqueName("users");
      const repo = new SocketRepositoryBackend({ socketPath: s.daemon.socketPath });
      await repo.connect();
      try {
        const users = repo.repository<{ id: string; name: string; plan: string }>(collection);
        for (const [n, plan] of [["ada", "pro"], ["bob", "free"], ["cy", "pro"]] as const) await users.create({ name: n, plan });
        await page.goto(`${s.url}#/collections`);
        await page.getByRole("row", { name: new RegExp(`${collection} 3`) }).getByRole("link").click();
        await page.getByText("3 records.").waitFor();
        await page.getByLabel("Filter (JSON)").fill('{"plan": "pro"}');
        await page.getByRole("button", { name: "Filter" }).click();
        await page.getByText("2 records match.").waitFor();
        const shown = await page.locator(".records summary").allTextContents();
        assert.equal(shown.length, 2);
        assert.ok(shown.every((t) => t.includes('"plan":"pro"')));
        await page.getByLabel("Filter (JSON)").fill("{plan: pro");
        await page.getByRole("button", { name: "Filter" }).click();
        await page.getByRole("alert").getByText(/must be JSON/).waitFor();
      } finally {
        await repo.disconnect();
      }
    });
  });

  // The same path on a SQL store: its find, retry and event feed are
  // other code than memory's.
  describe("on PostgreSQL", () => {
    let s: Setup;
    before(async () => {
      s = await setup({}, "postgres");
    });
    after(async () => {
      await teardown(s);
    });

    it("finds a failed job, shows its stack, retries it and watches it complete", async () => {
      await failedJobScenario(s, browser.page);
    });
  });

  describe("read-only", () => {
    let s: Setup;
    before(async () => {
      s = await setup({ STORAGED_UI_READONLY: "1" });
    });
    after(async () => {
      await teardown(s);
    });

    it("shows no actions and the API refuses them", async () => {
      const name = uniqueName("ro");
      const queue = s.jobs.queue<{ n: number }>(name);
      const id = await queue.enqueue({ n: 1 }, { maxAttempts: 1 });
      const job = await queue.dequeue();
      assert.ok(job);
      await queue.fail(job, new Error("no"));
      const page = browser.page;
      await page.goto(`${s.url}#/jobs/${id}`);
      await page.getByLabel("Stack trace").waitFor();
      await page.getByText("read-only", { exact: true }).waitFor();
      assert.equal(await page.getByRole("button", { name: "Retry" }).count(), 0);
      const pendingId = await queue.enqueue({ n: 2 }, { runAt: new Date(Date.now() + 3_600_000) });
      await page.goto(`${s.url}#/jobs/${pendingId}`);
      await page.locator("h1 .status-pending").waitFor();
      assert.equal(await page.getByRole("button", { name: "Edit" }).count(), 0);
      assert.equal(await page.getByRole("button", { name: "Cancel" }).count(), 0);
      await page.goto(`${s.url}#/queues`);
      await page.locator(`tr[data-queue="${name}"]`).waitFor();
      assert.equal(await page.getByRole("button", { name: new RegExp(`Pause ${name}`) }).count(), 0);
      // The page's own fetch, as a user would craft it in the console.
      const answer = await page.evaluate(async (jobId) => {
        const res = await fetch(`v1/jobs/${jobId}/retry`, { method: "POST", headers: { "Storaged-UI": "1" } });
        return { status: res.status, body: await res.text() };
      }, id);
      assert.equal(answer.status, 403);
      assert.match(answer.body, /read-only/);
      assert.equal((await queue.getJob(id))?.status, JobStatus.FAILED);
    });
  });

  describe("with a token", () => {
    let s: Setup;
    before(async () => {
      s = await setup({ STORAGED_UI_TOKEN: TOKEN });
    });
    after(async () => {
      await teardown(s);
    });

    it("asks for the token and refuses a wrong one", async () => {
      const name = uniqueName("tok");
      await s.jobs.queue(name).enqueue({});
      const page = browser.page;
      await page.goto(`${s.url}#/queues`);
      await page.getByRole("heading", { name: "Token required" }).waitFor();
      await page.getByLabel("Token", { exact: true }).fill("not-the-token-at-all");
      await page.getByRole("button", { name: "Open the dashboard" }).click();
      await page.getByRole("alert").getByText("That token is not the dashboard's.").waitFor();
      await page.getByLabel("Token", { exact: true }).fill(TOKEN);
      await page.getByRole("button", { name: "Open the dashboard" }).click();
      await page.locator(`tr[data-queue="${name}"]`).waitFor();
      const res = await fetch(`${s.url}v1/queues`, { headers: { "Storaged-UI": "1" } });
      assert.equal(res.status, 401);
    });
  });

  describe("mounted in a Fastify app", () => {
    let s: Setup;
    before(async () => {
      s = await setup();
    });
    after(async () => {
      await teardown(s);
    });

    it("serves the same pages behind the app's own auth and retries through them", async () => {
      const app = Fastify();
      await app.register(async (admin) => {
        // The app's auth: a session cookie here.
        admin.addHook("onRequest", async (req, reply) => {
          if (!/(^|; )session=admin(;|$)/.test(req.headers.cookie ?? "")) return reply.code(401).send("sign in first");
        });
        await admin.register(storagedDashboard, { socketPath: s.daemon.socketPath, prefix: "/admin/jobs" });
      });
      const base = await app.listen({ host: "127.0.0.1", port: 0 });
      try {
        const name = uniqueName("mounted");
        const queue = s.jobs.queue<{ n: number }>(name);
        const id = await queue.enqueue({ n: 1 }, { maxAttempts: 1 });
        const job = await queue.dequeue();
        assert.ok(job);
        await queue.fail(job, new Error("mounted failure"));
        const page = browser.page;
        const denied = await page.goto(`${base}/admin/jobs/`);
        assert.equal(denied?.status(), 401);
        await browser.context.addCookies([{ name: "session", value: "admin", url: base }]);
        await page.goto(`${base}/admin/jobs#/jobs/${id}`);
        assert.equal(new URL(page.url()).pathname, "/admin/jobs/");
        await page.getByLabel("Stack trace").getByText("mounted failure").waitFor();
        await page.getByRole("button", { name: "Retry" }).click();
        await page.locator("h1 .status-pending").waitFor();
        assert.equal((await queue.getJob(id))?.status, JobStatus.PENDING);
      } finally {
        await browser.context.clearCookies();
        await app.close();
      }
    });
  });
});
