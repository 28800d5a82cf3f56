// make bench: storaged beside the alternatives a user would pick, in one
// run, as ratios. Peers and storaged run alternately in this one process,
// several rounds each, and the medians are reported, because the machine
// is shared and noisy. QUICK=1 shrinks every section; BENCH_ONLY=<names>
// (comma-separated keys of `sections` in main) runs only those.
// The job queue sections live in queues.mjs, the shared helpers in harness.mjs.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync, mkdirSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { SocketRepositoryBackend } from "../../clients/node/dist/index.js";
import {
  N, QUICK, BIN, ADMIN_URL, here, tmp, cleanups, results, log, pct, median, us, now, rss, daemon, freshDb, f, k, target,
} from "./harness.mjs";
import { queues, deepQueue, latencyAll, queueReport } from "./queues.mjs";
import { repoV2, repoV2Report } from "./repo18.mjs";

// ---------------------------------------------------------------- helpers
async function serial(fn, n) {
  const lat = new Array(n);
  for (let i = 0; i < n; i++) { const t = now(); await fn(i); lat[i] = us(t); }
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function inflight(fn, k, ms) {
  let done = 0;
  const end = Date.now() + ms;
  await Promise.all(Array.from({ length: k }, async (_, j) => { while (Date.now() < end) { await fn(done++, j); } }));
  return done / (ms / 1000);
}

/**
 * Latency: the contenders' calls are interleaved one by one, so that
 * noise (another tenant, GC, frequency changes) hits all of them alike.
 * Throughput: 64-in-flight blocks, alternating between contenders, in
 * several rounds. Medians of the rounds are reported.
 */
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
    contenders.forEach((c, ci) => {
      acc[c.name].p50.push(pct(lat[ci], 50));
      acc[c.name].p99.push(pct(lat[ci], 99));
    });
    for (const c of contenders) {
      if (!c.noTput) acc[c.name].tput.push(await inflight(c.fn, 64, Math.floor(N.ms / 2)));
    }
  }
  const out = {};
  for (const c of contenders) {
    const a = acc[c.name];
    out[c.name] = { p50_us: median(a.p50), p99_us: median(a.p99), per_s_64: a.tput.length ? median(a.tput) : null };
  }
  return out;
}

function rawClient(socketPath) {
  const sock = net.createConnection(socketPath);
  sock.setNoDelay(true);
  let pending = null, buf = "";
  sock.on("data", (d) => {
    buf += d.toString("latin1");
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    const m = /content-length: (\d+)/i.exec(buf.slice(0, end));
    const len = m ? Number(m[1]) : 0;
    if (buf.length < end + 4 + len) return;
    buf = buf.slice(end + 4 + len);
    const r = pending; pending = null; r();
  });
  const req = Buffer.from("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  return {
    ready: new Promise((r) => sock.once("connect", r)),
    get: () => new Promise((r) => { pending = r; sock.write(req); }),
    close: () => sock.destroy(),
  };
}

async function rawPool(socketPath, k) {
  const cs = Array.from({ length: k }, () => rawClient(socketPath));
  await Promise.all(cs.map((c) => c.ready));
  // Loop j of inflight() owns connection j: one request at a time on each.
  return { get: (j) => cs[j].get(), close: () => cs.forEach((c) => c.close()) };
}

const docFor = (i) => ({ name: `plan ${i}`, status: `s${i % 100}`, n: i, steps: ["a", "b"], owner: { team: `t${i % 10}` } });

