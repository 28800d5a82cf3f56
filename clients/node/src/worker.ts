import { setMaxListeners } from "node:events";
import { ConflictError, JobTimeoutError, NotFoundError, ValidationError } from "./errors.js";
import type { WorkerQueue } from "./jobqueue.js";
import { inJobSpan } from "./otel.js";
import type { FailItem, ItemResult, Job, JobContext, JobProgress, WorkOptions, Worker } from "./types.js";

/** The most items one batch call carries (DESIGN §3a). */
const MAX_BATCH = 1000;

/** How often a handler running for longer learns whether its claim still holds. */
const RUNNING_CHECK_MS = 1000;

/**
 * The most claims a worker holds beyond those running, unless told: see
 * README, "Tuning workers". Three batches: with no-op handlers a batch of
 * 1 000 ran out before the next dequeue came back (a PostgreSQL drain at
 * 42-44k jobs/s against 57-59k with 3 000, quiet machine, alternating
 * runs); the adaptive bound keeps slow handlers far below it.
 */
export const DEFAULT_PREFETCH = 3 * MAX_BATCH;

/** The largest prefetch accepted (one dequeue still takes at most MAX_BATCH). */
const MAX_PREFETCH = 10 * MAX_BATCH;

function positiveInteger(name: string, v: number | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < min) throw new ValidationError(`${name} must be a whole number of at least ${min}, got ${v}`);
  return v;
}

/**
 * One running job: the context its handler gets, and when it started. One
 * object per job, since a drain of no-op jobs spends a quarter of the
 * worker's time collecting garbage (node --cpu-prof). Its AbortSignal is
 * made only if the handler looks at it (most never do, and an
 * AbortController per job was a tenth of the worker's CPU time), and so is
 * its progress function.
 */
class Running<T> implements JobContext {
  readonly start = performance.now();
  private controller: AbortController | undefined;
  private fired = false;
  private reason: unknown;

  constructor(
    private readonly job: Job<T>,
    private readonly report: (job: Job<T>, p: JobProgress) => Promise<void>,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.fired) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  // A getter, not a method, so that a handler may destructure it.
  get progress(): (p: JobProgress) => Promise<void> {
    return (p) => this.report(this.job, p);
  }

