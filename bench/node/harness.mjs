// What every bench section shares: the sizes, the scratch directory, the
// daemon and database helpers, the statistics and the results.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

export const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
export const BIN = process.env.STORAGED_BIN ?? join(root, "bin", "storaged");
export const QUICK = process.env.QUICK === "1";
export const REDIS_URL = process.env.STORAGED_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";
export const ADMIN_URL = process.env.STORAGED_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/**
 * Sizes. drain: jobs per queue-drain run (also the enqueueMany figure);
 * queueRounds: runs per contender; deep: pending jobs of the shallow and the
 * deep queue, and the jobs each timed window works off.
 */
export const N = QUICK
  ? { serial: 1000, rounds: 3, ms: 1000, drain: 5000, queueRounds: 1, lat: 100, scale: [10_000, 100_000],
      deep: { shallow: 10_000, deep: 100_000, window: 2000, rounds: 3 } }
  : { serial: 3000, rounds: 5, ms: 2000, drain: 20_000, queueRounds: 3, lat: 300, scale: [10_000, 100_000, 1_000_000],
      deep: { shallow: 10_000, deep: 1_000_000, window: 5000, rounds: 5 } };

export const tmp = mkdtempSync(join(os.tmpdir(), "storaged-bench-"));
export const cleanups = [];
export const results = { sections: {}, targets: [] };
export const log = (...a) => console.error("#", ...a);

