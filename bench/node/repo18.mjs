// Issue 18's calls beside node-postgres running the same SQL: upsert,
// $inc (one guarded UPDATE), getMany (10 ids) and updateMany (a filter
// matching 20 records, $inc on each). BENCH_ONLY=repoV2.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { SocketRepositoryBackend } from "../../clients/node/dist/index.js";
import { results, log, daemon, freshDb, dbName, f, k, compare, rawClient, overHop, PG_POOL, withPool } from "./harness.mjs";

const docFor = (i) => ({ name: `plan ${i}`, status: `s${i % 100}`, n: i, steps: ["a", "b"], owner: { team: `t${i % 10}` } });
const RAW = "raw GET /healthz (same daemon)";

export async function repoV2() {
  log("Repository calls of issue 18 on PostgreSQL beside node-postgres");
  const url = await freshDb();
  const d = await daemon({ REPOSITORY_BACKEND: "postgres", JOBQUEUE_BACKEND: "memory", POSTGRESQL_URL: withPool(url) });
  const repo = new SocketRepositoryBackend({ socketPath: d.socket });
  await repo.connect();
  const plans = repo.repository("bench18");
  const ids = [];
  for (let i = 0; i < 2000; i++) ids.push((await plans.create(docFor(i))).id);
  await plans.ensureIndex({ fields: ["status"] });
  const pool = new pg.Pool({ connectionString: url, max: PG_POOL });
  await pool.query("CREATE TABLE np_records (id text COLLATE \"C\" PRIMARY KEY, doc jsonb NOT NULL, version bigint NOT NULL DEFAULT 1)");
  await pool.query("CREATE INDEX np_status ON np_records ((doc -> 'status'))");
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
    updateMany: async (i) => (await pool.query(
      "UPDATE np_records SET doc = jsonb_set(doc, '{n}', to_jsonb((doc -> 'n')::numeric + 1)), version = version + 1 WHERE doc -> 'status' = $1 AND coalesce(jsonb_typeof(doc -> 'n'), 'number') = 'number'",
      [JSON.stringify(`s${i % 100}`)])).rowCount,
  };
  const s = {
    upsert: (i) => plans.upsert(ids[i % 2000], docFor(i)),
    inc: (i) => plans.update(ids[i % 2000], { $inc: { n: 1 } }),
    getMany: (i) => plans.getMany(tenOf(ids, i)),
    updateMany: (i) => plans.updateMany({ status: `s${i % 100}` }, { $inc: { n: 1 } }),
  };
  const raw = rawClient(d.socket);
  await raw.ready;
  const out = {};
  for (const op of Object.keys(s)) {
    out[op] = await compare([
      { name: "node-postgres (direct)", fn: n[op], procs: { pgDb: dbName(url) } },
      { name: "storaged postgres", fn: s[op], procs: { daemon: d.pid, pgDb: dbName(url) } },
      { name: RAW, fn: () => raw.get(), noTput: true },
    ]);
  }
  raw.close();
  results.sections.repoV2 = out;
  await pool.end();
  await repo.disconnect();
  await d.stop();
}

export function repoV2Report(r) {
  if (!r.repoV2) return [];
  const md = ["## Issue 18 calls on PostgreSQL (getMany: 10 ids; updateMany: 20 records)", "", `Both sides have ${PG_POOL} connections to PostgreSQL.`, "",
    `× round trip: (storaged p50 − node-postgres p50) / the socket's round trip (${RAW}, interleaved), median of the rounds. CPU: µs per call with 64 in flight, node / daemon / postgres.`, "",
    "| op | contender | p50 µs | p99 µs | /s with 64 in flight | p50 ×peer | /s ×peer | × round trip | CPU node / daemon / postgres |", "|---|---|---|---|---|---|---|---|---|"];
  for (const [op, byName] of Object.entries(r.repoV2)) {
    const p = byName["node-postgres (direct)"], hop = byName[RAW];
    for (const [name, x] of Object.entries(byName)) {
      if (name === RAW) continue;
      const c = x.cpu_us_per_call_64;
      const over = name === "storaged postgres" && hop ? f(overHop(x, p, hop), 2) : "–";
      md.push(`| ${op} | ${name} | ${f(x.p50_us)} | ${f(x.p99_us)} | ${k(x.per_s_64)} | ${f(x.p50_us / p.p50_us, 2)} | ${f(x.per_s_64 / p.per_s_64, 2)} | ${over} | ${c ? `${f(c.node, 0)} / ${f(c.daemon, 0)} / ${f(c.postgres, 0)}` : "–"} |`);
    }
    if (hop) md.push(`| ${op} | ${RAW} | ${f(hop.p50_us)} | ${f(hop.p99_us)} | – | – | – | – | – |`);
  }
  md.push("");
  return md;
}