  abort(reason: unknown): void {
    if (this.fired) return;
    this.fired = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * The seed's processing loop, batched (DESIGN §3a). A fetcher keeps
 * claims at hand with dequeueMany (one long poll at a time), and while
 * dequeues come back full a second one overlaps it, so that the next
 * batch is claimed while the last one travels; handlers take
 * them in claim order, at most concurrency at once; outcomes are sent in
 * batches: each completion joins the acknowledgeMany (or failMany) that
 * leaves on the next turn of the event loop, or, while one is on its way,
 * the one after it. One heartbeatMany at a third of the lease renews every
 * claim held, running or waiting. stop() ends the poll, releases the
 * waiting claims so that other workers get them at once, lets the running
 * handlers finish and sends their outcomes.
 *
 * How many claims wait beyond the running ones adapts to the work: as many
 * as the handlers finish in two dequeue round trips, so that the next
 * batch arrives before the last one runs out, and never more than they
 * finish in a third of the lease (nor more than prefetch). Fast handlers
 * thus get big batches (hundreds of jobs per round trip), slow ones hold
 * next to nothing that other workers could be running.
 */
export class QueueWorker<T, R = unknown> implements Worker {
  private readonly concurrency: number;
  private readonly prefetch: number;
  private readonly leaseMs: number;
  private readonly waitMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly abort = new AbortController();

  /** Claimed and not started, in claim order. */
  private readonly buffer: Job<T>[] = [];
  /**
   * Every claim not yet settled, whose lease we keep: waiting, running, and
   * finished with its outcome still on its way (a slow acknowledgement
   * must not let the lease run out and the job run again).
   */
  private readonly held = new Set<Job<T>>();
  /** The running jobs: their signals (aborted when the claim is found gone) and when they started. */
  private readonly signals = new Map<Job<T>, Running<T>>();
  private readonly timeoutMs: number;
  /** Every claim held is renewed at this pace (a third of the lease). */
  private readonly renewEvery: number;
  private lastFullRenew = performance.now();
  private running = 0;
  /**
   * Finished claims whose outcome is decided (queued or on its way): a
   * renewal refused for one of them only means its own ack or fail landed
   * first, which is no news to report.
   */
  private readonly settling = new Set<Job<T>>();
  private acks: Job<T>[] = [];
  private results: (R | undefined)[] = [];
  private toldNoResults = false;
  private fails: Array<FailItem<T> & { job: Job<T> }> = [];
  private flushing: Promise<void> | undefined;
  private flushQueued = false;
  private beating = false;
  private readonly heartbeat: NodeJS.Timeout;
  private stopping = false;
  /** Wake the fetchers when a slot frees. */
  private slotWaiters: (() => void)[] = [];
  /** Claims asked for by the dequeues under way: room they will take. */
  private asking = 0;
  /** The last dequeue came back full: there is more to claim at once. */
  private busy = false;
  /** Wake stop() when the last handler ends. */
  private idle: (() => void)[] = [];
  private readonly fetched: Promise<void>;
  stopped: Promise<void> | undefined;

  // What the adaptive prefetch knows, as moving averages: how long a
  // handler takes and a dequeue's round trip, in ms (0: not known yet).
  private took = 0;
  private rtt = 1;

  /** What a handler's context.progress calls. */
  private readonly report = (job: Job<T>, p: JobProgress): Promise<void> => this.progress(job, p);

  constructor(
    private readonly queue: WorkerQueue<T, R>,
    private readonly handler: (job: Job<T>, context: JobContext) => Promise<R | void>,
    options: WorkOptions,
  ) {
    this.concurrency = positiveInteger("concurrency", options.concurrency, 1);
    this.prefetch = Math.min(positiveInteger("prefetch", options.prefetch, DEFAULT_PREFETCH, 0), MAX_PREFETCH);
    this.leaseMs = positiveInteger("leaseMs", options.leaseMs, 30_000);
    this.waitMs = positiveInteger("waitMs", options.waitMs, 30_000, 0);
    this.timeoutMs = positiveInteger("timeoutMs", options.timeoutMs, 0, 0);
    this.onError = options.onError ?? ((err) => process.emitWarning(`storaged worker: ${err instanceof Error ? err.message : String(err)}`));
    setMaxListeners(0, this.abort.signal);
    // Every claim at a third of the lease, so that two renewals may be
    // lost before a claim runs out; and handlers running for over a second
    // every second, so that a cancel reaches their signal within about a
    // second (a job shorter than that never costs an extra call).
    this.renewEvery = Math.max(Math.floor(this.leaseMs / 3), 10);
    this.heartbeat = setInterval(() => void this.renew(), Math.min(this.renewEvery, RUNNING_CHECK_MS));
    this.fetched = Promise.all([this.fetch(true), this.fetch(false)]).then(() => undefined);
  }

  private wakeFetchers(): void {
    for (const wake of this.slotWaiters.splice(0)) wake();
  }

  /**
   * How many claims should wait beyond the running ones: what the
   * handlers can finish in two dequeue round trips (their own pace, not
   * the pace the batches so far allowed), and no more than in a third of
   * the lease.
   */
  private target(): number {
    if (this.took === 0) return Math.min(this.concurrency, this.prefetch);
    const rate = this.concurrency / Math.max(this.took, 0.001); // jobs per ms
    const want = Math.ceil(Math.min(rate * this.rtt * 2, (rate * this.leaseMs) / 3));
    return Math.min(Math.max(want, this.concurrency), this.prefetch);
  }

  /**
   * How many more claims the worker may take. Every claim counts until it
   * is settled, so that when acknowledgements fall behind the claims (a
   * store settles more slowly than it claims), the worker slows down
   * instead of piling up finished jobs whose leases may run out.
   */
  private room(): number {
    return this.concurrency + this.target() - this.held.size - this.asking;
  }

  /**
   * A fetch loop. The first long-polls; the second only claims what is
   * ready (waitMs 0), and only while the last dequeue came back full, so
   * that an idle queue costs one waiting poll, not two. Two in flight
   * kept two cores busy where one left a third of them idle (a PostgreSQL
   * drain 19-24k -> 25-28k jobs/s, alternating runs; docs/decisions.md).
   */
  private async fetch(first: boolean): Promise<void> {
    let backoff = 100;
    while (!this.stopping) {
      // Fetch when a slot is free and the waiting claims run low, so that
      // each dequeue brings a batch rather than one job at a time.
      const room = this.room();
      if (room < 1 || this.buffer.length > this.target() / 2 || (!first && !this.busy)) {
        await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
        continue;
      }
      const want = Math.min(room, MAX_BATCH);
      let jobs: Job<T>[];
      this.asking += want;
      try {
        const sent = performance.now();
        jobs = await this.queue.dequeueMany(want, { waitMs: first ? this.waitMs : 0, leaseMs: this.leaseMs }, this.abort.signal, true);
        // A dequeue that waited for work says nothing of the round trip.
        if (jobs.length === want) this.rtt = 0.7 * this.rtt + 0.3 * (performance.now() - sent);
        this.busy = jobs.length === want;
        backoff = 100;
      } catch (err) {
        this.asking -= want;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() sets it while the dequeue waits
        if (this.stopping) return;
        this.onError(err);
        await sleep(backoff, this.abort.signal);
        backoff = Math.min(backoff * 2, 5_000);
        continue;
      }
      this.asking -= want;
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() sets it while the dequeue waits
      if (this.stopping) {
        // Claimed as stop() began: they are not ours to start.
        await this.releaseClaims(jobs);
        return;
      }
      for (const j of jobs) {
        this.buffer.push(j);
        this.held.add(j);
      }
      this.dispatch();
      // The other fetcher may go now (busy), or its room has changed.
      this.wakeFetchers();
    }
  }

  private dispatch(): void {
    while (!this.stopping && this.running < this.concurrency) {
      const job = this.buffer.shift();
      if (!job) break;
      void this.run(job);
    }
  }

  private async run(job: Job<T>): Promise<void> {
    this.running++;
    const context = new Running(job, this.report);
    this.signals.set(job, context);
    // At its timeout the job fails at once (retried per its policy) and
    // the handler's signal aborts; what the handler does after that is
    // ignored, but its slot stays taken until it returns.
    // The job's own timeout (kept with it at enqueue) wins over the worker's.
    let timedOut = false;
    const timeoutMs = job.timeoutMs ?? this.timeoutMs;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            const err = new JobTimeoutError(`job ${job.id} ran past its timeout of ${timeoutMs} ms`);
            context.abort(err);
            this.settling.add(job);
            this.fails.push({ job, error: err, retry: true });
            this.scheduleFlush();
          }, timeoutMs)
        : undefined;
    try {
      const result = await inJobSpan(job.queue, job.id, job.attempts, job.traceparent, () => this.handler(job, context));
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the timer sets it while the handler runs
      if (!timedOut) {
        this.settling.add(job);
        this.acks.push(job);
        this.results.push(this.keepResult(result));
      }
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the timer sets it while the handler runs
      if (!timedOut) {
        this.settling.add(job);
        this.fails.push({ job, error: err instanceof Error ? err : new Error(String(err)), retry: true });
      }
    }
    clearTimeout(timer);
    this.signals.delete(job);
    const took = performance.now() - context.start;
    this.took = this.took === 0 ? took : 0.9 * this.took + 0.1 * took;
    this.running--;
    this.scheduleFlush();
    this.dispatch();
    this.wakeFetchers();
    if (this.running === 0) for (const wake of this.idle.splice(0)) wake();
  }

