// The job queue beside the queues a Node user would pick instead
// (issue 14): enqueue and drain rates, the CPU time each process spends on
// them, drain rate on a deep queue, and enqueue → start latency.
//
// Peers run at their best documented throughput settings (see PEERS); a
// comparison with a weakened peer is not a comparison. storaged runs with
// what a user gets by default: queue.work(handler, { concurrency: 16 }).
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import pg from "pg";
import { run as runGraphile, makeWorkerUtils, Logger as GraphileLogger } from "graphile-worker";
import { PgBoss } from "pg-boss";
import { Queue as BullQueue, Worker as BullWorker } from "bullmq";
import IORedis from "ioredis";
import { SocketJobQueueBackend } from "../../clients/node/dist/index.js";
import {
  N, ADMIN_URL, REDIS_URL, here, tmp, cleanups, results, log, median, pct, now, us, sleep,
  daemon, freshDb, dbName, dropDb, f, k, target,
} from "./harness.mjs";

/** Handlers run at once per worker: storaged, graphile-worker and BullMQ alike. */
const CONCURRENCY = 16;
/** Jobs per enqueue call, for every contender: a chunk a user would send (storaged takes up to 10 000). */
const ENQUEUE_BATCH = 1000;
/** Jobs per enqueueMany call when filling the deep queue: storaged's largest. */
const FILL_BATCH = 10_000;

const manifest = (pkg) => JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"), "utf8"));
const version = (pkg) => manifest(pkg).version;
/** The Node versions a package declares; pg-boss 12 and graphile-worker 0.18 say 22+, and run here on 20 all the same. */
const engines = (pkg) => manifest(pkg).engines?.node ?? "any";

/**
 * The peers' settings, each from the peer's own documentation, and where
 * the documentation leaves a number open, the fastest in peers-sweep.mjs:
 * - graphile-worker: the configuration of its performance page
 *   (https://worker.graphile.org/docs/performance: localQueue { size: 500 },
 *   completeJobBatchDelay 0, failJobBatchDelay 0; 0 turns batching on, -1,
 *   the default, leaves it off); maxPoolSize max(10, concurrentJobs + 2) as
 *   its option docs advise. (A local queue of 1000 drains no faster here; a
 *   delay of 250 ms, which the option docs suggest starting from, no faster
 *   either.)
 * - pg-boss: work() with batchSize (jobs per fetch and per completion
 *   statement), localConcurrency (fetch loops) and burstWhenBatchFull (fetch
 *   again at once while batches come back full; without it each fetch waits
 *   pollingIntervalSeconds, 0.5 s at least, and the drain runs at ~0.8k/s);
 *   https://pgboss.io/api/workers. batchSize 1000 with localConcurrency 2
 *   was the fastest here (as fast as 2000 × 2; 100 × 4 drains at half the
 *   rate, 1000 × 4 a little slower).
 * - BullMQ: one Worker with the same concurrency as storaged
 *   (https://docs.bullmq.io/guide/workers/concurrency; it fetches the next
 *   job in the script that completes one), and completed jobs removed at
 *   once (removeOnComplete { count: 0 },
 *   https://docs.bullmq.io/guide/workers/auto-removal-of-jobs), a little
 *   faster than keeping them, which storaged does (for
 *   STORAGED_RETENTION_COMPLETED, 24 h).
 */
export const PEERS = {
  graphile: {
    name: `graphile-worker ${version("graphile-worker")}`,
    engines: engines("graphile-worker"),
    settings: `concurrency ${CONCURRENCY}, localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0, maxPoolSize ${CONCURRENCY + 2}`,
    worker: { concurrentJobs: CONCURRENCY, maxPoolSize: CONCURRENCY + 2, localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
  },
  pgboss: {
    name: `pg-boss ${version("pg-boss")}`,
    engines: engines("pg-boss"),
    settings: "work({ batchSize: 1000, localConcurrency: 2, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 })",
    work: { batchSize: 1000, localConcurrency: 2, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 },
  },
  bullmq: {
    name: `BullMQ ${version("bullmq")}`,
    engines: engines("bullmq"),
    settings: `one Worker, concurrency ${CONCURRENCY}, removeOnComplete { count: 0 }`,
    worker: { removeOnComplete: { count: 0 } },
  },
};

// ---------------------------------------------------------------- CPU time
// Per process, from /proc/<pid>/stat (utime + stime, the whole thread
// group): the storaged daemon, this node process (which runs the client
// and the in-process peers), the PostgreSQL backends serving the bench's
// database (found in pg_stat_activity: a backend that starts during a
// window counts whole, one that ends during it is missed), and the Redis
// server (shared with other tenants of this machine: an upper bound).

const CLK_TCK = (() => { try { return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" })) || 100; } catch { return 100; } })();

function ticks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]); // utime, stime
  } catch {
    return null;
  }
}