// ---------------------------------------------------------------- sections
async function ipcFloor() {
  log("IPC floor (memory backend)");
  const d = await daemon({ REPOSITORY_BACKEND: "memory", JOBQUEUE_BACKEND: "memory" });
  const raw1 = rawClient(d.socket);
  await raw1.ready;
  const raw64 = await rawPool(d.socket, 64);
  const repo = new SocketRepositoryBackend({ socketPath: d.socket });
  await repo.connect();
  const plans = repo.repository("bench");
  const ids = [];
  for (let i = 0; i < 1000; i++) ids.push((await plans.create(docFor(i))).id);
  results.footprint = { idle_rss_mib: rss(d.pid) };
  for (let i = 0; i < 3000; i++) { await raw1.get(); await plans.findById(ids[i % 1000]); }
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, rss(d.pid)); }, 50);
  const r = await compare([
    { name: "raw GET /healthz", fn: () => raw1.get(), noTput: true },
    { name: "client findById", fn: (i) => plans.findById(ids[i % 1000]) },
    { name: "client create", fn: (i) => plans.create(docFor(i)) },
  ]);
  // Raw throughput with 64 in flight, on 64 kept-open connections.
  const rawT = [];
  for (let k = 0; k < N.rounds; k++) rawT.push(await inflight((_, j) => raw64.get(j), 64, Math.floor(N.ms / 2)));
  r["raw GET /healthz"].per_s_64 = median(rawT);
  clearInterval(sampler);
  results.footprint.load_rss_mib = peak;
  results.sections.ipc = r;
  raw1.close(); raw64.close();
  await repo.disconnect();
  await d.stop();
}

