import { Claims, type ClaimTarget, type Resolved } from "./claims.js";
import { errorFromResponse, StorageError, StorageUnavailableError, ValidationError } from "./errors.js";
import { seg, Transport, type TransportOptions } from "./transport.js";
import type {
  BulkResult,
  DequeueOptions,
  FindJobsOptions,
  JobPage,
  JobPatch,
  JobSelection,
  QueueOverview,
  EnqueueOptions,
  FailItem,
  ItemResult,
  Job,
  JobProgress,
  JobQueue,
  JobQueueBackend,
  JobContext,
  QueueSettings,
  QueueStats,
  Schedule,
  ScheduleOptions,
  EventsOptions,
  QueueEvent,
  ScheduleTiming,
  WorkOptions,
  Worker,
} from "./types.js";
import { JobStatus } from "./types.js";
import type { WireJob, WireJobStatus } from "./wire.js";
import { QueueWorker } from "./worker.js";
import { activeTraceparent } from "./otel.js";

/** The most items one batch call carries (DESIGN §3a). */
export const MAX_BATCH = 1000;

type SettleCall = "acknowledge" | "fail" | "heartbeat" | "release" | "progress";
const ROUTE: Record<SettleCall, string> = { acknowledge: "ack", fail: "fail", heartbeat: "heartbeat", release: "release", progress: "progress" };

/** A wait call's longest waitMs (DESIGN §3); waitFor chains them. */
const MAX_WAIT_MS = 60_000;

export function errorBody(e: Error): { name: string; message: string; stack: string } {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name || "Error", message: err.message, stack: err.stack ?? "" };
}

const STATUS: Record<WireJobStatus, JobStatus> = {
  pending: JobStatus.PENDING,
  processing: JobStatus.PROCESSING,
  completed: JobStatus.COMPLETED,
  failed: JobStatus.FAILED,
  cancelled: JobStatus.CANCELLED,
};

function toJob<T, R = unknown>(w: WireJob): Job<T, R> {
  // Converted in place: the answer of a dequeue of a thousand jobs is
  // parsed and converted on a drain's hot path, and a second object per
  // job was garbage the worker then spent its time collecting.
  const job = w as unknown as Record<string, unknown>;
  job.status = STATUS[w.status];
  job.runAt = new Date(w.runAt);
  job.createdAt = new Date(w.createdAt);
  job.updatedAt = new Date(w.updatedAt);
  if (w.startedAt) job.startedAt = new Date(w.startedAt);
  if (w.finishedAt) job.finishedAt = new Date(w.finishedAt);
  if (w.leaseExpiresAt) job.leaseExpiresAt = new Date(w.leaseExpiresAt);
  return job as unknown as Job<T, R>;
}

type WireEvent = Omit<QueueEvent, "at"> & { at: string };

function toEvent<R>(w: WireEvent): QueueEvent<R> {
  return { ...w, at: new Date(w.at) } as QueueEvent<R>;
}

type WireSchedule = Omit<Schedule, "next" | "lastRunAt" | "createdAt" | "updatedAt"> & {
  next: string;
  lastRunAt?: string;
  createdAt: string;
  updatedAt: string;
};

function toSchedule<T>(w: WireSchedule): Schedule<T> {
  const s: Schedule<T> = {
    ...w,
    data: w.data as T,
    next: new Date(w.next),
    createdAt: new Date(w.createdAt),
    updatedAt: new Date(w.updatedAt),
  } as Schedule<T>;
  if (w.lastRunAt) s.lastRunAt = new Date(w.lastRunAt);
  else delete s.lastRunAt;
  return s;
}

/** The body part of an ack with a result (none for undefined). */
function resultBody(result: unknown): Record<string, unknown> | undefined {
  return result === undefined ? undefined : { result };
}

/** The wire form of enqueue options; where names the options in messages. */
export function wireOptions(o: EnqueueOptions | undefined, where = ""): Record<string, unknown> {
  if (!o) {
    const tp = activeTraceparent();
    return tp === undefined ? {} : { traceparent: tp };
  }
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
  if (o.unique !== undefined) out["unique"] = o.unique;
  if (o.timeoutMs !== undefined) out["timeoutMs"] = o.timeoutMs;
  const tp = o.traceparent ?? activeTraceparent();
  if (tp !== undefined) out["traceparent"] = tp;
  return out;
}

