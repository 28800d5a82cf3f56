import { setMaxListeners } from "node:events";
import { Claims, type ClaimTarget } from "./claims.js";
import { ConflictError, StorageUnavailableError, ValidationError } from "./errors.js";
import { seg, Transport, type TransportOptions } from "./transport.js";
import type {
  DequeueOptions,
  EnqueueOptions,
  Job,
  JobQueue,
  JobQueueBackend,
  JobStatus,
  QueueStats,
  WorkOptions,
  Worker,
} from "./types.js";

interface WireJob {
  id: string;
  queue: string;
  data: unknown;
  status: JobStatus;
  priority: number;
  attempts: number;
  maxAttempts: number;
  backoff: Job<unknown>["backoff"];
  key?: string;
  runAt: string;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  finishedAt?: string;
  leaseExpiresAt?: string;
  lease?: string;
  lastError?: Job<unknown>["lastError"];
}

function toJob<T>(w: WireJob): Job<T> {
  const job: Job<T> = {
    id: w.id,
    queue: w.queue,
    data: w.data as T,
    status: w.status,
    priority: w.priority,
    attempts: w.attempts,
    maxAttempts: w.maxAttempts,
    backoff: w.backoff,
    runAt: new Date(w.runAt),
    createdAt: new Date(w.createdAt),
    updatedAt: new Date(w.updatedAt),
  };
  if (w.key !== undefined) job.key = w.key;
  if (w.startedAt) job.startedAt = new Date(w.startedAt);
  if (w.finishedAt) job.finishedAt = new Date(w.finishedAt);
  if (w.leaseExpiresAt) job.leaseExpiresAt = new Date(w.leaseExpiresAt);
  if (w.lease) job.lease = w.lease;
  if (w.lastError) job.lastError = w.lastError;
  return job;
}

/** The wire form of enqueue options; where names the options in messages. */
function wireOptions(o: EnqueueOptions | undefined, where = ""): Record<string, unknown> {
  if (!o) return {};
  const out: Record<string, unknown> = {};
  if (o.runAt instanceof Date) {
    if (Number.isNaN(o.runAt.getTime())) throw new ValidationError(`${where}runAt is an invalid Date`);
    out["runAt"] = o.runAt.toISOString();
  } else if (o.runAt !== undefined) {
    out["runAt"] = o.runAt;
  }
  if (o.delayMs !== undefined) out["delayMs"] = o.delayMs;
  if (o.priority !== undefined) out["priority"] = o.priority;
  if (o.maxAttempts !== undefined) out["maxAttempts"] = o.maxAttempts;
  if (o.backoff !== undefined) out["backoff"] = o.backoff;
  if (o.key !== undefined) out["key"] = o.key;
  return out;
}

class SocketJobQueue<T> implements JobQueue<T> {
  private readonly base: string;
  constructor(
    private readonly backend: SocketJobQueueBackend,
    private readonly name: string,
    private readonly claims: Claims,
  ) {
    this.base = `/v1/queues/${seg(name)}`;
  }

  private get t(): Transport {
    return this.backend.transport();
  }

  async enqueue(data: T, options?: EnqueueOptions): Promise<string> {
    const res = await this.t.request("POST", `${this.base}/jobs`, { data: data ?? null, ...wireOptions(options) });
    return (JSON.parse(res.body) as { id: string }).id;
  }

  async enqueueMany(jobs: ReadonlyArray<{ data: T } & EnqueueOptions>): Promise<string[]> {
    const t = this.t;
    // The daemon refuses an empty batch; an empty list enqueues nothing.
    if (jobs.length === 0) return [];
    const body = jobs.map((j, i) => ({ data: j.data ?? null, ...wireOptions(j, `jobs[${i}].`) }));
    const res = await t.request("POST", `${this.base}/jobs/batch`, body);
    return (JSON.parse(res.body) as { ids: string[] }).ids;
  }

