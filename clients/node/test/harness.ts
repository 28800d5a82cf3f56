// The test harness: runs a real storaged per backend. Adding a backend to
// every suite is one line in DAEMON_ENV and one name in
// STORAGED_TEST_BACKENDS (make test sets it to every backend this build has).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { createServer } from "node:net";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { PrivateDaemon } from "../src/daemon.js";
import { SocketJobQueueBackend } from "../src/index.js";

const DAEMON_ENV: Record<string, () => Record<string, string> | Promise<Record<string, string>>> = {
  memory: () => ({ REPOSITORY_BACKEND: "memory", JOBQUEUE_BACKEND: "memory" }),
  sqlite: () => ({ REPOSITORY_BACKEND: "sqlite", JOBQUEUE_BACKEND: "sqlite", SQLITE_PATH: join(tempDir(), "test.db") }),
  postgres: () => ({ REPOSITORY_BACKEND: "postgres", JOBQUEUE_BACKEND: "postgres", POSTGRESQL_URL: freshPostgresDatabase() }),
  // Redis holds only jobs; the records suites run again on memory here.
  redis: () => ({ REPOSITORY_BACKEND: "memory", JOBQUEUE_BACKEND: "redis", REDIS_URL, STORAGED_REDIS_PREFIX: freshRedisPrefix() }),
  // SQS holds only jobs, on moto (an AWS emulator); records on memory.
  sqs: async () => ({
    REPOSITORY_BACKEND: "memory",
    JOBQUEUE_BACKEND: "sqs",
    SQS_ENDPOINT: await sqsEndpoint(),
    SQS_REGION: "us-east-1",
    SQS_QUEUE_PREFIX: `sn${randomBytes(4).toString("hex")}-`,
    SQS_POLL_INTERVAL: "100ms",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  }),
};

let moto: ChildProcess | undefined;
let motoURL: Promise<string> | undefined;

/**
 * The SQS-compatible server of the sqs suites: STORAGED_TEST_SQS_ENDPOINT,
 * or moto's server started once per test file and killed at exit.
 */
function sqsEndpoint(): Promise<string> {
  const fromEnv = process.env["STORAGED_TEST_SQS_ENDPOINT"];
  if (fromEnv) return Promise.resolve(fromEnv);
  motoURL ??= startMoto();
  return motoURL;
}

async function startMoto(): Promise<string> {
  const port = await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  // moto behind one lock, as the Go tests run it: moto changes its queues
  // without one while it answers on many threads (docs/decisions.md).
  const script = new URL("../../../../internal/testutil/moto_serialized.py", import.meta.url);
  const child = spawn("python3", [fileURLToPath(script), "-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  // Not a reason to keep the test process alive; killed at exit.
  child.unref();
  moto = child;
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (err) =>
      reject(new Error(`cannot start moto's server (the sqs suites' SQS emulator: python3 with moto; pip install 'moto[server]', or set STORAGED_TEST_SQS_ENDPOINT): ${err.message}`)),
    );
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const up = await Promise.race([
      failed,
      new Promise<boolean>((resolve) => {
        const req = request(`${url}/moto-api/`, (res) => {
          res.resume();
          resolve(true);
        });
        req.once("error", () => resolve(false));
        req.end();
      }),
    ]);
    if (up) return url;
    if (Date.now() > deadline) throw new Error(`moto's server (python3 ${fileURLToPath(script)}) did not answer on ${url} within 30 s: does python3 import moto?`);
    await sleep(100);
  }
}