  /**
   * A handler's return value, to send with its ack; on a daemon that keeps
   * no results (SQS) it is dropped, and onError is told so once.
   */
  private keepResult(result: R | void): R | undefined {
    if (result === undefined) return undefined;
    if (this.queue.keepsResults()) return result;
    if (!this.toldNoResults) {
      this.toldNoResults = true;
      this.onError(new ValidationError("this daemon's job queue keeps no results (see jobCapabilities in GET /v1/info): handlers' return values are dropped"));
    }
    return undefined;
  }

  /** Sends the outcomes gathered so far on the next turn of the event loop. */
  private scheduleFlush(): void {
    if (this.flushQueued || this.flushing) return; // the flush under way takes them next
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        // Outcomes that came between the flush's last look and now.
        if (this.acks.length > 0 || this.fails.length > 0) this.scheduleFlush();
      });
    });
  }

  private async flush(): Promise<void> {
    while (this.acks.length > 0 || this.fails.length > 0) {
      const acks = this.acks.splice(0, MAX_BATCH);
      const results = this.results.splice(0, MAX_BATCH);
      const fails = this.fails.splice(0, MAX_BATCH);
      await Promise.all([
        acks.length > 0 ? this.send("acknowledge", acks, () => this.queue.acknowledgeMany(acks, results)) : undefined,
        fails.length > 0 ? this.send("fail", fails.map((f) => f.job), () => this.queue.failMany(fails)) : undefined,
      ]);
      // Settled (or given up on): no longer ours to renew, and room for more.
      for (const j of acks) this.forget(j);
      for (const f of fails) this.forget(f.job);
      this.wakeFetchers();
    }
  }

  /** Drops a settled claim (or one given up on): no longer ours to renew. */
  private forget(job: Job<T>): void {
    this.held.delete(job);
    this.settling.delete(job);
  }

  /**
   * Sends one batch of outcomes. A batch the daemon did not answer is sent
   * again a few times (a repeated ack of the same claim is harmless); after
   * that its jobs run again once their leases end, as after a crash. Items
   * refused one by one (a lease lost to another worker) are reported.
   */
  private async send(what: string, jobs: Job<T>[], call: () => Promise<ItemResult[]>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await call();
        results.forEach((r, i) => {
          if (r) this.onError(r instanceof ConflictError ? new ConflictError(`job ${jobs[i]?.id ?? "?"}: ${r.message}`) : r);
        });
        return;
      } catch (err) {
        this.onError(err);
        if (attempt >= 3) return;
        await sleep(200 * attempt);
      }
    }
  }

  /**
   * Renews every claim held at a third of the lease, and in between the
   * claims of handlers running for over a second; a claim found gone is
   * dropped if it has not started, and its handler's signal aborted if it
   * has.
   */
  private async renew(): Promise<void> {
    if (this.beating || this.held.size === 0) return;
    const now = performance.now();
    let jobs: Job<T>[];
    if (now - this.lastFullRenew >= this.renewEvery - 5) {
      this.lastFullRenew = now;
      jobs = [...this.held];
    } else {
      jobs = [];
      for (const [job, r] of this.signals) if (now - r.start >= RUNNING_CHECK_MS && this.held.has(job)) jobs.push(job);
      if (jobs.length === 0) return;
    }
    this.beating = true;
    try {
      for (let k = 0; k < jobs.length; k += MAX_BATCH) {
        const chunk = jobs.slice(k, k + MAX_BATCH);
        const results = await this.queue.heartbeatMany(chunk);
        results.forEach((r, i) => {
          const job = chunk[i];
          // A claim settled or let go while the renewal was on its way
          // is no longer held: its refusal is no news either.
          if (!r || !job || this.settling.has(job) || !this.held.has(job)) return;
          this.claimLost(job, r);
          this.onError(r);
        });
      }
    } catch (err) {
      this.onError(err);
    } finally {
      this.beating = false;
    }
  }

  /**
   * Acts on a heartbeat or progress refusal: a claim that is gone (the job
   * was cancelled, or its lease ran out and another worker has it) is
   * dropped if it has not started, and its handler's signal aborted if it
   * has.
   */
  private claimLost(job: Job<T>, r: unknown): void {
    if (!(r instanceof ConflictError || r instanceof NotFoundError)) return;
    const waiting = this.buffer.indexOf(job);
    if (waiting >= 0) {
      this.buffer.splice(waiting, 1);
      this.held.delete(job);
    }
    this.signals.get(job)?.abort(r);
  }

  /** A handler's progress report; it also renews the claim. */
  private async progress(job: Job<T>, p: JobProgress): Promise<void> {
    try {
      await this.queue.progress(job, p, this.leaseMs);
    } catch (err) {
      this.claimLost(job, err);
      throw err;
    }
  }

  private async releaseClaims(jobs: Job<T>[]): Promise<void> {
    if (jobs.length === 0) return;
    for (const j of jobs) this.held.delete(j);
    try {
      const results = await this.queue.releaseMany(jobs);
      for (const r of results) if (r) this.onError(r);
    } catch (err) {
      // Not released: they run again once their leases end.
      this.onError(err);
    }
  }

  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.wakeFetchers();
    await this.fetched;
    await this.releaseClaims(this.buffer.splice(0));
    if (this.running > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    while (this.flushing || this.flushQueued || this.acks.length > 0 || this.fails.length > 0) {
      if (this.flushing) await this.flushing;
      else if (this.flushQueued) await new Promise((r) => setImmediate(r));
      else this.scheduleFlush();
    }
    clearInterval(this.heartbeat);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
