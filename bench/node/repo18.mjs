// Issue 18's calls beside node-postgres running the same SQL: upsert,
// $inc (one guarded UPDATE) and getMany (10 ids). BENCH_ONLY=repoV2.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { SocketRepositoryBackend } from "../../clients/node/dist/index.js";
import { N, results, log, pct, median, us, now, daemon, freshDb, f, k } from "./harness.mjs";

const docFor = (i) => ({ name: `plan ${i}`, status: `s${i % 100}`, n: i, steps: ["a", "b"], owner: { team: `t${i % 10}` } });

async function inflight(fn, n, ms) {
  let done = 0;
  const end = Date.now() + ms;
  await Promise.all(Array.from({ length: n }, async () => { while (Date.now() < end) await fn(done++); }));
  return done / (ms / 1000);
}

// Interleaved latency and alternating 64-in-flight blocks, medians of
// rounds: as bench.mjs's compare.
async function compare(contenders) {
  const acc = Object.fromEntries(contenders.map((c) => [c.name, { p50: [], p99: [], tput: [] }]));
  const per = Math.floor(N.serial / N.rounds);
  for (let r = 0; r < N.rounds; r++) {
    const lat = contenders.map(() => new Array(per));
    for (let i = 0; i < per; i++) {
      for (let c = 0; c < contenders.length; c++) {
        const t = now();
        await contenders[c].fn(r * per + i);
        lat[c][i] = us(t);
      }
    }
    contenders.forEach((c, ci) => { acc[c.name].p50.push(pct(lat[ci], 50)); acc[c.name].p99.push(pct(lat[ci], 99)); });
    for (const c of contenders) acc[c.name].tput.push(await inflight(c.fn, 64, Math.floor(N.ms / 2)));
  }
  return Object.fromEntries(contenders.map((c) => {
    const a = acc[c.name];
    return [c.name, { p50_us: median(a.p50), p99_us: median(a.p99), per_s_64: median(a.tput) }];
  }));
}

export async function repoV2() {
  log("Repository calls of issue 18 on PostgreSQL beside node-postgres");
  const url = await freshDb();
  const d = await daemon({ REPOSITORY_BACKEND: "postgres", JOBQUEUE_BACKEND: "memory", POSTGRESQL_URL: url });
  const repo = new SocketRepositoryBackend({ socketPath: d.socket });
  await repo.connect();
  const plans = repo.repository("bench18");
  const ids = [];
  for (let i = 0; i < 2000; i++) ids.push((await plans.create(docFor(i))).id);
  const pool = new pg.Pool({ connectionString: url, max: 16 });
  await pool.query("CREATE TABLE np_records (id text COLLATE \"C\" PRIMARY KEY, doc jsonb NOT NULL, version bigint NOT NULL DEFAULT 1)");
  const bids = [];
  for (let i = 0; i < 2000; i++) { const id = randomBytes(8).toString("hex"); await pool.query("INSERT INTO np_records (id, doc) VALUES ($1, $2)", [id, { id, ...docFor(i) }]); bids.push(id); }
  await pool.query("ANALYZE");
  const tenOf = (xs, i) => Array.from({ length: 10 }, (_, j) => xs[(i * 10 + j) % xs.length]);
  const n = {
    upsert: async (i) => { const id = bids[i % 2000]; return (await pool.query(
      "INSERT INTO np_records AS t (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, version = t.version + 1 RETURNING doc, version",
      [id, { id, ...docFor(i) }])).rows[0]; },
    inc: async (i) => (await pool.query(
      "UPDATE np_records SET doc = jsonb_set(doc, '{n}', to_jsonb((doc -> 'n')::numeric + 1)), version = version + 1 WHERE id = $1 AND coalesce(jsonb_typeof(doc -> 'n'), 'number') = 'number' RETURNING doc, version",
      [bids[i % 2000]])).rows[0],
    getMany: async (i) => (await pool.query("SELECT id, doc, version FROM np_records WHERE id = ANY($1)", [tenOf(bids, i)])).rows,
  };
  const s = {
    upsert: (i) => plans.upsert(ids[i % 2000], docFor(i)),
    inc: (i) => plans.update(ids[i % 2000], { $inc: { n: 1 } }),
    getMany: (i) => plans.getMany(tenOf(ids, i)),
  };
  const out = {};
  for (const op of Object.keys(s)) out[op] = await compare([{ name: "node-postgres (direct)", fn: n[op] }, { name: "storaged postgres", fn: s[op] }]);
  results.sections.repoV2 = out;
  await pool.end();
  await repo.disconnect();
  await d.stop();
}

export function repoV2Report(r) {
  if (!r.repoV2) return [];
  const md = ["## Issue 18 calls on PostgreSQL (getMany: 10 ids)", "", "| op | contender | p50 µs | p99 µs | /s with 64 in flight | p50 ×peer | /s ×peer |", "|---|---|---|---|---|---|---|"];
  for (const [op, byName] of Object.entries(r.repoV2)) {
    const p = byName["node-postgres (direct)"];
    for (const [name, x] of Object.entries(byName)) md.push(`| ${op} | ${name} | ${f(x.p50_us)} | ${f(x.p99_us)} | ${k(x.per_s_64)} | ${f(x.p50_us / p.p50_us, 2)} | ${f(x.per_s_64 / p.per_s_64, 2)} |`);
  }
  md.push("");
  return md;
}
