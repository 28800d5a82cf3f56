// The cost of one call (issue 18): CPU time per call, in this process and
// in the daemon (and the PostgreSQL backends), for findById, create and
// update at 64 in flight. CPU time, not wall time, because the machine is
// shared: another tenant slows a call down but does not make it cost more.
//
// A/B: CLIENT_B (a client dist directory) and/or BIN_B (a daemon binary)
// add a second variant; the variants' blocks alternate, round by round,
// and the medians of the rounds are printed side by side.
//
//   node cost.mjs                      # memory and postgres, this tree's client and daemon
//   BACKENDS=memory OPS=findById ROUNDS=5 CLIENT_B=/tmp/dist-old node cost.mjs
//   PROFILE=/tmp/prof node cost.mjs    # also a pprof of each daemon during its blocks
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import http from "node:http";
import pg from "pg";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const env = process.env;
const BACKENDS = (env.BACKENDS ?? "memory,postgres").split(",");
const OPS = (env.OPS ?? "findById,create,update").split(",");
const CALLS = Number(env.CALLS ?? 20_000);
const INFLIGHT = Number(env.INFLIGHT ?? 64);
const ROUNDS = Number(env.ROUNDS ?? 3);
const ADMIN_URL = env.STORAGED_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
const PROFILE = env.PROFILE; // directory for daemon CPU profiles
const PROFILE_SECS = Number(env.PROFILE_SECS ?? 5);
const tmp = mkdtempSync(join(os.tmpdir(), "storaged-cost-"));

const variants = [{ name: "A", client: env.CLIENT_A ?? join(root, "clients/node/dist"), bin: env.BIN_A ?? join(root, "bin/storaged") }];
if (env.CLIENT_B || env.BIN_B) variants.push({ name: "B", client: env.CLIENT_B ?? variants[0].client, bin: env.BIN_B ?? variants[0].bin });
for (const v of variants) v.mod = await import(pathToFileURL(join(resolve(v.client), "index.js")).href);

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" })) || 100;
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
async function pgMs(db) {
  const { rows } = await admin.query("SELECT pid FROM pg_stat_activity WHERE datname = $1", [db]);
  const m = new Map();
  for (const r of rows) { try { m.set(r.pid, cpuMs(r.pid)); } catch { /* gone */ } }
  return m;
}

const stops = [];
async function daemon(bin, extra) {
  const socket = join(tmp, `d-${randomBytes(4).toString("hex")}.sock`);
  const child = spawn(bin, ["serve"], {
    env: { ...env, STORAGED_SOCKET: socket, STORAGED_LOG_LEVEL: "warn", STORAGED_STDIN_LIFELINE: "true", ...extra },
    stdio: ["pipe", "pipe", "inherit"],
  });
  await new Promise((res, rej) => {
    let out = "";
    child.stdout.on("data", (b) => { out += b; if (out.includes("serving on")) res(); });
    child.once("exit", (c) => rej(new Error(`storaged exited ${c}`)));
  });
  const stop = () => new Promise((r) => { if (child.exitCode !== null) return r(); child.once("exit", r); child.kill("SIGTERM"); });
  stops.push(stop);
  return { socket, pid: child.pid };
}

async function freshDb() {
  const name = `storaged_cost_${randomBytes(5).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${name}`);
  stops.push(() => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {}));
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  u.searchParams.set("pool_max_conns", "16");
  return { url: u.toString(), db: name };
}

/** Starts a CPU profile of the daemon for secs; resolves to the profile's bytes. */
function pprof(socket, secs) {
  return new Promise((res, rej) => {
    const req = http.request({ socketPath: socket, path: `/debug/pprof/profile?seconds=${secs}` }, (r) => {
      const parts = [];
      r.on("data", (d) => parts.push(d));
      r.on("end", () => res(Buffer.concat(parts)));
    });
    req.on("error", rej);
    req.end();
  });
}

const docFor = (i) => ({ name: `plan ${i}`, status: `s${i % 100}`, n: i, steps: ["a", "b"], owner: { team: `t${i % 10}` } });

