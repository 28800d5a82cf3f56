// What every bench section shares: the sizes, the scratch directory, the
// daemon and database helpers, the statistics and the results.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
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

export const dbName = (url) => new URL(url).pathname.slice(1);

export async function dropDb(urlOrName) {
  const name = urlOrName.includes("/") ? dbName(urlOrName) : urlOrName;
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
}

// Formatting for the report.
export const f = (x, d = 1) => (x == null || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
export const k = (x) => (x == null ? "–" : x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0));

export function target(name, value, limit, cmp, unit) {
  const met = value != null && !Number.isNaN(value) && (cmp === "<=" ? value <= limit : value >= limit);
  results.targets.push({ name, value, limit, cmp, unit, met });
}
