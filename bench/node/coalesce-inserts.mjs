// Would coalescing creates pay? (issue 18, docs/decisions.md "The cost of
// one call"). node-postgres runs the daemon's INSERT two ways, 64 records
// in flight: one statement (and so one commit) per record, and the
// records gathered k at a time into one multi-row INSERT (one commit for
// k, every record answered after it), as a coalescer in the daemon would.
// Prints CPU µs per record of this process and of the PostgreSQL backends.
// Usage: node coalesce-inserts.mjs [records per block, default 20000]
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";

const ADMIN_URL = process.env.STORAGED_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
const N = Number(process.argv[2] ?? 20_000);
const cpuMs = (pid) => { const s = readFileSync(`/proc/${pid}/stat`, "utf8"); const f = s.slice(s.lastIndexOf(")") + 2).split(" "); return (Number(f[11]) + Number(f[12])) * 10; };
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
const db = `storaged_coalesce_${randomBytes(4).toString("hex")}`;
await admin.query(`CREATE DATABASE ${db}`);
const u = new URL(ADMIN_URL); u.pathname = `/${db}`;
const pool = new pg.Pool({ connectionString: u.toString(), max: 16 });
pool.on("error", () => {}); // the DROP at the end ends idle connections
await pool.query(`CREATE TABLE t (id text COLLATE "C" PRIMARY KEY, doc jsonb NOT NULL, version bigint NOT NULL DEFAULT 1, expires_at bigint)`);
const doc = (i) => { const id = randomBytes(8).toString("hex"); return [id, JSON.stringify({ id, name: `plan ${i}`, status: `s${i % 100}`, n: i, steps: ["a", "b"], owner: { team: `t${i % 10}` } })]; };
const pgMs = async () => { const { rows } = await admin.query("SELECT pid FROM pg_stat_activity WHERE datname = $1", [db]); let t = 0; for (const r of rows) { try { t += cpuMs(r.pid); } catch { /* gone */ } } return t; };

async function run(k) {
  // 64 records in flight: 64/k statements of k records each.
  const streams = 64 / k;
  let next = 0;
  const n0 = process.cpuUsage(), p0 = await pgMs(), t0 = performance.now();
  await Promise.all(Array.from({ length: streams }, async () => {
    while (next < N) {
      const rows = []; for (let j = 0; j < k && next < N; j++) rows.push(doc(next++));
      const values = rows.map((_, j) => `($${2 * j + 1}, $${2 * j + 2}::jsonb, NULL)`).join(", ");
      await pool.query(`INSERT INTO t (id, doc, expires_at) VALUES ${values} RETURNING doc::text`, rows.flat());
    }
  }));
  const wall = performance.now() - t0, n = process.cpuUsage(n0), p = (await pgMs()) - p0;
  return { k, node: (n.user + n.system) / N, postgres: (p * 1000) / N, per_s: N / wall * 1000 };
}
const out = [];
for (let r = 0; r < 3; r++) for (const k of [1, 4, 8, 16]) out.push(await run(k));
console.log("| records per INSERT | node µs/record | postgres µs/record | records/s |\n|---|---|---|---|");
for (const k of [1, 4, 8, 16]) {
  const rs = out.filter((x) => x.k === k); const med = (f) => rs.map((x) => x[f]).sort((a, b) => a - b)[1];
  console.log(`| ${k} | ${med("node").toFixed(1)} | ${med("postgres").toFixed(1)} | ${med("per_s").toFixed(0)} |`);
}
await pool.end();
await admin.query(`DROP DATABASE ${db} WITH (FORCE)`);
await admin.end();