let pgAdmin;
async function pgBackends(db) {
  if (!pgAdmin) {
    pgAdmin = new pg.Client({ connectionString: ADMIN_URL });
    await pgAdmin.connect();
    cleanups.push(() => pgAdmin.end());
  }
  const { rows } = await pgAdmin.query("SELECT pid FROM pg_stat_activity WHERE datname = $1", [db]);
  return new Map(rows.map((r) => [r.pid, ticks(r.pid) ?? 0]));
}

let redisPid;
async function redisServerPid() {
  if (redisPid === undefined) {
    const r = new IORedis(REDIS_URL);
    const m = /process_id:(\d+)/.exec(await r.info("server"));
    r.disconnect();
    redisPid = m && ticks(Number(m[1])) !== null ? Number(m[1]) : null;
  }
  return redisPid;
}

/** procs: { daemon: pid, pgDb: database name, redis: true } as the contender uses them. */
async function cpuSnapshot(procs) {
  return {
    node: process.cpuUsage(),
    daemon: procs.daemon ? ticks(procs.daemon) : null,
    postgres: procs.pgDb ? await pgBackends(procs.pgDb) : null,
    redis: procs.redis && (await redisServerPid()) ? ticks(redisPid) : null,
  };
}

function cpuSpent(a, b) {
  const ms = (t) => (t * 1000) / CLK_TCK;
  let postgres = null;
  if (b.postgres) {
    postgres = 0;
    for (const [pid, t] of b.postgres) postgres += t - (a.postgres.get(pid) ?? 0);
    postgres = ms(postgres);
  }
  const node = process.cpuUsage(a.node);
  return {
    node: (node.user + node.system) / 1000,
    daemon: a.daemon !== null && b.daemon !== null ? ms(b.daemon - a.daemon) : null,
    postgres,
    redis: a.redis !== null && b.redis !== null ? ms(b.redis - a.redis) : null,
  };
}

/** Runs fn; its wall-clock seconds and the CPU milliseconds each process spent meanwhile. */
async function metered(procs, fn) {
  const before = await cpuSnapshot(procs);
  const t = now();
  await fn();
  const secs = us(t) / 1e6;
  const cpu = cpuSpent(before, await cpuSnapshot(procs));
  return { secs, cpu };
}

const PROCS = ["node", "daemon", "postgres", "redis"];
/** CPU µs per job, process by process, and in all. */
function perJob(cpu, jobs) {
  const out = {};
  let total = 0;
  for (const p of PROCS) {
    out[p] = cpu[p] == null ? null : (cpu[p] * 1000) / jobs;
    total += out[p] ?? 0;
  }
  out.total = total;
  return out;
}

// ---------------------------------------------------------------- stores
// A fresh, empty store for one daemon, and how to throw it away.

async function redisDrop(pattern) {
  const r = new IORedis(REDIS_URL);
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 5000);
    if (keys.length) await r.unlink(...keys);
    cursor = next;
  } while (cursor !== "0");
  r.disconnect();
}

const STORES = {
  memory: async () => ({ env: { JOBQUEUE_BACKEND: "memory" }, procs: {}, drop: async () => {} }),
  sqlite: async () => {
    const path = join(tmp, `q-${randomBytes(4).toString("hex")}.db`);
    return {
      env: { JOBQUEUE_BACKEND: "sqlite", JOBQUEUE_CONNECTION_STRING: path },
      procs: {},
      drop: async () => { for (const s of ["", "-wal", "-shm"]) rmSync(path + s, { force: true }); },
    };
  },
  postgres: async () => {
    const url = await freshDb();
    return { env: { JOBQUEUE_BACKEND: "postgres", POSTGRESQL_URL: url }, procs: { pgDb: dbName(url) }, drop: () => dropDb(url) };
  },
  redis: async () => {
    const prefix = `storaged-bench-${process.pid}-${randomBytes(3).toString("hex")}`;
    return {
      env: { JOBQUEUE_BACKEND: "redis", REDIS_URL, STORAGED_REDIS_PREFIX: prefix },
      procs: { redis: true },
      drop: () => redisDrop(`${prefix}:*`),
    };
  },
};