  async dequeue(options: DequeueOptions = {}, signal?: AbortSignal): Promise<Job<T> | null> {
    const waitMs = options.waitMs ?? 0;
    const res = await this.t.request("POST", `${this.base}/dequeue`, options, signal ? { waitMs, signal } : { waitMs });
    if (res.status === 204) return null;
    const job = toJob<T>(JSON.parse(res.body) as WireJob);
    if (job.lease) this.claims.add(job.id, job.lease);
    return job;
  }

  /** Sends one call on a claim and keeps the claim book in step with its outcome. */
  private async onClaim(target: ClaimTarget<T>, call: "acknowledge" | "fail" | "heartbeat", body: Record<string, unknown>): Promise<void> {
    const { claim, bound } = this.claims.resolve(target, call);
    const route = call === "acknowledge" ? "ack" : call;
    const settles = call !== "heartbeat";
    try {
      await this.t.request("POST", `/v1/jobs/${seg(claim.jobId)}/${route}`, { lease: claim.lease, ...body });
    } catch (err) {
      this.claims.done(claim, bound, settles, err);
      throw err;
    }
    this.claims.done(claim, bound, settles);
  }

  async acknowledge(job: ClaimTarget<T>): Promise<void> {
    await this.onClaim(job, "acknowledge", {});
  }

  async fail(job: ClaimTarget<T>, error: Error, retry = true): Promise<void> {
    const e = error instanceof Error ? error : new Error(String(error));
    await this.onClaim(job, "fail", { retry, error: { name: e.name || "Error", message: e.message ?? "", stack: e.stack ?? "" } });
  }

  async getJob(jobId: string): Promise<Job<T> | null> {
    try {
      const res = await this.t.request("GET", `/v1/jobs/${seg(jobId)}`);
      return toJob<T>(JSON.parse(res.body) as WireJob);
    } catch (err) {
      if ((err as { code?: string }).code === "not_found") return null;
      throw err;
    }
  }

  async getStatus(jobId: string): Promise<JobStatus | null> {
    return (await this.getJob(jobId))?.status ?? null;
  }

  async heartbeat(job: ClaimTarget<T>, leaseMs?: number): Promise<void> {
    await this.onClaim(job, "heartbeat", leaseMs === undefined ? {} : { leaseMs });
  }

  async cancel(jobId: string): Promise<void> {
    await this.t.request("POST", `/v1/jobs/${seg(jobId)}/cancel`);
    this.claims.deleteJob(jobId);
  }

  async stats(): Promise<QueueStats> {
    const res = await this.t.request("GET", `${this.base}/stats`);
    return JSON.parse(res.body) as QueueStats;
  }

  async listFailed(options: { limit?: number; offset?: number } = {}): Promise<Job<T>[]> {
    const q = new URLSearchParams();
    if (options.limit !== undefined) q.set("limit", String(options.limit));
    if (options.offset !== undefined) q.set("offset", String(options.offset));
    const qs = q.size ? `?${q.toString()}` : "";
    const res = await this.t.request("GET", `${this.base}/failed${qs}`);
    return (JSON.parse(res.body) as WireJob[]).map((w) => toJob<T>(w));
  }

  async retryFailed(jobId: string): Promise<void> {
    await this.t.request("POST", `/v1/jobs/${seg(jobId)}/retry`);
  }

  async purgeFailed(): Promise<number> {
    const res = await this.t.request("DELETE", `${this.base}/failed`);
    return (JSON.parse(res.body) as { purged: number }).purged;
  }

  work(handler: (job: Job<T>) => Promise<void>, options: WorkOptions = {}): Worker {
    const w = new QueueWorker<T>(this, handler, options);
    this.backend.track(w);
    return w;
  }
}

/**
 * The seed's processing loop, done right: `concurrency` loops each long-poll
 * for a job, renew its lease while the handler runs, acknowledge on success
 * and fail (with retry) on a throw. stop() stops claiming, aborts the
 * waiting polls and resolves once the jobs in flight are finished.
 */