/**
 * @internal A queue as the worker drives it: the signal ends a waiting
 * poll, and untracked claims stay out of the claim book (the worker settles
 * each with its Job, never by id).
 */
export interface WorkerQueue<T, R = unknown> extends JobQueue<T, R> {
  /** Whether the daemon keeps results (SQS does not). */
  keepsResults(): boolean;
  dequeueMany(max: number, options?: DequeueOptions, signal?: AbortSignal, untracked?: boolean): Promise<Job<T>[]>;
}

class SocketJobQueue<T, R = unknown> implements WorkerQueue<T, R> {
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

  keepsResults(): boolean {
    return this.t.keepsResults;
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

  async dequeueMany(max: number, options: DequeueOptions = {}, signal?: AbortSignal, untracked = false): Promise<Job<T>[]> {
    if (!Number.isInteger(max) || max < 1 || max > MAX_BATCH) {
      throw new ValidationError(`max must be a whole number from 1 to ${MAX_BATCH}, got ${max}`);
    }
    const waitMs = options.waitMs ?? 0;
    const res = await this.t.request("POST", `${this.base}/dequeue`, { ...options, max }, signal ? { waitMs, signal } : { waitMs });
    if (res.status === 204) return [];
    const jobs = (JSON.parse(res.body) as WireJob[]).map((w) => toJob<T>(w));
    if (!untracked) for (const j of jobs) if (j.lease) this.claims.add(j.id, j.lease);
    return jobs;
  }

  /** Sends one call on a claim and keeps the claim book in step with its outcome. */
  private async onClaim(target: ClaimTarget<T>, call: SettleCall, body: Record<string, unknown>): Promise<void> {
    const claim = this.claims.resolve(target, call);
    const ends = call !== "heartbeat" && call !== "progress";
    try {
      await this.t.request("POST", `/v1/jobs/${seg(claim.jobId)}/${ROUTE[call]}`, { lease: claim.lease, ...body });
    } catch (err) {
      this.claims.done(claim, ends, err);
      throw err;
    }
    this.claims.done(claim, ends);
  }

  /**
   * Sends a settle-many call: items the claim book cannot resolve (an id
   * this client holds no claim for, or several) get their error without
   * being sent; the others go in one request (or several of MAX_BATCH).
   */
  private async onClaims(
    call: SettleCall,
    targets: ReadonlyArray<ClaimTarget<T>>,
    extra?: (i: number) => Record<string, unknown> | undefined,
  ): Promise<ItemResult[]> {
    const out: ItemResult[] = new Array<ItemResult>(targets.length).fill(null);
    // Parallel arrays, not an object per item: a worker's batches of
    // acknowledgements come through here a thousand jobs at a time.
    const sent: Resolved[] = [];
    const at: number[] = [];
    targets.forEach((target, i) => {
      try {
        sent.push(this.claims.resolve(target, call));
        at.push(i);
      } catch (err) {
        out[i] = err instanceof StorageError ? err : new ValidationError(String(err));
      }
    });
    const ends = call !== "heartbeat" && call !== "progress";
    for (let k = 0; k < sent.length; k += MAX_BATCH) {
      const end = Math.min(k + MAX_BATCH, sent.length);
      const body: Record<string, unknown>[] = [];
      for (let n = k; n < end; n++) {
        const c = sent[n] as Resolved;
        const more = extra?.(at[n] as number);
        body.push(more ? { id: c.jobId, lease: c.lease, ...more } : { id: c.jobId, lease: c.lease });
      }
      let outcomes: Array<{ code: string; message: string } | null>;
      try {
        const res = await this.t.request("POST", `/v1/jobs/${ROUTE[call]}`, body);
        outcomes = JSON.parse(res.body) as typeof outcomes;
      } catch (err) {
        for (let n = k; n < sent.length; n++) this.claims.done(sent[n] as Resolved, ends, err);
        throw err;
      }
      for (let n = k; n < end; n++) {
        const o = outcomes[n - k];
        const err = o ? errorFromResponse(200, o.code, o.message) : undefined;
        this.claims.done(sent[n] as Resolved, ends, err);
        out[at[n] as number] = err ?? null;
      }
    }
    return out;
  }


  async acknowledgeMany(jobs: ReadonlyArray<ClaimTarget<T>>, results?: ReadonlyArray<R | undefined>): Promise<ItemResult[]> {
    return this.onClaims("acknowledge", jobs, (i) => resultBody(results?.[i]));
  }

  async failMany(items: ReadonlyArray<FailItem<T>>): Promise<ItemResult[]> {
    const bodies = items.map((x) => ({ retry: x.retry ?? true, error: errorBody(x.error) }));
    return this.onClaims("fail", items.map((x) => x.job), (i) => bodies[i] ?? {});
  }

  async heartbeatMany(jobs: ReadonlyArray<ClaimTarget<T>>, leaseMs?: number): Promise<ItemResult[]> {
    return this.onClaims("heartbeat", jobs, leaseMs === undefined ? undefined : () => ({ leaseMs }));
  }

  async release(job: ClaimTarget<T>): Promise<void> {
    await this.onClaim(job, "release", {});
  }

  async releaseMany(jobs: ReadonlyArray<ClaimTarget<T>>): Promise<ItemResult[]> {
    return this.onClaims("release", jobs);
  }

  async acknowledge(job: ClaimTarget<T>, result?: R): Promise<void> {
    await this.onClaim(job, "acknowledge", resultBody(result) ?? {});
  }

  async progress(job: ClaimTarget<T>, progress: JobProgress, leaseMs?: number): Promise<void> {
    await this.onClaim(job, "progress", leaseMs === undefined ? { progress } : { progress, leaseMs });
  }

  async *events(options: EventsOptions = {}): AsyncIterableIterator<QueueEvent<R>> {
    const waitMs = options.waitMs ?? 30_000;
    if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > MAX_WAIT_MS) {
      throw new ValidationError(`waitMs must be a whole number from 0 to ${MAX_WAIT_MS}, got ${waitMs}`);
    }
    const signal = options.signal;
    let after = options.after;
    while (!signal?.aborted) {
      const query = new URLSearchParams({ waitMs: String(waitMs) });
      if (after !== undefined) query.set("after", after);
      let body: string;
      try {
        const res = await this.t.request("GET", `${this.base}/events?${query.toString()}`, undefined, signal ? { waitMs, signal } : { waitMs });
        body = res.body;
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      const page = JSON.parse(body) as { events: WireEvent[]; next: string };
      after = page.next;
      for (const e of page.events) {
        if (signal?.aborted) return;
        yield toEvent<R>(e);
      }
    }
  }

  async waitFor(jobId: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Job<T, R> | null> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new ValidationError(`timeoutMs must be a number of milliseconds from 0 up, got ${timeoutMs}`);
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waitMs = Math.max(0, Math.min(deadline - Date.now(), MAX_WAIT_MS));
      const opts = options.signal ? { waitMs, signal: options.signal } : { waitMs };
      const res = await this.t.request("POST", `/v1/jobs/${seg(jobId)}/wait`, { waitMs }, opts);
      if (res.status === 200) return toJob<T, R>(JSON.parse(res.body) as WireJob);
      if (Date.now() >= deadline || options.signal?.aborted) return null;
    }
  }