async function block(fn, procs) {
  const n0 = process.cpuUsage();
  const d0 = cpuMs(procs.daemon);
  const p0 = procs.db ? await pgMs(procs.db) : null;
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(Array.from({ length: INFLIGHT }, async () => { while (next < CALLS) await fn(next++); }));
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const n = process.cpuUsage(n0);
  const d = cpuMs(procs.daemon) - d0;
  let p = null;
  if (p0) { p = 0; for (const [pid, t] of await pgMs(procs.db)) p += t - (p0.get(pid) ?? 0); }
  return { node: (n.user + n.system) / CALLS, daemon: (d * 1000) / CALLS, postgres: p == null ? null : (p * 1000) / CALLS, per_s: CALLS / wall };
}

const median = (xs) => { const s = xs.filter((x) => x != null).sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : null; };
const out = {};
for (const backend of BACKENDS) {
  const setups = [];
  for (const v of variants) {
    const extra = { JOBQUEUE_BACKEND: "memory", REPOSITORY_BACKEND: backend };
    let db;
    if (backend === "postgres") { const f = await freshDb(); extra.POSTGRESQL_URL = f.url; db = f.db; }
    const d = await daemon(v.bin, extra);
    const repo = new v.mod.SocketRepositoryBackend({ socketPath: d.socket });
    await repo.connect();
    const plans = repo.repository("bench");
    const ids = [];
    for (let i = 0; i < 2000; i++) ids.push((await plans.create(docFor(i))).id);
    const fns = {
      findById: (i) => plans.findById(ids[i % 2000]),
      create: (i) => plans.create(docFor(i)),
      update: (i) => plans.update(ids[i % 2000], { n: i }),
    };
    // Warm up: JIT, connections, the daemon's pools.
    for (const op of OPS) { let i = 0; await Promise.all(Array.from({ length: INFLIGHT }, async () => { while (i < 3000) await fns[op](i++); })); }
    setups.push({ v, d, db, repo, fns });
  }
  out[backend] = {};
  for (const op of OPS) {
    const acc = Object.fromEntries(setups.map((s) => [s.v.name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of setups) {
        const res = await block(s.fns[op], { daemon: s.d.pid, db: s.db });
        acc[s.v.name].push(res);
        console.error(`# ${backend} ${op} ${s.v.name} round ${r}: node ${res.node.toFixed(1)} daemon ${res.daemon.toFixed(1)} pg ${res.postgres?.toFixed(1) ?? "–"} µs/call, ${res.per_s.toFixed(0)}/s`);
      }
    }
    // Profiles: the daemon's (pprof) over PROFILE_SECS of calls.
    if (PROFILE) {
      for (const s of setups) {
        let done = false;
        const prof = pprof(s.d.socket, PROFILE_SECS).finally(() => { done = true; });
        let i = 0;
        await Promise.all(Array.from({ length: INFLIGHT }, async () => { while (!done) await s.fns[op](i++); }));
        writeFileSync(join(PROFILE, `daemon-${backend}-${op}-${s.v.name}.pprof`), await prof);
      }
    }
    out[backend][op] = Object.fromEntries(Object.entries(acc).map(([k, rs]) => [k, Object.fromEntries(["node", "daemon", "postgres", "per_s"].map((f) => [f, median(rs.map((x) => x[f]))]))]));
  }
  for (const s of setups) await s.repo.disconnect();
}
for (const stop of stops.reverse()) await stop();
await admin.end();

const f1 = (x) => (x == null ? "–" : x.toFixed(1));
console.log(`CPU µs per call, ${CALLS} calls at ${INFLIGHT} in flight, median of ${ROUNDS} rounds`);
console.log("| backend | op | variant | node | daemon | postgres | calls/s |\n|---|---|---|---|---|---|---|");
for (const [b, ops] of Object.entries(out)) for (const [op, vs] of Object.entries(ops)) for (const [v, x] of Object.entries(vs)) {
  console.log(`| ${b} | ${op} | ${v} | ${f1(x.node)} | ${f1(x.daemon)} | ${f1(x.postgres)} | ${x.per_s.toFixed(0)} |`);
}