class QueueWorker<T> implements Worker {
  private stopping = false;
  private readonly abort = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly onError: (err: unknown) => void;
  private readonly leaseMs: number;
  private readonly waitMs: number;
  stopped: Promise<void>;

  constructor(
    private readonly queue: SocketJobQueue<T>,
    private readonly handler: (job: Job<T>) => Promise<void>,
    options: WorkOptions,
  ) {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ValidationError(`concurrency must be a positive integer, got ${concurrency}`);
    }
    this.leaseMs = options.leaseMs ?? 30_000;
    this.waitMs = options.waitMs ?? 30_000;
    this.onError = options.onError ?? ((err) => process.emitWarning(`storaged worker: ${(err as Error).message ?? err}`));
    // Every waiting poll listens on the one stop signal.
    setMaxListeners(0, this.abort.signal);
    for (let i = 0; i < concurrency; i++) this.loops.push(this.loop());
    this.stopped = Promise.all(this.loops).then(() => undefined);
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      let job: Job<T> | null;
      try {
        job = await this.queue.dequeue({ waitMs: this.waitMs, leaseMs: this.leaseMs }, this.abort.signal);
      } catch (err) {
        if (this.stopping) return;
        this.onError(err);
        await sleep(1000, this.abort.signal);
        continue;
      }
      if (job) await this.run(job);
    }
  }

  private async run(job: Job<T>): Promise<void> {
    // Renew at a third of the lease so two heartbeats may be lost before
    // the claim runs out.
    const timer = setInterval(() => {
      this.queue.heartbeat(job).catch((err) => this.onError(err));
    }, Math.max(Math.floor(this.leaseMs / 3), 10));
    let failure: Error | undefined;
    try {
      await this.handler(job);
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    } finally {
      clearInterval(timer);
    }
    try {
      // With the Job, not its id: another loop of this process may hold a
      // newer claim of the same job (this one's lease ran out).
      if (failure) await this.queue.fail(job, failure, true);
      else await this.queue.acknowledge(job);
    } catch (err) {
      // A conflict means the lease was lost (the handler outlived it and
      // another worker took the job); the job is not lost, only this claim.
      this.onError(err instanceof ConflictError ? new ConflictError(`job ${job.id}: ${err.message}`) : err);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    await this.stopped;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

/** The seed's JobQueueBackend, served by storaged over its Unix socket. */
export class SocketJobQueueBackend implements JobQueueBackend {
  protected transportOptions: TransportOptions;
  private t: Transport | undefined;
  private readonly claims = new Claims();
  private readonly workers = new Set<Worker>();

  constructor(options: TransportOptions = {}) {
    this.transportOptions = options;
  }

  get socketPath(): string | undefined {
    return this.t?.socketPath;
  }

  /** @internal */
  transport(): Transport {
    if (!this.t) {
      throw new StorageUnavailableError("job queue backend is not connected: call connect() first");
    }
    return this.t;
  }

  /** @internal */
  track(w: Worker): void {
    this.workers.add(w);
  }

  /** @internal How many claims this client holds (tests check that none leak). */
  heldClaims(): number {
    return this.claims.size;
  }

  queue<T = unknown>(name = "default"): JobQueue<T> {
    return new SocketJobQueue<T>(this, name, this.claims);
  }

  async connect(): Promise<void> {
    if (this.t) return;
    const t = new Transport(this.transportOptions);
    try {
      await t.ping();
    } catch (err) {
      await t.close();
      throw err;
    }
    this.t = t;
  }

  /** Stops every worker (draining their jobs), then closes the connections. */
  async disconnect(): Promise<void> {
    await Promise.all([...this.workers].map((w) => w.stop()));
    this.workers.clear();
    const t = this.t;
    this.t = undefined;
    await t?.close();
  }
}
