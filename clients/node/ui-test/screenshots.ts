// Screenshots of every dashboard page, against a daemon filled with demo
// data, into docs/ui/ for the README: `make ui-screenshots`.
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { JobStatus, SocketJobQueueBackend, SocketRepositoryBackend } from "../src/index.js";
import { startDaemon } from "../test/harness.js";
import { freePort, launch } from "./browser.js";

/**
 * The error a deployed mailer would report. Its stack is written out: the
 * demo's real frames would name this checkout's build directory, which
 * means nothing to a reader of the screenshots (and leaks a local path).
 */
function smtpRefusal(to: string): Error {
  const e = new Error(`SMTP 550: mailbox ${to} unavailable`);
  e.stack = [
    `Error: ${e.message}`,
    "    at SmtpConnection.expectReply (/srv/mailer/dist/smtp/connection.js:214:19)",
    "    at async SmtpConnection.send (/srv/mailer/dist/smtp/connection.js:131:5)",
    "    at async sendEmail (/srv/mailer/dist/jobs/send-email.js:42:22)",
    "    at async QueueWorker.run (/srv/mailer/node_modules/@storaged/client/dist/worker.js:187:24)",
  ].join("\n");
  return e;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
const out = join(repoRoot, "docs", "ui");
mkdirSync(out, { recursive: true });

const port = await freePort();
const daemon = await startDaemon("memory", { STORAGED_UI_LISTEN: `127.0.0.1:${port}` });
const url = `http://127.0.0.1:${port}/`;
const jobs = new SocketJobQueueBackend({ socketPath: daemon.socketPath });
const repo = new SocketRepositoryBackend({ socketPath: daemon.socketPath });
await jobs.connect();
await repo.connect();
const browser = await launch();
try {
  // emails: a day's work, some of it failing.
  const emails = jobs.queue<{ to: string; template: string }, { messageId: string }>("emails");
  for (let n = 0; n < 40; n++) await emails.enqueue({ to: `user${n}@example.com`, template: n % 3 ? "welcome" : "receipt" }, { maxAttempts: 1 });
  const worker = emails.work(async function sendEmail(job) {
    await Promise.resolve();
    if (job.data.to.endsWith("7@example.com")) throw smtpRefusal(job.data.to);
    return { messageId: `<${job.id}@mail.example.com>` };
  }, { concurrency: 4 });
  while ((await emails.stats()).pending + (await emails.stats()).processing > 0) await new Promise((r) => setTimeout(r, 100));
  await worker.stop();
  for (let n = 0; n < 6; n++) await emails.enqueue({ to: `later${n}@example.com`, template: "digest" }, { runAt: new Date(Date.now() + (n + 1) * 600_000) });
  const failed = await emails.findJobs({ status: JobStatus.FAILED, limit: 1 });

  // reports: paused, with schedules.
  const reports = jobs.queue<{ report: string }>("reports");
  for (const r of ["sales", "churn", "usage"]) await reports.enqueue({ report: r });
  await reports.schedule("nightly-sales", { cron: "0 2 * * *", tz: "Europe/Paris" }, { report: "sales" });
  await reports.schedule("hourly-usage", { everyMs: 3_600_000 }, { report: "usage" });
  await reports.pause();
  const webhooks = jobs.queue<{ url: string }>("webhooks");
  await webhooks.schedule("retry-sweep", { cron: "*/15 * * * *" }, { url: "https://hooks.example.com/sweep" });
  for (let n = 0; n < 3; n++) await webhooks.enqueue({ url: `https://hooks.example.com/${n}` });
  await webhooks.dequeue();

  // records
  const users = repo.repository<{ id: string; name: string; plan: string; seats: number }>("users");
  await users.ensureIndex({ fields: ["plan"] });
  const plans = ["free", "pro", "team"];
  for (let n = 0; n < 24; n++) await users.create({ name: `User ${n}`, plan: plans[n % 3] ?? "free", seats: (n % 5) + 1 });
  const invoices = repo.repository<{ id: string; user: string; total: number }>("invoices");
  for (let n = 0; n < 9; n++) await invoices.create({ user: `User ${n}`, total: 19 * (n + 1) });

  const page = browser.page;
  const shots: Array<[string, string]> = [
    ["queues", "#/queues"],
    ["jobs", "#/queues/emails?status=failed"],
    ["job", `#/jobs/${failed.jobs[0]?.id ?? ""}`],
    ["schedules", "#/schedules"],
    ["collections", "#/collections"],
    ["records", `#/collections/users?filter=${encodeURIComponent('{"plan": "pro"}')}`],
  ];
  for (const [name, hash] of shots) {
    await page.goto(url + hash);
    await page.locator("main h1").waitFor();
    await page.waitForLoadState("networkidle");
    await page.waitForTimeout(300);
    // The pictures are published: no path of this machine may show in them.
    const shown = (await page.locator("main").textContent()) ?? "";
    if (shown.includes(repoRoot)) throw new Error(`the ${name} page shows a local path (${repoRoot}); see smtpRefusal`);
    await page.screenshot({ path: join(out, `${name}.png`) });
    console.log(`docs/ui/${name}.png`);
  }
} finally {
  await browser.close();
  await jobs.disconnect();
  await repo.disconnect();
  await daemon.stop();
}
