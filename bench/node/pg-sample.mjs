// Where PostgreSQL's time goes during a storaged drain (a poor man's
// profiler, for when make bench shows the postgres backends as the cost):
// pg_stat_activity of the run's database is sampled back to back while one
// worker like make bench's drains JOBS jobs, and the active statements are
// tallied by what they wait on ("CPU" when on no wait event).
// The sampling itself costs a backend; compare runs, not absolute rates.
// Usage: node pg-sample.mjs [prefetch] [jobs]
import pg from "pg";
import { rmSync } from "node:fs";
import { SocketJobQueueBackend } from "../../clients/node/dist/index.js";
import { ADMIN_URL, cleanups, daemon, dbName, freshDb, tmp } from "./harness.mjs";

const prefetch = process.argv[2] ? Number(process.argv[2]) : undefined;
const JOBS = Number(process.argv[3] ?? 20_000);

const url = await freshDb();
const d = await daemon({ REPOSITORY_BACKEND: "memory", JOBQUEUE_BACKEND: "postgres", POSTGRESQL_URL: url });
const client = new SocketJobQueueBackend({ socketPath: d.socket });
await client.connect();
const q = client.queue("drain");
for (let i = 0; i < JOBS; i += 1000) await q.enqueueMany(Array.from({ length: Math.min(1000, JOBS - i) }, (_, j) => ({ data: { i: i + j } })));

const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
const tally = new Map();
let samples = 0, sampling = true;
const sampler = (async () => {
  while (sampling) {
    const { rows } = await admin.query(
      `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS q, coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w
       FROM pg_stat_activity WHERE datname = $1 AND state = 'active'`, [dbName(url)]);
    samples++;
    for (const r of rows) {
      const key = `${r.w.padEnd(22)} ${r.q.slice(0, 110)}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
  }
})();

let seen = 0, lastRan;
const ran = new Promise((r) => (lastRan = r));
const t = performance.now();
const w = q.work(async () => { if (++seen === JOBS) lastRan(); }, { concurrency: 16, ...(prefetch ? { prefetch } : {}) });
await ran;
await w.stop();
const secs = (performance.now() - t) / 1000;
sampling = false;
await sampler;

console.log(`prefetch ${prefetch ?? "default"}: ${JOBS} jobs at ${Math.round(JOBS / secs)}/s; ${samples} samples; share = backends active in that state per sample`);
for (const [key, n] of [...tally].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${(n / samples).toFixed(2).padStart(6)}  ${key}`);
await admin.end();
await client.disconnect();
for (const c of cleanups.reverse()) await c().catch(() => {});
rmSync(tmp, { recursive: true, force: true });