  async fail(job: ClaimTarget<T>, error: Error, retry = true): Promise<void> {
    await this.onClaim(job, "fail", { retry, error: errorBody(error) });
  }

  async getJob(jobId: string): Promise<Job<T, R> | null> {
    try {
      const res = await this.t.request("GET", `/v1/jobs/${seg(jobId)}`);
      return toJob<T, R>(JSON.parse(res.body) as WireJob);
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

  async pause(): Promise<void> {
    await this.t.request("POST", `${this.base}/pause`);
  }

  async resume(): Promise<void> {
    await this.t.request("POST", `${this.base}/resume`);
  }

  async configure(settings: Partial<QueueSettings>): Promise<QueueSettings> {
    const body = { paused: settings.paused ?? false, concurrency: settings.concurrency ?? null, rateLimit: settings.rateLimit ?? null };
    const res = await this.t.request("PUT", `${this.base}/settings`, body);
    return JSON.parse(res.body) as QueueSettings;
  }

  async schedule(name: string, timing: ScheduleTiming, data: T, options: ScheduleOptions = {}): Promise<Schedule<T>> {
    const body: Record<string, unknown> = { ...timing, data: data === undefined ? null : data };
    for (const k of ["priority", "maxAttempts", "backoff", "overlap", "backfillMs"] as const) {
      if (options[k] !== undefined) body[k] = options[k];
    }
    const res = await this.t.request("PUT", `${this.base}/schedules/${seg(name)}`, body);
    return toSchedule<T>(JSON.parse(res.body) as WireSchedule);
  }

  async unschedule(name: string): Promise<void> {
    await this.t.request("DELETE", `${this.base}/schedules/${seg(name)}`);
  }

  async schedules(): Promise<Schedule<T>[]> {
    const res = await this.t.request("GET", `${this.base}/schedules`);
    return (JSON.parse(res.body) as WireSchedule[]).map((w) => toSchedule<T>(w));
  }

  async settings(): Promise<QueueSettings> {
    const res = await this.t.request("GET", `${this.base}/settings`);
    return JSON.parse(res.body) as QueueSettings;
  }

  async findJobs(options: FindJobsOptions<T> = {}): Promise<JobPage<T, R>> {
    const res = await this.t.request("POST", `${this.base}/jobs/find`, options);
    const page = JSON.parse(res.body) as { jobs: WireJob[]; next: string | null };
    return { jobs: page.jobs.map((w) => toJob<T, R>(w)), next: page.next };
  }

  retryJobs(selection: JobSelection<T>): Promise<BulkResult> {
    return this.bulk("retry", selection);
  }

  cancelJobs(selection: JobSelection<T>): Promise<BulkResult> {
    return this.bulk("cancel", selection);
  }

  deleteJobs(selection: JobSelection<T>): Promise<BulkResult> {
    return this.bulk("delete", selection);
  }

  private async bulk(action: string, selection: JobSelection<T>): Promise<BulkResult> {
    const res = await this.t.request("POST", `${this.base}/jobs/${action}`, selection);
    return JSON.parse(res.body) as BulkResult;
  }

  async updateJob(jobId: string, patch: JobPatch<T>): Promise<Job<T, R>> {
    const body: Record<string, unknown> = {};
    if (patch.runAt !== undefined) body.runAt = patch.runAt.toISOString();
    if (patch.priority !== undefined) body.priority = patch.priority;
    if ("data" in patch) body.data = patch.data === undefined ? null : patch.data;
    const res = await this.t.request("PATCH", `/v1/jobs/${seg(jobId)}`, body);
    return toJob<T, R>(JSON.parse(res.body) as WireJob);
  }

  work(handler: (job: Job<T>, context: JobContext) => Promise<R | void>, options: WorkOptions = {}): Worker {
    const w = new QueueWorker<T, R>(this, handler, options);
    this.backend.track(w);
    return w;
  }
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

  /** Every queue with jobs, settings or schedules, with its stats, settings and last hour (GET /v1/queues). */
  async queues(): Promise<QueueOverview[]> {
    const res = await this.transport().request("GET", "/v1/queues");
    return JSON.parse(res.body) as QueueOverview[];
  }

  /** @internal The claim book, which transactions settle claims from. */
  claimBook(): Claims {
    return this.claims;
  }

  /** @internal How many claims this client holds (tests check that none leak). */
  heldClaims(): number {
    return this.claims.size;
  }

  queue<T = unknown, R = unknown>(name = "default"): JobQueue<T, R> {
    return new SocketJobQueue<T, R>(this, name, this.claims);
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