/** A daemon on a fresh store of the backend, and a client on its queue. */
async function queueDaemon(backend, queue = "bench", env = {}) {
  const store = await STORES[backend]();
  const d = await daemon({ REPOSITORY_BACKEND: "memory", ...store.env, ...env });
  const client = new SocketJobQueueBackend({ socketPath: d.socket });
  await client.connect();
  return {
    q: client.queue(queue),
    procs: { ...store.procs, daemon: d.pid },
    close: async () => { await client.disconnect(); await d.stop(); await store.drop(); },
  };
}

// ---------------------------------------------------------------- enqueue and drain
// One run of a contender: it enqueues N.drain no-op jobs in calls of
// ENQUEUE_BATCH into an empty queue (timed: the enqueueMany figure), then
// one worker drains them. The drain is timed from the first handler call
// (so that a worker's start-up, a pool to open or a schema to check, is
// not counted against it) until the store has recorded the last completion
// (polled only once the last handler has run). CPU time covers it all.

const jobsFrom = (i, n, make) => Array.from({ length: Math.min(n, N.drain - i) }, (_, j) => make(i + j));

async function timedEnqueue(procs, addBatch) {
  return metered(procs, async () => {
    for (let i = 0; i < N.drain; i += ENQUEUE_BATCH) await addBatch(i);
  });
}

/** start(handle) starts a worker that calls handle() once per job and resolves to its stop function. */
async function timedDrain(procs, start, recorded) {
  let seen = 0, first, lastRan;
  const ran = new Promise((r) => (lastRan = r));
  const handle = () => {
    first ??= now();
    if (++seen === N.drain) lastRan();
  };
  let stop, secs;
  const { secs: wall, cpu } = await metered(procs, async () => {
    stop = await start(handle);
    await ran;
    while (!(await recorded())) await sleep(2);
    secs = us(first) / 1e6;
  });
  await stop();
  return { secs, wall, cpu };
}

/**
 * env is the daemon's extra environment: STORAGED_RETENTION_COMPLETED "0"
 * deletes each job at its ack, as graphile-worker and BullMQ
 * (removeOnComplete) do; the drain then ends when no job is left.
 */
export async function runStoraged(backend, workOptions = {}, env = {}) {
  const s = await queueDaemon(backend, "drain", env);
  const dropped = env.STORAGED_RETENTION_COMPLETED === "0";
  const enqueue = await timedEnqueue(s.procs, (i) => s.q.enqueueMany(jobsFrom(i, ENQUEUE_BATCH, (n) => ({ data: { i: n } }))));
  const drain = await timedDrain(
    s.procs,
    (handle) => { const w = s.q.work(async () => handle(), { concurrency: CONCURRENCY, ...workOptions }); return () => w.stop(); },
    async () => {
      const st = await s.q.stats();
      return dropped ? st.pending + st.processing === 0 : st.completed >= N.drain;
    },
  );
  await s.close();
  return { enqueue, drain };
}

function quietGraphileLogger() {
  return new GraphileLogger(() => (level, message) => { if (level === "error") console.error(message); });
}