const REDIS_URL = process.env["STORAGED_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379/0";
const redisPrefixes: string[] = [];

/** A key prefix of its own for one daemon; its keys are deleted at exit. */
function freshRedisPrefix(): string {
  try {
    execFileSync("redis-cli", ["-u", REDIS_URL, "ping"], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    throw new Error(
      `Redis is not reachable at ${REDIS_URL} (STORAGED_TEST_REDIS_URL): ${(err as { stderr?: Buffer }).stderr?.toString() ?? String(err)}. ` +
        "Start it (.ci/run does) or point STORAGED_TEST_REDIS_URL at one.",
      { cause: err },
    );
  }
  const prefix = `storaged-node-${randomBytes(6).toString("hex")}`;
  redisPrefixes.push(prefix);
  return prefix;
}

const ADMIN_URL = process.env["STORAGED_TEST_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
const createdDatabases: string[] = [];

/** Creates a database for one daemon with createdb; dropped at exit. */
function freshPostgresDatabase(): string {
  const name = `storaged_node_${randomBytes(6).toString("hex")}`;
  const admin = new URL(ADMIN_URL);
  try {
    execFileSync("psql", [ADMIN_URL, "-qAtc", `CREATE DATABASE ${name}`], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    throw new Error(
      `cannot create a test database on ${admin.host} (STORAGED_TEST_POSTGRES_URL): ${(err as { stderr?: Buffer }).stderr?.toString() ?? String(err)}. ` +
        "Start PostgreSQL (.ci/run does) or point STORAGED_TEST_POSTGRES_URL at a server where the user may CREATE DATABASE.",
      { cause: err },
    );
  }
  createdDatabases.push(name);
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

process.on("exit", () => {
  moto?.kill("SIGKILL");
  for (const prefix of redisPrefixes) {
    try {
      // Keys are few in tests; one EVAL deletes them all.
      execFileSync("redis-cli", ["-u", REDIS_URL, "eval",
        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end", "0", `${prefix}:*`], { stdio: "ignore" });
    } catch {
      // best effort
    }
  }
  for (const name of createdDatabases) {
    try {
      execFileSync("psql", [ADMIN_URL, "-qAtc", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: "ignore" });
    } catch {
      // best effort
    }
  }
});

export const BACKENDS = (process.env["STORAGED_TEST_BACKENDS"] ?? "memory").split(",").filter(Boolean);

for (const b of BACKENDS) {
  if (!DAEMON_ENV[b]) throw new Error(`STORAGED_TEST_BACKENDS names ${b}, which the harness does not know`);
}

export interface TestDaemon {
  socketPath: string;
  stop(): Promise<void>;
}

/** Starts a daemon on backend with a short transaction idle timeout. */
export async function startDaemon(backend: string, extra: Record<string, string> = {}): Promise<TestDaemon> {
  const env = { ...(await DAEMON_ENV[backend]!()), STORAGED_TX_IDLE_TIMEOUT: "1s", ...extra };
  const d = await PrivateDaemon.start(env);
  return { socketPath: d.socketPath, stop: () => d.stop() };
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "storaged-test-"));
}

let counter = 0;
/** A collection or queue name unique to this run. */
export function uniqueName(prefix: string): string {
  counter++;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}

export interface VectorFile {
  datasets: Record<string, Array<Record<string, unknown> & { id: string }>>;
  vectors: Array<{ name: string; dataset: string; query: Record<string, unknown>; expect?: string[]; error?: string }>;
}

/** The shared filter vectors of testdata/ (DESIGN §2). */
export function loadVectors(): VectorFile {
  const url = new URL("../../../../testdata/filter-vectors.json", import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")) as VectorFile;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What a daemon's job queue honours exactly (GET /v1/info jobCapabilities). */
export type JobCapability =
  | "priorities"
  | "getJob"
  | "cancel"
  | "dedupeKeys"
  | "exactStats"
  | "fencing"
  | "exactlyOnce"
  | "settleAnywhere"
  | "atomicBatches"
  | "milliseconds"
  | "flowControl"
  | "schedules"
  | "events"
  | "browse";

export async function jobCapabilities(socketPath: string): Promise<Record<JobCapability, boolean>> {
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ socketPath, path: "/v1/info", method: "GET" }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (data += c));
      res.on("end", () => resolve(data));
    });
    req.once("error", reject);
    req.end();
  });
  return (JSON.parse(body) as { jobCapabilities: Record<JobCapability, boolean> }).jobCapabilities;
}

/** What a job suite on one backend works with. */
export interface JobSuite {
  daemon: TestDaemon;
  jobs: SocketJobQueueBackend;
  caps: Record<JobCapability, boolean>;
}

/**
 * Gives the enclosing describe block a daemon on backend and a connected
 * job client (its before and after hooks), handed to assign once started.
 */
export function withJobsDaemon(backend: string, assign: (s: JobSuite) => void): void {
  let s: JobSuite | undefined;
  before(async () => {
    const daemon = await startDaemon(backend);
    const caps = await jobCapabilities(daemon.socketPath);
    const jobs = new SocketJobQueueBackend({ socketPath: daemon.socketPath });
    await jobs.connect();
    s = { daemon, jobs, caps };
    assign(s);
  });
  after(async () => {
    await s?.jobs.disconnect();
    await s?.daemon.stop();
  });
}

/**
 * Skips the running test, saying why, when the daemon's job queue lacks
 * one of the capabilities it needs; returns whether it did. Cases are
 * skipped by capability, never silently.
 */
export function lacks(t: { skip(message?: string): void }, caps: Record<JobCapability, boolean>, ...need: JobCapability[]): boolean {
  const missing = need.filter((c) => !caps[c]);
  if (missing.length === 0) return false;
  t.skip(`skipped by capability: this job queue lacks ${missing.join(", ")}`);
  return true;
}