export const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
export const median = (xs) => pct(xs, 50);
export const us = (t0) => Number(process.hrtime.bigint() - t0) / 1000;
export const now = () => process.hrtime.bigint();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function rss(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function daemon(env) {
  const socket = join(tmp, `d-${randomBytes(4).toString("hex")}.sock`);
  const child = spawn(BIN, ["serve"], {
    env: { ...process.env, STORAGED_SOCKET: socket, STORAGED_LOG_LEVEL: "warn", STORAGED_STDIN_LIFELINE: "true", ...env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (b) => { out += b; if (out.includes("serving on")) resolve(); });
    child.once("exit", (c) => reject(new Error(`storaged exited ${c}`)));
  });
  const stop = () => new Promise((r) => { if (child.exitCode !== null) return r(); child.once("exit", r); child.kill("SIGTERM"); });
  cleanups.push(stop);
  // For profiling a section: curl --unix-socket <socket> localhost/debug/pprof/profile?seconds=10
  log(`  storaged pid ${child.pid} on ${socket}`);
  return { socket, pid: child.pid, stop };
}

async function admin(sql) {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try { return await c.query(sql); } finally { await c.end(); }
}

/** A new, empty database; dropped at the end of the run (or earlier by dropDb). */
export async function freshDb() {
  const name = `storaged_bench_${randomBytes(5).toString("hex")}`;
  await admin(`CREATE DATABASE ${name}`);
  cleanups.push(() => dropDb(name));
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * The PostgreSQL pool size of both sides in the repository sections:
 * node-postgres's max and the daemon's pool_max_conns, so that the
 * comparison is of the calls, not of how many commits can share a flush.
 */
export const PG_POOL = 16;
export function withPool(url) {
  const u = new URL(url);
  u.searchParams.set("pool_max_conns", String(PG_POOL));
  return u.toString();
}

export const dbName = (url) => new URL(url).pathname.slice(1);

export async function dropDb(urlOrName) {
  const name = urlOrName.includes("/") ? dbName(urlOrName) : urlOrName;
  // A peer's pool may still be closing its connections: give it a few
  // seconds, since FORCE terminates them and a pool with no 'error'
  // listener then throws out of the run (a crash of a full make bench).
  for (let i = 0; i < 50; i++) {
    const { rows } = await admin(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = '${name}'`).catch(() => ({ rows: [{ n: 0 }] }));
    if (rows[0].n === 0) break;
    await sleep(100);
  }
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
}

// What FORCE still cuts (a peer's idle pool that outlived its run) is
// not the bench's failure: the pool's 'error' event has no listener of
// ours to catch it, so it is caught here, and anything else still fails.
process.on("uncaughtException", (err) => {
  if (err && /terminating connection due to administrator command/.test(String(err.message))) {
    log(`  ignored a peer's connection cut by DROP DATABASE: ${err.message}`);
    return;
  }
  console.error(err);
  process.exit(1);
});

// Formatting for the report.
export const f = (x, d = 1) => (x == null || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
export const k = (x) => (x == null ? "–" : x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0));

export function target(name, value, limit, cmp, unit) {
  const met = value != null && !Number.isNaN(value) && (cmp === "<=" ? value <= limit : value >= limit);
  results.targets.push({ name, value, limit, cmp, unit, met });
}

// ---------------------------------------------------------------- side by side
/** Calls fn with k calls in flight for ms; calls per second. fn(i, j): call i, loop j. */
export async function inflight(fn, k, ms) {
  let done = 0;
  const end = Date.now() + ms;
  await Promise.all(Array.from({ length: k }, async (_, j) => { while (Date.now() < end) { await fn(done++, j); } }));
  return done / (ms / 1000);
}

// CPU time of the processes a contender uses, from /proc/<pid>/stat
// (utime + stime, the whole thread group): the daemon, and the PostgreSQL
// backends serving its database (found in pg_stat_activity; one that
// starts during a block counts whole). This process's is process.cpuUsage().
const CLK_TCK = (() => { try { return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" })) || 100; } catch { return 100; } })();
function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return null;
  }
}
let pgAdmin;
async function pgBackendsMs(db) {
  if (!pgAdmin) {
    pgAdmin = new pg.Client({ connectionString: ADMIN_URL });
    await pgAdmin.connect();
    cleanups.push(() => pgAdmin.end());
  }
  const { rows } = await pgAdmin.query("SELECT pid FROM pg_stat_activity WHERE datname = $1", [db]);
  return new Map(rows.map((r) => [r.pid, cpuMs(r.pid) ?? 0]));
}
/** procs: { daemon: pid, pgDb: database name }, either optional. */
async function cpuSnapshot(procs) {
  return { node: process.cpuUsage(), daemon: procs.daemon ? cpuMs(procs.daemon) : null, postgres: procs.pgDb ? await pgBackendsMs(procs.pgDb) : null };
}
/** CPU µs per call of each process between snapshot a and now. */
async function cpuPerCall(procs, a, calls) {
  const b = await cpuSnapshot(procs);
  const node = process.cpuUsage(a.node);
  let postgres = null;
  if (b.postgres) {
    postgres = 0;
    for (const [pid, t] of b.postgres) postgres += t - (a.postgres.get(pid) ?? 0);
  }
  const per = (ms) => (ms == null ? null : (ms * 1000) / calls);
  return { node: per((node.user + node.system) / 1000), daemon: per(a.daemon != null && b.daemon != null ? b.daemon - a.daemon : null), postgres: per(postgres) };
}

/**
 * Contenders side by side. Latency: their calls interleaved one by one,
 * so that noise (another tenant, GC, frequency changes) hits all of them
 * alike. Throughput: 64-in-flight blocks, alternating between contenders,
 * in several rounds, with the CPU time each process spent per call in the
 * block (a contender runs alone in its block; procs names its processes).
 * Medians of the rounds are reported. A contender with noTput is timed
 * for latency only (the raw socket round trip).
 */
export async function compare(contenders) {
  const acc = Object.fromEntries(contenders.map((c) => [c.name, { p50: [], p99: [], tput: [], cpu: [] }]));
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
      if (c.noTput) continue;
      const before = await cpuSnapshot(c.procs ?? {});
      const t = now();
      let calls = 0;
      acc[c.name].tput.push(await inflight((i, j) => { calls++; return c.fn(i, j); }, 64, Math.floor(N.ms / 2)));
      const wall = us(t);
      const cpu = await cpuPerCall(c.procs ?? {}, before, calls);
      cpu.cores = ((cpu.node ?? 0) + (cpu.daemon ?? 0) + (cpu.postgres ?? 0)) * calls / wall;
      acc[c.name].cpu.push(cpu);
    }
  }
  const out = {};
  for (const c of contenders) {
    const a = acc[c.name];
    const cpu = a.cpu.length ? Object.fromEntries(Object.keys(a.cpu[0]).map((k) => [k, a.cpu[0][k] == null ? null : median(a.cpu.map((x) => x[k]))])) : null;
    out[c.name] = { p50_us: median(a.p50), p99_us: median(a.p99), per_s_64: a.tput.length ? median(a.tput) : null, cpu_us_per_call_64: cpu, rounds_p50_us: a.p50 };
  }
  return out;
}

/** A raw HTTP/1.1 GET /healthz on one kept-open connection: the socket's round trip. */
export function rawClient(socketPath) {
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

/**
 * What a storaged call costs beyond the socket hop, the measure of issue
 * 18: (storaged p50 − direct p50) / raw round trip p50, round by round
 * (all three were interleaved), median of the rounds.
 */
export function overHop(storaged, direct, raw) {
  return median(storaged.rounds_p50_us.map((s, i) => (s - direct.rounds_p50_us[i]) / raw.rounds_p50_us[i]));
}