export async function runGraphileWorker(settings = PEERS.graphile.worker) {
  const url = await freshDb();
  const procs = { pgDb: dbName(url) };
  const utils = await makeWorkerUtils({ connectionString: url, logger: quietGraphileLogger() });
  await utils.migrate();
  const enqueue = await timedEnqueue(procs, (i) => utils.addJobs(jobsFrom(i, ENQUEUE_BATCH, (n) => ({ identifier: "noop", payload: { i: n } }))));
  await utils.release();
  const observer = new pg.Client({ connectionString: url });
  await observer.connect();
  const drain = await timedDrain(
    procs,
    async (handle) => {
      const runner = await runGraphile({
        noHandleSignals: true, logger: quietGraphileLogger(),
        taskList: { noop: async () => handle() },
        preset: { worker: { connectionString: url, ...settings } },
      });
      return () => runner.stop();
    },
    // Completed jobs are deleted.
    async () => (await observer.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs")).rows[0].n === 0,
  );
  await observer.end();
  await dropDb(url);
  return { enqueue, drain };
}

export async function runPgBoss(work = PEERS.pgboss.work) {
  const url = await freshDb();
  const procs = { pgDb: dbName(url) };
  const boss = new PgBoss({ connectionString: url });
  boss.on("error", (e) => console.error(e));
  await boss.start();
  await boss.createQueue("noop");
  const enqueue = await timedEnqueue(procs, (i) => boss.insert("noop", jobsFrom(i, ENQUEUE_BATCH, (n) => ({ data: { i: n } }))));
  const observer = new pg.Client({ connectionString: url });
  await observer.connect();
  const drain = await timedDrain(
    procs,
    async (handle) => {
      await boss.work("noop", work, async (jobs) => { for (const _ of jobs) handle(); });
      return () => boss.offWork("noop", { wait: true });
    },
    async () => (await observer.query("SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'noop' AND state = 'completed'")).rows[0].n >= N.drain,
  );
  await observer.end();
  await boss.stop({ graceful: true, timeout: 5000 });
  await dropDb(url);
  return { enqueue, drain };
}

export async function runBullMQ(settings = PEERS.bullmq.worker) {
  const redis = () => new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  const prefix = `storaged-bench-bull-${process.pid}-${randomBytes(3).toString("hex")}`;
  const queueConn = redis(), workerConn = redis();
  const queue = new BullQueue("noop", { connection: queueConn, prefix });
  const procs = { redis: true };
  const enqueue = await timedEnqueue(procs, (i) => queue.addBulk(jobsFrom(i, ENQUEUE_BATCH, (n) => ({ name: "noop", data: { i: n } }))));
  // A job is recorded complete when its worker says so: "completed" is
  // emitted once the script that moves it to the completed set has run.
  let completed = 0;
  const drain = await timedDrain(
    procs,
    (handle) => {
      const worker = new BullWorker("noop", async () => handle(), { connection: workerConn, prefix, concurrency: CONCURRENCY, ...settings });
      worker.on("completed", () => completed++);
      return () => worker.close();
    },
    async () => completed >= N.drain,
  );
  await queue.obliterate({ force: true });
  await queue.close();
  queueConn.disconnect();
  workerConn.disconnect();
  return { enqueue, drain };
}

/**
 * The contenders, in the order of each round: the PostgreSQL peers
 * alternate with storaged on PostgreSQL, BullMQ with storaged on Redis,
 * so that the machine's noise hits each pair alike. storaged runs with its
 * defaults: the worker sizes its prefetch from the handler rate and the
 * round trip (at most its default prefetch of 3 000 claims waiting), so
 * there is no setting left to tune here.
 */
const RETENTION_0 = { STORAGED_RETENTION_COMPLETED: "0" };

const CONTENDERS = [
  { ...PEERS.graphile, backend: "postgres", peer: true, enqueueCall: "addJobs", run: () => runGraphileWorker() },
  { name: "storaged postgres", backend: "postgres", enqueueCall: "enqueueMany", run: () => runStoraged("postgres") },
  // graphile-worker deletes a job when it completes and BullMQ is run with
  // removeOnComplete: the like-for-like storaged runs do the same.
  { name: "storaged postgres, retention 0", backend: "postgres", extra: true, run: () => runStoraged("postgres", {}, RETENTION_0) },
  { ...PEERS.pgboss, backend: "postgres", peer: true, enqueueCall: "insert", run: () => runPgBoss() },
  { name: "storaged memory", backend: "memory", enqueueCall: "enqueueMany", run: () => runStoraged("memory") },
  { name: "storaged sqlite", backend: "sqlite", enqueueCall: "enqueueMany", run: () => runStoraged("sqlite") },
  { ...PEERS.bullmq, backend: "redis", peer: true, enqueueCall: "addBulk", run: () => runBullMQ() },
  { name: "storaged redis", backend: "redis", enqueueCall: "enqueueMany", run: () => runStoraged("redis") },
  { name: "storaged redis, retention 0", backend: "redis", extra: true, run: () => runStoraged("redis", {}, RETENTION_0) },
];

function medianCpu(runs, jobs) {
  const per = runs.map((m) => perJob(m.cpu, jobs));
  const out = {};
  for (const p of [...PROCS, "total"]) {
    const xs = per.map((x) => x[p]).filter((x) => x != null);
    out[p] = xs.length ? median(xs) : null;
  }
  // How much of the machine the contender kept busy (2 cores = 2.0).
  out.cores = median(runs.map((m) => Object.values(m.cpu).reduce((a, b) => a + (b ?? 0), 0) / ((m.wall ?? m.secs) * 1000)));
  return out;
}

// ---------------------------------------------------------------- SQS, on an emulator
// The SQS job store against moto (the AWS emulator the tests use): a row
// that shows the store works end to end and what one worker costs, not a
// measure of Amazon SQS, whose latency and limits are nothing like a local
// Python process's. moto slows down with the depth of a queue (a receive
// scans every message), hence a small run.

const SQS_JOBS = 200;

async function startMoto() {
  const port = await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
  const url = `http://127.0.0.1:${port}`;
  // moto behind one lock, as the tests run it (internal/testutil/moto_serialized.py):
  // plain moto_server can deliver a message twice or bring back a deleted one.
  const script = join(here, "..", "..", "internal", "testutil", "moto_serialized.py");
  const child = spawn("python3", [script, "-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  const failed = new Promise((_, reject) => child.once("error", reject));
  const stop = () => new Promise((r) => { if (child.exitCode !== null || child.signalCode !== null) return r(); child.once("exit", r); child.kill("SIGKILL"); });
  cleanups.push(stop);
  for (let i = 0; i < 300; i++) {
    const up = await Promise.race([failed, fetch(`${url}/moto-api/`).then(() => true, () => false)]);
    if (up) return { url, stop };
    await sleep(100);
  }
  stop();
  throw new Error(`moto (python3 moto_serialized.py) did not answer on ${url}`);
}

function motoVersion() {
  try {
    return execFileSync("python3", ["-c", "import moto; print(moto.__version__)"], { encoding: "utf8" }).trim();
  } catch {
    return "?";
  }
}

export async function runStoragedSqsEmulator() {
  const moto = await startMoto();
  const d = await daemon({
    REPOSITORY_BACKEND: "memory", JOBQUEUE_BACKEND: "sqs", SQS_ENDPOINT: moto.url, SQS_REGION: "us-east-1",
    SQS_QUEUE_PREFIX: `bench${randomBytes(3).toString("hex")}-`, SQS_POLL_INTERVAL: "100ms",
    AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test",
  });
  const client = new SocketJobQueueBackend({ socketPath: d.socket });
  await client.connect();
  const q = client.queue("drain");
  const procs = { daemon: d.pid };
  const enqueue = await metered(procs, async () => {
    for (let i = 0; i < SQS_JOBS; i += 100) await q.enqueueMany(Array.from({ length: 100 }, (_, j) => ({ data: { i: i + j } })));
  });
  // SQS keeps no completed jobs to count: the drain ends when the handler
  // has seen every job and stop() has sent every acknowledgement.
  let seen = 0, first, lastRan;
  const ran = new Promise((r) => (lastRan = r));
  let secs;
  const drain = await metered(procs, async () => {
    const w = q.work(async () => { first ??= now(); if (++seen === SQS_JOBS) lastRan(); }, { concurrency: CONCURRENCY });
    await ran;
    await w.stop();
    secs = us(first) / 1e6;
  });
  await client.disconnect();
  await d.stop();
  moto.stop();
  return { enqueue, drain: { ...drain, secs } };
}

export async function queues() {
  log(`Queues: enqueue and drain ${N.drain} no-op jobs, ${N.queueRounds} round(s)`);
  const runs = Object.fromEntries(CONTENDERS.map((c) => [c.name, []]));
  for (let r = 0; r < N.queueRounds; r++) {
    for (const c of CONTENDERS) {
      const x = await c.run();
      runs[c.name].push(x);
      log(`  ${c.name}: enqueue ${Math.round(N.drain / x.enqueue.secs)}/s, drain ${Math.round(N.drain / x.drain.secs)}/s`);
    }
  }
  const out = { jobs: N.drain, enqueue_batch: ENQUEUE_BATCH, concurrency: CONCURRENCY, rounds: N.queueRounds, contenders: {} };
  for (const c of CONTENDERS) {
    const xs = runs[c.name];
    out.contenders[c.name] = {
      backend: c.backend, peer: !!c.peer, extra: !!c.extra, settings: c.settings ?? null, engines: c.engines ?? null, enqueue_call: c.enqueueCall ?? null,
      enqueue_per_s: median(xs.map((x) => N.drain / x.enqueue.secs)),
      drain_per_s: median(xs.map((x) => N.drain / x.drain.secs)),
      enqueue_cpu_us_per_job: medianCpu(xs.map((x) => x.enqueue), N.drain),
      drain_cpu_us_per_job: medianCpu(xs.map((x) => x.drain), N.drain),
      runs: xs.map((x) => ({ enqueue_s: x.enqueue.secs, enqueue_cpu_ms: x.enqueue.cpu, drain_s: x.drain.secs, drain_wall_s: x.drain.wall, drain_cpu_ms: x.drain.cpu })),
    };
  }
  try {
    const x = await runStoragedSqsEmulator();
    out.sqs_emulator = { server: `moto ${motoVersion()} (emulator)`, jobs: SQS_JOBS, enqueue_per_s: SQS_JOBS / x.enqueue.secs, drain_per_s: SQS_JOBS / x.drain.secs };
    log(`  storaged sqs on ${out.sqs_emulator.server}, ${SQS_JOBS} jobs: enqueue ${Math.round(out.sqs_emulator.enqueue_per_s)}/s, drain ${Math.round(out.sqs_emulator.drain_per_s)}/s (an emulator: says nothing of AWS)`);
  } catch (err) {
    out.sqs_emulator = { error: String(err) };
    log(`  storaged sqs on moto: not run (${err})`);
  }
  results.sections.queues = out;
}

// ---------------------------------------------------------------- deep queue
// The drain rate with N.deep.shallow and with N.deep.deep jobs pending, on
// a daemon each, measured in alternating windows: a worker like the one
// above starts, works off N.deep.window jobs and stops (which sends every
// outcome and hands back its prefetched claims); then as many jobs are
// enqueued again so that the depth stays put.

async function fill(q, n, from = 0) {
  for (let i = 0; i < n; i += FILL_BATCH) {
    await q.enqueueMany(Array.from({ length: Math.min(FILL_BATCH, n - i) }, (_, j) => ({ data: { i: from + i + j } })));
  }
}

/** Timed like the drain: from the first handler call until stop() has sent every outcome. */
async function drainWindow(s) {
  let seen = 0, first, enough;
  const reached = new Promise((r) => (enough = r));
  let secs;
  const { secs: wall, cpu } = await metered(s.procs, async () => {
    const w = s.q.work(async () => {
      first ??= now();
      if (++seen === N.deep.window) enough();
    }, { concurrency: CONCURRENCY });
    await reached;
    await w.stop();
    secs = us(first) / 1e6;
  });
  return { jobs: seen, secs, wall, cpu };
}

export async function deepQueue() {
  const { shallow: S, deep: D, window: W, rounds } = N.deep;
  log(`Deep queue: drain rate with ${S} and with ${D} jobs pending (windows of ${W} jobs, ${rounds} rounds)`);
  const out = { shallow_pending: S, deep_pending: D, window: W, rounds, backends: {} };
  // DEEP_BACKENDS=memory,... runs some backends only (a probe of one).
  for (const backend of (process.env.DEEP_BACKENDS ?? "postgres,sqlite,redis,memory").split(",")) {
    const shallow = await queueDaemon(backend);
    const deep = await queueDaemon(backend);
    await fill(shallow.q, S);
    const t = now();
    await fill(deep.q, D);
    const fillSecs = us(t) / 1e6;
    log(`  ${backend}: ${D} jobs enqueued in ${fillSecs.toFixed(1)} s (${Math.round(D / fillSecs)}/s in calls of ${FILL_BATCH})`);
    const acc = { shallow: [], deep: [] };
    for (let r = 0; r < rounds; r++) {
      for (const [name, s] of [["shallow", shallow], ["deep", deep]]) {
        const x = await drainWindow(s);
        acc[name].push(x);
        await fill(s.q, x.jobs);
      }
    }
    const rate = (xs) => median(xs.map((x) => x.jobs / x.secs));
    const b = {
      fill_per_s: D / fillSecs,
      shallow_per_s: rate(acc.shallow),
      deep_per_s: rate(acc.deep),
      shallow_cpu_us_per_job: medianCpu(acc.shallow, W),
      deep_cpu_us_per_job: medianCpu(acc.deep, W),
    };
    b.ratio = b.deep_per_s / b.shallow_per_s;
    log(`  ${backend}: shallow ${Math.round(b.shallow_per_s)}/s, deep ${Math.round(b.deep_per_s)}/s (${b.ratio.toFixed(2)}×)`);
    out.backends[backend] = b;
    await shallow.close();
    await deep.close();
  }
  results.sections.deepQueue = out;
}

// ---------------------------------------------------------------- latency
export async function latencyAll() {
  // memory needs its own daemon; the postgres pair shares one database.
  log("Enqueue → start latency with a long-polling worker");
  const out = {};
  const mem = await daemon({ REPOSITORY_BACKEND: "memory", JOBQUEUE_BACKEND: "memory" });
  const url = await freshDb();
  const env = { REPOSITORY_BACKEND: "memory", JOBQUEUE_BACKEND: "postgres", POSTGRESQL_URL: url };
  const a = await daemon(env);
  const b = await daemon(env);
  for (const [name, p, w] of [["memory, one daemon", mem, mem], ["postgres, one daemon", a, a], ["postgres, enqueue on A, work on B", a, b]]) {
    out[name] = await measure(p.socket, w.socket);
  }
  results.sections.latency = out;
  async function measure(prodSock, workSock) {
    const prod = new SocketJobQueueBackend({ socketPath: prodSock });
    const work = new SocketJobQueueBackend({ socketPath: workSock });
    await prod.connect(); await work.connect();
    const qn = `lat_${randomBytes(3).toString("hex")}`;
    let started = () => {};
    // The default worker: it long-polls dequeueMany (waitMs 30 s).
    const w = work.queue(qn).work(async () => started(), { concurrency: 1 });
    await sleep(300);
    const pq = prod.queue(qn);
    const lats = [];
    for (let i = 0; i < N.lat; i++) {
      const p = new Promise((r) => (started = r));
      const t = performance.now();
      await pq.enqueue({ i });
      await p;
      lats.push(performance.now() - t);
      await sleep(3);
    }
    await w.stop();
    await prod.disconnect(); await work.disconnect();
    return { p50_ms: pct(lats, 50), p99_ms: pct(lats, 99) };
  }
}

// ---------------------------------------------------------------- report
const cpuCells = (c) => `${f(c.node, 0)} | ${f(c.daemon, 0)} | ${f(c.postgres, 0)} | ${f(c.redis, 0)} | ${f(c.total, 0)} | ${f(c.cores, 2)}`;

export function queueReport(md) {
  const r = results.sections;
  if (r.queues) {
    const Q = r.queues, C = Q.contenders;
    const rate = (name, what) => C[name]?.[what];
    const peerRows = Object.entries(C).filter(([, x]) => x.peer);
    md.push(`## Queue drain (${Q.jobs} no-op jobs, median of ${Q.rounds} round(s))`, "",
      `storaged: \`queue.work(handler, { concurrency: ${Q.concurrency} })\`, default prefetch (adaptive: about two round trips of handler work, at most 3 000 claims waiting, in dequeues of up to 1 000). Peers at their best documented throughput settings:`, "");
    for (const [name, x] of peerRows) md.push(`- ${name}: ${x.settings} (declares node ${x.engines}; runs here on ${process.version})`);
    md.push("", "| contender | backend | jobs/s | ×storaged memory |", "|---|---|---|---|");
    const mem = rate("storaged memory", "drain_per_s");
    for (const [name, x] of Object.entries(C)) md.push(`| ${name} | ${x.backend} | ${k(x.drain_per_s)} | ${f(x.drain_per_s / mem, 2)} |`);
    const E = Q.sqs_emulator;
    if (E?.drain_per_s) md.push(`| storaged sqs — EMULATOR, ${E.jobs} jobs | sqs on ${E.server} | ${k(E.drain_per_s)} | not comparable |`);
    md.push("");
    if (E?.drain_per_s) md.push(`The SQS row runs against ${E.server} on this machine, ${E.jobs} jobs only (moto slows down with the depth of a queue): it shows the store working end to end; an emulator's speed says nothing of Amazon SQS's.`, "");
    else if (E?.error) md.push(`SQS row not run: ${E.error}`, "");

    md.push("### CPU time per drained job (µs; median of the rounds)", "",
      "node: this process (client, or the peer's worker, in process); daemon: storaged; postgres: the backends serving the run's database; redis: the server (shared with other tenants: an upper bound). cores: CPU time / wall time (this machine has 2).", "",
      "| contender | node | daemon | postgres | redis | total | cores |", "|---|---|---|---|---|---|---|");
    for (const [name, x] of Object.entries(C)) md.push(`| ${name} | ${cpuCells(x.drain_cpu_us_per_job)} |`);
    md.push("");

    md.push(`## enqueueMany (${Q.jobs} jobs in calls of ${Q.enqueue_batch}, into an empty queue)`, "",
      `Every contender sends the same calls of ${Q.enqueue_batch} jobs, a chunk a user would send (storaged takes up to 10 000 a call; the deep-queue fill below uses that).`, "",
      "| contender | call | backend | jobs/s | CPU µs/job (node / daemon / postgres / redis) |", "|---|---|---|---|---|");
    for (const [name, x] of Object.entries(C)) {
      if (x.extra) continue;
      const c = x.enqueue_cpu_us_per_job;
      md.push(`| ${name} | ${x.enqueue_call} | ${x.backend} | ${k(x.enqueue_per_s)} | ${f(c.node, 0)} / ${f(c.daemon, 0)} / ${f(c.postgres, 0)} / ${f(c.redis, 0)} |`);
    }
    md.push("");

    const gw = C[PEERS.graphile.name], boss = C[PEERS.pgboss.name], bull = C[PEERS.bullmq.name];
    const spg = C["storaged postgres"], sredis = C["storaged redis"];
    const spg0 = C["storaged postgres, retention 0"], sredis0 = C["storaged redis, retention 0"];
    const fasterPg = Math.max(gw.drain_per_s, boss.drain_per_s);
    md.push(`storaged postgres / faster of graphile-worker and pg-boss: ${f(spg.drain_per_s / fasterPg, 2)}× kept (storaged's default: completed jobs kept 24 h, as pg-boss keeps them), ${f(spg0.drain_per_s / fasterPg, 2)}× with retention 0 (deleted at ack, as graphile-worker deletes them) · storaged redis / BullMQ (removeOnComplete): ${f(sredis.drain_per_s / bull.drain_per_s, 2)}× kept, ${f(sredis0.drain_per_s / bull.drain_per_s, 2)}× with retention 0`, "");
    target("PostgreSQL drain, retention 0 / faster of graphile-worker, pg-boss", spg0.drain_per_s / fasterPg, 1.5, ">=", "×");
    target("PostgreSQL drain, jobs kept / faster of graphile-worker, pg-boss", spg.drain_per_s / fasterPg, 1.5, ">=", "×");
    target("Redis drain, retention 0 / BullMQ (removeOnComplete)", sredis0.drain_per_s / bull.drain_per_s, 1.5, ">=", "×");
    target("Redis drain, jobs kept / BullMQ (removeOnComplete)", sredis.drain_per_s / bull.drain_per_s, 1.5, ">=", "×");
    target("SQLite drain", C["storaged sqlite"].drain_per_s, 20000, ">=", "/s");
    target("memory drain", C["storaged memory"].drain_per_s, 80000, ">=", "/s");
    target("PostgreSQL enqueueMany / graphile-worker addJobs", spg.enqueue_per_s / gw.enqueue_per_s, 1.5, ">=", "×");
    target("PostgreSQL enqueueMany / pg-boss insert", spg.enqueue_per_s / boss.enqueue_per_s, 1.5, ">=", "×");
    target("Redis enqueueMany / BullMQ addBulk", sredis.enqueue_per_s / bull.enqueue_per_s, 1.5, ">=", "×");
  }
  if (r.deepQueue) {
    const D = r.deepQueue;
    md.push(`## Deep queue (drain rate with ${D.shallow_pending} and with ${D.deep_pending} jobs pending; windows of ${D.window} jobs, median of ${D.rounds})`, "",
      `Same worker as the drain. The deep queue is filled with enqueueMany in calls of ${FILL_BATCH}.`, "",
      "| backend | fill jobs/s | shallow jobs/s | deep jobs/s | deep / shallow | CPU µs/job shallow (daemon / db) | deep (daemon / db) |", "|---|---|---|---|---|---|---|");
    for (const [b, x] of Object.entries(D.backends)) {
      const db = (c) => c.postgres ?? c.redis;
      md.push(`| ${b} | ${k(x.fill_per_s)} | ${k(x.shallow_per_s)} | ${k(x.deep_per_s)} | ${f(x.ratio, 2)} | ${f(x.shallow_cpu_us_per_job.daemon, 0)} / ${f(db(x.shallow_cpu_us_per_job), 0)} | ${f(x.deep_cpu_us_per_job.daemon, 0)} / ${f(db(x.deep_cpu_us_per_job), 0)} |`);
    }
    md.push("");
    for (const [b, x] of Object.entries(D.backends)) target(`${b} drain, ${D.deep_pending} pending / ${D.shallow_pending} pending`, x.ratio, 0.8, ">=", "×");
  }
  if (r.latency) {
    md.push("## Enqueue → start latency (long-polling worker)", "", "| setup | p50 ms | p99 ms |", "|---|---|---|");
    for (const [name, x] of Object.entries(r.latency)) md.push(`| ${name} | ${f(x.p50_ms, 2)} | ${f(x.p99_ms, 2)} |`);
    md.push("");
    target("PostgreSQL enqueue → start p50", r.latency["postgres, one daemon"].p50_ms, 1.3, "<=", "ms");
  }
}