async function sqliteRepo() {
  log("Repository on SQLite beside better-sqlite3");
  const d = await daemon({ REPOSITORY_BACKEND: "sqlite", JOBQUEUE_BACKEND: "memory", SQLITE_PATH: join(tmp, "repo.db") });
  const repo = new SocketRepositoryBackend({ socketPath: d.socket });
  await repo.connect();
  const plans = repo.repository("bench");
  const ids = [];
  for (let i = 0; i < 2000; i++) ids.push((await plans.create(docFor(i))).id);
  await plans.ensureIndex({ fields: ["status"] });

  const db = new Database(join(tmp, "anchor.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec("CREATE TABLE records (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID");
  db.exec("CREATE INDEX records_status ON records (json_extract(doc, '$.status'))");
  const ins = db.prepare("INSERT INTO records (id, doc) VALUES (?, ?)");
  const get = db.prepare("SELECT doc FROM records WHERE id = ?");
  const upd = db.prepare("UPDATE records SET doc = json_patch(doc, ?) WHERE id = ? RETURNING doc");
  const find = db.prepare("SELECT doc FROM records WHERE json_extract(doc, '$.status') = ? ORDER BY id LIMIT 10");
  const bids = [];
  for (let i = 0; i < 2000; i++) { const id = randomBytes(8).toString("hex"); ins.run(id, JSON.stringify({ id, ...docFor(i) })); bids.push(id); }
  const b = {
    findById: (i) => JSON.parse(get.get(bids[i % 2000]).doc),
    create: (i) => { const id = randomBytes(8).toString("hex"); const doc = { id, ...docFor(i) }; ins.run(id, JSON.stringify(doc)); return doc; },
    update: (i) => JSON.parse(upd.get(JSON.stringify({ n: i }), bids[i % 2000]).doc),
    findMany: (i) => find.all(`s${i % 100}`).map((r) => JSON.parse(r.doc)),
  };
  const s = {
    findById: (i) => plans.findById(ids[i % 2000]),
    create: (i) => plans.create(docFor(i)),
    update: (i) => plans.update(ids[i % 2000], { n: i }),
    findMany: (i) => plans.findMany({ filter: { status: `s${i % 100}` }, limit: 10 }),
  };
  const out = {};
  for (const op of Object.keys(s)) {
    out[op] = await compare([{ name: "better-sqlite3 (in process)", fn: b[op] }, { name: "storaged sqlite", fn: s[op] }]);
  }
  results.sections.sqliteRepo = out;
  db.close();
  await repo.disconnect();
  await d.stop();
}

async function pgRepo() {
  log("Repository on PostgreSQL beside node-postgres");
  const url = await freshDb();
  const d = await daemon({ REPOSITORY_BACKEND: "postgres", JOBQUEUE_BACKEND: "memory", POSTGRESQL_URL: url });
  const repo = new SocketRepositoryBackend({ socketPath: d.socket });
  await repo.connect();
  const plans = repo.repository("bench");
  const ids = [];
  for (let i = 0; i < 2000; i++) ids.push((await plans.create(docFor(i))).id);
  await plans.ensureIndex({ fields: ["status"] });
  const pool = new pg.Pool({ connectionString: url, max: 16 });
  await pool.query("CREATE TABLE np_records (id text PRIMARY KEY, doc jsonb NOT NULL)");
  await pool.query("CREATE INDEX np_status ON np_records ((doc -> 'status'))");
  const bids = [];
  for (let i = 0; i < 2000; i++) { const id = randomBytes(8).toString("hex"); await pool.query("INSERT INTO np_records VALUES ($1, $2)", [id, { id, ...docFor(i) }]); bids.push(id); }
  await pool.query("ANALYZE");
  const n = {
    findById: async (i) => (await pool.query("SELECT doc FROM np_records WHERE id = $1", [bids[i % 2000]])).rows[0].doc,
    create: async (i) => { const id = randomBytes(8).toString("hex"); return (await pool.query("INSERT INTO np_records VALUES ($1, $2) RETURNING doc", [id, { id, ...docFor(i) }])).rows[0].doc; },
    update: async (i) => (await pool.query("UPDATE np_records SET doc = doc || $2 WHERE id = $1 RETURNING doc", [bids[i % 2000], { n: i }])).rows[0].doc,
    findMany: async (i) => (await pool.query("SELECT doc FROM np_records WHERE doc -> 'status' = $1 ORDER BY id LIMIT 10", [JSON.stringify(`s${i % 100}`)])).rows.map((r) => r.doc),
  };
  const s = {
    findById: (i) => plans.findById(ids[i % 2000]),
    create: (i) => plans.create(docFor(i)),
    update: (i) => plans.update(ids[i % 2000], { n: i }),
    findMany: (i) => plans.findMany({ filter: { status: `s${i % 100}` }, limit: 10 }),
  };
  // The same records behind a daemon with the read cache on, in a
  // database of its own: the cache turns on the change-feed trigger, whose
  // NOTIFY the uncached daemon's writes should not pay.
  const dc = await daemon({ REPOSITORY_BACKEND: "postgres", JOBQUEUE_BACKEND: "memory", POSTGRESQL_URL: await freshDb(), REPOSITORY_CACHE_SIZE: "10000" });
  const repoC = new SocketRepositoryBackend({ socketPath: dc.socket });
  await repoC.connect();
  const plansC = repoC.repository("bench");
  const idsC = [];
  for (let i = 0; i < 2000; i++) idsC.push((await plansC.create(docFor(i))).id);
  const c = {
    findById: (i) => plansC.findById(idsC[i % 2000]),
    update: (i) => plansC.update(idsC[i % 2000], { n: i }),
  };
  const out = {};
  for (const op of Object.keys(s)) {
    const contenders = [{ name: "node-postgres (direct)", fn: n[op] }, { name: "storaged postgres", fn: s[op] }];
    if (c[op]) contenders.push({ name: "storaged postgres, cached", fn: c[op] });
    out[op] = await compare(contenders);
  }
  // The hit path on its own: back-to-back calls to one daemon, so that
  // neither daemon idles between calls (the interleaved figures above
  // include waking an idle daemon).
  const alone = {};
  for (const [name, fn] of [["storaged postgres", s.findById], ["storaged postgres, cached", c.findById]]) {
    const runs = [];
    for (let r = 0; r < N.rounds; r++) runs.push(await serial(fn, Math.floor(N.serial / N.rounds)));
    alone[name] = { p50_us: median(runs.map((x) => x.p50)), p99_us: median(runs.map((x) => x.p99)) };
  }
  out.findByIdAlone = alone;
  results.sections.pgRepo = out;
  await pool.end();
  await repo.disconnect();
  await repoC.disconnect();
  await d.stop();
  await dc.stop();
}

async function scale() {
  log("Scale: equality findMany (limit 10) and count, indexed vs not");
  const out = { sqlite: {}, postgres: {} };
  for (const size of N.scale) {
    // SQLite: migrate through the daemon and give the collection its
    // table (its first record), bulk-load the file directly, serve.
    const path = join(tmp, `scale-${size}.db`);
    let d = await daemon({ REPOSITORY_BACKEND: "sqlite", JOBQUEUE_BACKEND: "memory", SQLITE_PATH: path });
    await seed(d.socket);
    await d.stop();
    const db = new Database(path);
    const table = `records_${db.prepare("SELECT id FROM collections WHERE name = 'scale'").get().id}`;
    const ins = db.prepare(`INSERT INTO ${table} (id, doc) VALUES (?, ?)`);
    db.transaction(() => {
      db.prepare(`DELETE FROM ${table}`).run();
      for (let i = 0; i < size; i++) { const id = `r${String(i).padStart(8, "0")}`; ins.run(id, JSON.stringify({ id, ...docFor(i) })); }
    })();
    db.close();
    d = await daemon({ REPOSITORY_BACKEND: "sqlite", JOBQUEUE_BACKEND: "memory", SQLITE_PATH: path });
    out.sqlite[size] = await measureScale(d.socket);
    await d.stop();
    rmSync(path, { force: true });

    const url = await freshDb();
    d = await daemon({ REPOSITORY_BACKEND: "postgres", JOBQUEUE_BACKEND: "memory", POSTGRESQL_URL: url });
    await seed(d.socket);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const pgTable = `storaged_records_${(await c.query("SELECT id FROM storaged_collections WHERE name = 'scale'")).rows[0].id}`;
    await c.query(`DELETE FROM ${pgTable}`);
    await c.query(`INSERT INTO ${pgTable} (id, doc)
      SELECT 'r' || lpad(i::text, 8, '0'), jsonb_build_object('id', 'r' || lpad(i::text, 8, '0'), 'name', 'plan ' || i,
        'status', 's' || (i % 100), 'n', i, 'steps', '["a","b"]'::jsonb, 'owner', jsonb_build_object('team', 't' || (i % 10)))
      FROM generate_series(0, $1::int - 1) AS i`, [size]);
    await c.query(`ANALYZE ${pgTable}`);
    await c.end();
    out.postgres[size] = await measureScale(d.socket);
    await d.stop();
  }
  results.sections.scale = out;
  // A collection has a table once it has a record (docs/decisions.md).
  async function seed(sock) {
    const repo = new SocketRepositoryBackend({ socketPath: sock });
    await repo.connect();
    await repo.repository("scale").create({ id: "seed" });
    await repo.disconnect();
  }
  async function measureScale(sock) {
    const repo = new SocketRepositoryBackend({ socketPath: sock });
    await repo.connect();
    const r = repo.repository("scale");
    const reps = (n) => Math.max(3, Math.floor(30 * 10_000 / n));
    const m = {};
    m.unindexed_find_ms = (await serial((i) => r.findMany({ filter: { status: `s${i % 100}` }, limit: 10 }), reps(r.size ?? 100_000))).p50 / 1000;
    m.unindexed_count_ms = (await serial((i) => r.count({ status: `s${i % 100}` }), 5)).p50 / 1000;
    await r.ensureIndex({ fields: ["status"] });
    m.indexed_find_ms = (await serial((i) => r.findMany({ filter: { status: `s${(i * 7) % 100}` }, limit: 10 }), 200)).p50 / 1000;
    m.indexed_count_ms = (await serial((i) => r.count({ status: `s${(i * 7) % 100}` }), 100)).p50 / 1000;
    await repo.disconnect();
    return m;
  }
}

// Issue 13, item 11: a write to one collection must not pay for the
// indexes of others. The same unindexed collection is written before and
// after OTHERS other collections get a record and an index each.
async function isolation() {
  const others = 1000;
  log(`Writes to an unindexed collection, then beside ${others} indexed collections`);
  const out = {};
  const setups = [
    ["sqlite", async () => ({ REPOSITORY_BACKEND: "sqlite", JOBQUEUE_BACKEND: "memory", SQLITE_PATH: join(tmp, "isolation.db") })],
    ["postgres", async () => ({ REPOSITORY_BACKEND: "postgres", JOBQUEUE_BACKEND: "memory", POSTGRESQL_URL: await freshDb() })],
  ];
  for (const [name, env] of setups) {
    const d = await daemon(await env());
    const repo = new SocketRepositoryBackend({ socketPath: d.socket });
    await repo.connect();
    const plain = repo.repository("plain");
    const writes = async () => {
      for (let i = 0; i < 200; i++) await plain.create(docFor(i)); // warm up
      const runs = [];
      for (let r = 0; r < N.rounds; r++) runs.push(await serial((i) => plain.create(docFor(i)), Math.floor(N.serial / N.rounds)));
      return { p50_us: median(runs.map((x) => x.p50)), p99_us: median(runs.map((x) => x.p99)) };
    };
    const alone = await writes();
    const t = now();
    for (let i = 0; i < others; i++) {
      const r = repo.repository(`indexed_${i}`);
      await r.create(docFor(i));
      await r.ensureIndex({ name: "by_status", fields: ["status"] });
    }
    log(`  ${name}: ${others} indexed collections made in ${(us(t) / 1e6).toFixed(1)} s`);
    const beside = await writes();
    out[name] = { others, alone, beside };
    await repo.disconnect();
    await d.stop();
  }
  results.sections.isolation = out;
}

// ---------------------------------------------------------------- report
function machine() {
  const v = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: "utf8" }).trim().split("\n")[0]; } catch { return "?"; } };
  return {
    date: new Date().toISOString(),
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}`,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    go: v("go", ["version"]),
    storaged: v(BIN, ["version"]),
    postgres: v("psql", [ADMIN_URL, "-Atc", "select version()"]),
    quick: QUICK,
  };
}

function report() {
  const r = results.sections;
  const md = [];
  const m = results.machine;
  md.push(`# storaged bench${QUICK ? " (QUICK)" : ""}`, "", `${m.date} · ${m.cpus} · ${m.memory_gib} GiB · ${m.node} · ${m.go} · ${m.storaged}`, `PostgreSQL: ${m.postgres}`, "");
  if (r.ipc) {
    const raw = r.ipc["raw GET /healthz"];
    md.push("## IPC floor (memory backend)", "", "| call | p50 µs | p99 µs | ×raw p50 | /s with 64 in flight |", "|---|---|---|---|---|");
    for (const [name, x] of Object.entries(r.ipc)) md.push(`| ${name} | ${f(x.p50_us)} | ${f(x.p99_us)} | ${f(x.p50_us / raw.p50_us, 2)} | ${k(x.per_s_64)} |`);
    md.push("");
    target("client findById p50 / raw socket p50", r.ipc["client findById"].p50_us / raw.p50_us, 1.5, "<=", "×");
    target("client findById/s, 64 in flight (memory)", r.ipc["client findById"].per_s_64, 40000, ">=", "/s");
  }
  for (const [key, title, peer] of [["sqliteRepo", "Repository on SQLite (better-sqlite3 is an in-process anchor, not a race)", "better-sqlite3 (in process)"], ["pgRepo", "Repository on PostgreSQL", "node-postgres (direct)"]]) {
    if (!r[key]) continue;
    md.push(`## ${title}`, "", "| op | contender | p50 µs | p99 µs | /s with 64 in flight | p50 ×peer | /s ×peer |", "|---|---|---|---|---|---|---|");
    for (const [op, byName] of Object.entries(r[key])) {
      if (op === "findByIdAlone") continue;
      const p = byName[peer];
      for (const [name, x] of Object.entries(byName)) md.push(`| ${op} | ${name} | ${f(x.p50_us)} | ${f(x.p99_us)} | ${k(x.per_s_64)} | ${f(x.p50_us / p.p50_us, 2)} | ${f(x.per_s_64 / p.per_s_64, 2)} |`);
    }
    md.push("");
  }
  if (r.pgRepo) {
    const s = r.pgRepo.findById["storaged postgres"], p = r.pgRepo.findById["node-postgres (direct)"];
    const cached = r.pgRepo.findById["storaged postgres, cached"];
    if (cached) md.push(`Read cache (REPOSITORY_CACHE_SIZE=10000, 2 000 records, all hits after the first round): findById p50 ${f(cached.p50_us)} µs cached vs ${f(s.p50_us)} µs uncached (${f(s.p50_us / cached.p50_us, 1)}× faster), ${k(cached.per_s_64)}/s vs ${k(s.per_s_64)}/s with 64 in flight.`, "");
    const alone = r.pgRepo.findByIdAlone;
    if (alone) md.push(`Back to back, one daemon at a time (no idle daemon to wake): findById p50 ${f(alone["storaged postgres, cached"].p50_us)} µs cached (p99 ${f(alone["storaged postgres, cached"].p99_us)}) vs ${f(alone["storaged postgres"].p50_us)} µs uncached (p99 ${f(alone["storaged postgres"].p99_us)}).`, "");
    target("PostgreSQL findById p50 / node-postgres", s.p50_us / p.p50_us, 1.2, "<=", "×");
    target("PostgreSQL findById/s 64 in flight / node-postgres", s.per_s_64 / p.per_s_64, 1.0, ">=", "×");
  }
  queueReport(md);
  if (r.scale) {
    md.push("## Scale: equality filter on one field (100 distinct values)", "", "| backend | records | unindexed findMany ms | unindexed count ms | indexed findMany ms | indexed count ms |", "|---|---|---|---|---|---|");
    for (const [b, bySize] of Object.entries(r.scale)) for (const [size, x] of Object.entries(bySize)) md.push(`| ${b} | ${size} | ${f(x.unindexed_find_ms, 2)} | ${f(x.unindexed_count_ms, 2)} | ${f(x.indexed_find_ms, 2)} | ${f(x.indexed_count_ms, 2)} |`);
    md.push("");
    for (const b of ["sqlite", "postgres"]) {
      const x = r.scale[b]?.[100000];
      if (!x) continue;
      target(`${b} indexed findMany p50 at 100k`, x.indexed_find_ms, 2, "<=", "ms");
      target(`${b} indexed count p50 at 100k`, x.indexed_count_ms, 2, "<=", "ms");
    }
  }
  if (r.isolation) {
    md.push("## Writes beside indexed collections (create in an unindexed collection)", "", "| backend | other indexed collections | p50 µs alone | p50 µs beside | ×alone | p99 µs alone | p99 µs beside |", "|---|---|---|---|---|---|---|");
    for (const [b, x] of Object.entries(r.isolation)) md.push(`| ${b} | ${x.others} | ${f(x.alone.p50_us)} | ${f(x.beside.p50_us)} | ${f(x.beside.p50_us / x.alone.p50_us, 2)} | ${f(x.alone.p99_us)} | ${f(x.beside.p99_us)} |`);
    md.push("");
    for (const [b, x] of Object.entries(r.isolation)) target(`${b} create p50 beside ${x.others} indexed collections / alone`, x.beside.p50_us / x.alone.p50_us, 1.5, "<=", "×");
  }
  if (results.footprint) {
    md.push("## Footprint (memory backend)", "", `Daemon RSS idle ${f(results.footprint.idle_rss_mib)} MiB, peak under the 64-in-flight load ${f(results.footprint.load_rss_mib)} MiB.`, "");
    target("daemon RSS idle", results.footprint.idle_rss_mib, 30, "<=", "MiB");
  }
  md.push(...repoV2Report(r));
  md.push("## Targets", "", "| target | measured | goal | met |", "|---|---|---|---|");
  for (const t of results.targets) md.push(`| ${t.name} | ${t.unit === "/s" ? k(t.value) : f(t.value, 2)} ${t.unit} | ${t.cmp} ${t.unit === "/s" ? k(t.limit) : t.limit} ${t.unit} | ${t.met ? "yes" : "**no**"} |`);
  md.push("");
  return md.join("\n");
}

async function main() {
  results.machine = machine();
  const only = (process.env.BENCH_ONLY ?? "").split(",").filter(Boolean);
  const sections = { ipc: ipcFloor, sqlite: sqliteRepo, postgres: pgRepo, repoV2, queues, deep: deepQueue, latency: latencyAll, scale, isolation };
  try {
    for (const [name, fn] of Object.entries(sections)) {
      if (only.length && !only.includes(name)) continue;
      const t = Date.now();
      await fn();
      log(`  ${name} took ${((Date.now() - t) / 1000).toFixed(0)} s`);
    }
  } finally {
    // A cleanup may be sync or async, and may fail: every one still runs.
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  }
  const md = report();
  const dir = join(here, "..", "results");
  mkdirSync(dir, { recursive: true });
  // A run of some sections (BENCH_ONLY) leaves the full report alone.
  const base = only.length ? `only-${only.join("-")}` : "latest";
  writeFileSync(join(dir, `${base}.md`), md);
  writeFileSync(join(dir, `${base}.json`), JSON.stringify(results, null, 1));
  console.log(md);
}

main().catch((e) => { console.error(e); process.exit(1); });
