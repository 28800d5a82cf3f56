// Quick SQLite figures through the client (folded into bench/ later).
// Usage: node sqlite-quick.mjs <socket> <records>
import { SocketRepositoryBackend, SocketJobQueueBackend } from "../../clients/node/dist/index.js";

const [socketPath, nArg] = process.argv.slice(2);
const N = Number(nArg ?? 100000);
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((p / 100) * (s.length - 1))]; };
async function lat(fn, n) { const l = []; for (let i = 0; i < n; i++) { const t = performance.now(); await fn(i); l.push(performance.now() - t); } return pct(l, 50); }
async function rate(fn, inflight, ms) { let done = 0; const end = Date.now() + ms; await Promise.all(Array.from({ length: inflight }, async () => { while (Date.now() < end) { await fn(done); done++; } })); return Math.round(done / (ms / 1000)); }

const repo = new SocketRepositoryBackend({ socketPath });
await repo.connect();
const c = repo.repository("scale");
let t = performance.now();
const ids = [];
const B = 64;
for (let i = 0; i < N; i += B) {
  const batch = await Promise.all(Array.from({ length: Math.min(B, N - i) }, (_, k) => c.create({ status: `s${(i + k) % 100}`, n: i + k, tag: (i + k) % 7 === 0 ? "x" : "y" })));
  if (ids.length < 1000) ids.push(...batch.map((r) => r.id));
}
const loadS = (performance.now() - t) / 1000;
const out = { records: N, load_creates_per_s: Math.round(N / loadS) };
out.unindexed_find_p50_ms = await lat(() => c.findMany({ filter: { status: "s42" }, limit: 10 }), 20);
out.unindexed_count_p50_ms = await lat(() => c.count({ status: "s42" }), 20);
t = performance.now();
await c.ensureIndex({ fields: ["status"] });
out.ensure_index_s = (performance.now() - t) / 1000;
out.indexed_find_p50_ms = await lat((i) => c.findMany({ filter: { status: `s${i % 100}` }, limit: 10 }), 500);
out.indexed_count_p50_ms = await lat((i) => c.count({ status: `s${i % 100}` }), 500);
out.findById_p50_ms = await lat((i) => c.findById(ids[i % ids.length]), 2000);
out.findById_per_s_64 = await rate((i) => c.findById(ids[i % ids.length]), 64, 3000);
out.create_per_s_64 = await rate(() => c.create({ status: "new", n: 1 }), 64, 3000);
await repo.disconnect();

const jobs = new SocketJobQueueBackend({ socketPath });
await jobs.connect();
const q = jobs.queue("drain");
const J = 20000;
for (let i = 0; i < J; i += 1000) await q.enqueueMany(Array.from({ length: 1000 }, (_, k) => ({ data: { i: i + k } })));
t = performance.now();
let seen = 0;
let resolveDone;
const done = new Promise((r) => (resolveDone = r));
const w = q.work(async () => { if (++seen === J) resolveDone(); }, { concurrency: 16, waitMs: 1000 });
await done;
while ((await q.stats()).completed < J) await new Promise((r) => setTimeout(r, 5));
out.queue_drain_jobs_per_s = Math.round(J / ((performance.now() - t) / 1000));
await w.stop();
await jobs.disconnect();
console.log(JSON.stringify(out, null, 1));
