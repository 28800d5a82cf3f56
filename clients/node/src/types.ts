import type { StorageError } from "./errors.js";
import type { Query } from "./query.js";

/** A JSON scalar: what equality and $in compare against. */
export type Scalar = string | number | boolean | null;

/** A dotted path into nested objects, such as "address.city". */
export type DottedPath = `${string}.${string}`;

type Elem<V> = V extends ReadonlyArray<infer E> ? E : never;

/** Operators on one field; operands are typed by the field's type. */
export interface FieldOperators<V> {
  $eq?: Extract<V, Scalar> | null;
  $ne?: Extract<V, Scalar> | null;
  $gt?: Extract<V, string | number>;
  $gte?: Extract<V, string | number>;
  $lt?: Extract<V, string | number>;
  $lte?: Extract<V, string | number>;
  $in?: ReadonlyArray<Extract<V, Scalar> | null>;
  $nin?: ReadonlyArray<Extract<V, Scalar> | null>;
  $exists?: boolean;
  $contains?: Extract<Elem<V>, Scalar>;
  $startsWith?: Extract<V, string> extends never ? never : string;
}

/** Operators on a dotted path, whose type TypeScript cannot follow. */
export interface PathOperators {
  $eq?: Scalar;
  $ne?: Scalar;
  $gt?: string | number;
  $gte?: string | number;
  $lt?: string | number;
  $lte?: string | number;
  $in?: ReadonlyArray<Scalar>;
  $nin?: ReadonlyArray<Scalar>;
  $exists?: boolean;
  $contains?: Scalar;
  $startsWith?: string;
}

type FieldCondition<V> = (Extract<V, Scalar> | null) | FieldOperators<V>;

/** A Mongo-like filter (DESIGN §2): top-level fields, dotted paths and $and/$or/$not. */
export type Filter<T> = {
  [K in keyof T & string]?: FieldCondition<T[K]>;
} & {
  [path: DottedPath]: Scalar | PathOperators | undefined;
} & {
  $and?: ReadonlyArray<Filter<T>>;
  $or?: ReadonlyArray<Filter<T>>;
  $not?: Filter<T>;
};

export type SortDirection = "asc" | "desc";

/** Sort keys in order of precedence; id ascending always breaks ties. */
export type Sort<T> = { [K in keyof T & string]?: SortDirection } & { [path: DottedPath]: SortDirection | undefined };

export interface QueryOptions<T> {
  filter?: Filter<T>;
  sort?: Sort<T>;
  limit?: number;
  offset?: number;
}

/** A top-level field or a dotted path of T, as `fields` takes them. */
export type FieldPath<T> = (keyof T & string) | DottedPath;

/** What a projection on fields F leaves of T: the top-level fields named, and the id. */
export type Projected<T, F extends FieldPath<T>> = Pick<T, Extract<F, keyof T> | ("id" & keyof T)>;

/** findPage's options: findMany's, with `after` (a page's `next`) instead of offset. */
export interface PageOptions<T> extends Omit<QueryOptions<T>, "offset"> {
  after?: string | null;
}

/** One page of findPage; next is null after the last page. */
export interface Page<R> {
  items: R[];
  /** The version of each item (see getWithVersion). */
  versions: number[];
  next: string | null;
}

type NonId<T> = Exclude<keyof T & string, "id">;
type NumericKeys<T> = { [K in NonId<T>]-?: NonNullable<T[K]> extends number ? K : never }[NonId<T>];
type ArrayKeys<T> = { [K in NonId<T>]-?: NonNullable<T[K]> extends ReadonlyArray<unknown> ? K : never }[NonId<T>];
type ElemOf<V> = NonNullable<V> extends ReadonlyArray<infer E> ? E : never;

/**
 * Update operators (MongoDB's): `$inc` takes only numeric fields of T,
 * `$push`/`$pull`/`$addToSet` only array fields, with their element type.
 * Dotted paths, whose type TypeScript cannot follow, take any operand the
 * operator allows; the daemon checks them (`invalid_argument`).
 */
export interface UpdateOperators<T> {
  $set?: { [K in NonId<T>]?: T[K] } & { [path: DottedPath]: unknown };
  $unset?: { [K in NonId<T>]?: true | "" } & { [path: DottedPath]: true | "" };
  $inc?: { [K in NumericKeys<T>]?: number } & { [path: DottedPath]: number };
  $push?: { [K in ArrayKeys<T>]?: ElemOf<T[K]> | { $each: ReadonlyArray<ElemOf<T[K]>> } } & { [path: DottedPath]: unknown };
  $pull?: { [K in ArrayKeys<T>]?: Extract<ElemOf<T[K]>, Scalar> } & { [path: DottedPath]: Scalar };
  $addToSet?: { [K in ArrayKeys<T>]?: Extract<ElemOf<T[K]>, Scalar> | { $each: ReadonlyArray<Extract<ElemOf<T[K]>, Scalar>> } } & {
    [path: DottedPath]: Scalar | { $each: ReadonlyArray<Scalar> };
  };
}

/** A PATCH: a shallow merge of top-level fields, or update operators. */
export type Update<T> = Partial<Omit<T, "id">> | UpdateOperators<T>;

/** When a record expires: ttlMs from now, or at expiresAt. */
export interface ExpiryOptions {
  ttlMs?: number;
  expiresAt?: Date | string;
}

/** Options of update: a condition on the version, and an expiry. */
export interface UpdateOptions extends ExpiryOptions {
  /** Refuse (ConflictError, nothing changed) unless the record is at this version. */
  ifVersion?: number;
}

/** Options of upsert. */
export interface UpsertOptions extends ExpiryOptions {
  ifVersion?: number;
  /** Create only: ConflictError if the id is taken (If-None-Match: *). */
  ifAbsent?: boolean;
}

/** One operation of batch. */
export type BatchOp<T> =
  | ({ op: "create"; id?: string; data: Omit<T, "id"> } & ExpiryOptions)
  | ({ op: "put"; id: string; data: Omit<T, "id">; ifVersion?: number; ifAbsent?: boolean } & ExpiryOptions)
  | ({ op: "update"; id: string; data: Update<T>; ifVersion?: number } & ExpiryOptions)
  | { op: "delete"; id: string; ifVersion?: number };

/** The outcome of one batch operation; record is absent for a delete. */
export interface BatchResult<T> {
  id: string;
  version?: number;
  created?: boolean;
  record?: T;
}

/** One write of the change stream. */
export interface Change {
  op: "create" | "update" | "delete";
  id: string;
  version: number;
  /** When it was committed (ISO 8601). */
  at: string;
}

export interface WatchOptions {
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** A `next` of GET …/changes to resume from; default: from now on. */
  after?: string;
  /** Long-poll wait per request; default 30 000. */
  waitMs?: number;
}

export interface IndexSpec<T> {
  fields: ReadonlyArray<(keyof T & string) | DottedPath>;
  unique?: boolean;
  /** Defaults to a name made from the fields. */
  name?: string;
}

/** One collection (the seed's Repository<T>, with issue 18's calls). */
export interface Repository<T extends { id: string }> {
  create(data: Omit<T, "id"> & { id?: string }, options?: ExpiryOptions): Promise<T>;
  findById(id: string): Promise<T | null>;
  findById<F extends FieldPath<T>>(id: string, options: { fields: ReadonlyArray<F> }): Promise<Projected<T, F> | null>;
  /** The record and its version (what ifVersion compares with), or null. */
  getWithVersion(id: string): Promise<{ record: T; version: number } | null>;
  findMany(options?: QueryOptions<T>): Promise<T[]>;
  findMany<F extends FieldPath<T>>(options: QueryOptions<T> & { fields: ReadonlyArray<F> }): Promise<Projected<T, F>[]>;
  /** A keyset page: pass the previous page's next as after; stable under concurrent inserts. */
  findPage(options?: PageOptions<T>): Promise<Page<T>>;
  findPage<F extends FieldPath<T>>(options: PageOptions<T> & { fields: ReadonlyArray<F> }): Promise<Page<Projected<T, F>>>;
  /** Records in the order of ids, null for missing ones (at most 1 000 ids). */
  getMany(ids: ReadonlyArray<string>): Promise<(T | null)[]>;
  getMany<F extends FieldPath<T>>(ids: ReadonlyArray<string>, options: { fields: ReadonlyArray<F> }): Promise<(Projected<T, F> | null)[]>;
  /** A shallow merge, or update operators; ifVersion makes it conditional. */
  update(id: string, data: Update<T>, options?: UpdateOptions): Promise<T>;
  /** Stores the whole record under id: created or replaced. */
  upsert(id: string, data: Omit<T, "id">, options?: UpsertOptions): Promise<T>;
  delete(id: string, options?: { ifVersion?: number }): Promise<void>;
  /** Applies update to every record matching filter, all or nothing. */
  updateMany(filter: Filter<T>, update: Update<T>): Promise<{ matched: number; modified: number }>;
  /** Deletes every record matching filter; returns how many. */
  deleteMany(filter: Filter<T>): Promise<number>;
  /** Up to 1 000 operations in one transaction: all or none. */
  batch(ops: ReadonlyArray<BatchOp<T>>): Promise<BatchResult<T>[]>;
  /** The collection's writes from now on (or after a cursor), as they commit, until signal aborts. */
  watch(options?: WatchOptions): AsyncIterable<Change>;
  count(filter?: Filter<T>): Promise<number>;
  ensureIndex(spec: IndexSpec<T>): Promise<void>;
  /** A typed query builder over findMany, findPage, count, updateMany and deleteMany (see Query). */
  query(): Query<T>;
}

/** The records port (the seed's RepositoryBackend). */
export interface RepositoryBackend {
  repository<T extends { id: string }>(collection: string): Repository<T>;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  transaction<R>(fn: (tx: RepositoryBackend) => Promise<R>): Promise<R>;
}

export interface TransactionOptions {
  /**
   * How many times fn runs again after a serialization conflict (a
   * ConflictError with `retryable`), with jittered exponential backoff;
   * default 20, 0 turns retrying off. Out of tries, the last ConflictError
   * is raised. fn must be safe to run again: only its daemon calls are
   * rolled back.
   */
  retries?: number;
}

/**
 * A queue seen from inside a transaction: its jobs and completions commit
 * or roll back with the transaction's records. The daemon refuses these
 * calls (ValidationError) where the jobs do not live in the records'
 * database (GET /v1/info says `transactionalJobs`).
 */
export interface TxQueue<T, R = unknown> {
  /** Adds a job that no dequeue sees before the transaction commits. */
  enqueue(data: T, options?: EnqueueOptions): Promise<string>;
  enqueueMany(jobs: ReadonlyArray<{ data: T } & EnqueueOptions>): Promise<string[]>;
  /** Completes a claimed job at commit; a rollback leaves it processing under its lease. */
  acknowledge(job: Job<T> | string, result?: R): Promise<void>;
  /** Fails a claimed job at commit (retried or dead-lettered as outside a transaction). */
  fail(job: Job<T> | string, error: Error, retry?: boolean): Promise<void>;
}

/** What transaction(fn) hands to fn on storaged: records and, in the same transaction, jobs. */
export interface Transaction extends RepositoryBackend {
  queue<T = unknown, R = unknown>(name?: string): TxQueue<T, R>;
}

/** The RepositoryBackend the client and its Fastify plugin provide: transactions can hold jobs and retry themselves. */
export interface StoragedRepositoryBackend extends RepositoryBackend {
  transaction<R>(fn: (tx: Transaction) => Promise<R>, options?: TransactionOptions): Promise<R>;
}

export enum JobStatus {
  PENDING = "pending",
  PROCESSING = "processing",
  COMPLETED = "completed",
  FAILED = "failed",
  CANCELLED = "cancelled",
}

export interface Backoff {
  type: "exponential" | "fixed";
  delayMs?: number;
  maxDelayMs?: number;
}

export interface EnqueueOptions {
  /** When the job becomes ready; or use delayMs. */
  runAt?: Date | string;
  delayMs?: number;
  /** Higher runs first; default 0. */
  priority?: number;
  /** Default 3. */
  maxAttempts?: number;
  backoff?: Backoff;
  /** While a job with this key is pending or processing, enqueue returns its id. Shorthand for `unique: { key }`. */
  key?: string;
  /** Uniqueness with rules; give key or unique, not both. */
  unique?: UniqueOptions;
  /**
   * A handler of this job still running after this long (1 to 2^31-1 ms)
   * has its signal aborted and the attempt failed with a JobTimeoutError,
   * retried per the job's policy. Kept with the job; it wins over work()'s
   * timeoutMs.
   */
  timeoutMs?: number;
  /**
   * The W3C trace context to keep with the job; the worker's span for it
   * links to it. Default: the active OpenTelemetry span's, when
   * @opentelemetry/api is installed and a span is active.
   */
  traceparent?: string;
}

/**
 * While the key is held, enqueue adds nothing and returns the holder's id.
 * An active (pending or processing) job always holds its key; the last job
 * enqueued with the key also holds it while its status is in `states`, or
 * for `periodMs` after it was created.
 */
export interface UniqueOptions {
  key: string;
  /** Statuses that hold the key, e.g. ["completed"] so that a webhook delivered twice runs once. */
  states?: JobStatus[];
  /** The key stays held this long after the holder was created, whatever its status. */
  periodMs?: number;
  /**
   * What a duplicate does to a pending holder: "keep" (default) nothing,
   * "replace" sets its data and run time to the duplicate's, "debounce"
   * moves its run time to the duplicate's (now + delayMs).
   */
  mode?: "keep" | "replace" | "debounce";
}

export interface DequeueOptions {
  /** Wait up to this long for a job (max 60 000); default: answer at once. */
  waitMs?: number;
  /** Lease length; default 30 000. */
  leaseMs?: number;
}

export interface JobError {
  name: string;
  message: string;
  stack?: string;
}

/** What a handler reports while it runs: a percentage (0-100) or any object. */
export type JobProgress = number | { [key: string]: unknown };

/** T is the job's data, R its result (what the handler returned). */
export interface Job<T, R = unknown> {
  id: string;
  queue: string;
  data: T;
  status: JobStatus;
  priority: number;
  attempts: number;
  maxAttempts: number;
  backoff: Required<Backoff>;
  key?: string;
  runAt: Date;
  createdAt: Date;
  updatedAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  leaseExpiresAt?: Date;
  /** The claim's fencing token; only on jobs returned by dequeue. */
  lease?: string;
  lastError?: JobError;
  /** What the handler returned (or acknowledge was given), once completed. */
  result?: R;
  /** The last progress of the current (or last) attempt. */
  progress?: JobProgress;
  /** The job's own timeout (enqueue's timeoutMs), if it has one. */
  timeoutMs?: number;
  /** The trace context of whoever enqueued it, if any. */
  traceparent?: string;
}

/** What happened to a job, as a queue's event feed tells it. */
export type QueueEventType = "enqueued" | "started" | "progress" | "completed" | "failed" | "retried" | "released" | "cancelled";

/**
 * One event of queue.events(): a job's latest transition. The feed keeps
 * one entry per job (its latest), so a reader that falls behind sees each
 * job's current state once rather than every step; events live as long
 * as their jobs.
 */
export interface QueueEvent<R = unknown> {
  type: QueueEventType;
  jobId: string;
  at: Date;
  /** The job's attempt count when it happened. */
  attempt: number;
  /** With "completed": the job's result. */
  result?: R;
  /** With "progress": what the handler reported. */
  progress?: JobProgress;
  /** With "failed" and "retried": the error of the attempt. */
  error?: JobError;
  /** Pass as events({ after }) to go on after this event (also after a restart, on any daemon). */
  cursor: string;
}

export interface EventsOptions {
  /** A cursor of an earlier event; default: from now. */
  after?: string;
  /** Ends the iteration (it then returns without an error). */
  signal?: AbortSignal;
  /** Long-poll wait per request (max 60 000); default 30 000. */
  waitMs?: number;
}

/** What a handler gets beside its job. */
export interface JobContext {
  /**
   * Aborted when the worker learns its claim is gone (the job was
   * cancelled, or its lease ran out and another worker has it), as soon as
   * a heartbeat or a progress report says so.
   */
  signal: AbortSignal;
  /** Reports progress (and renews the lease); see JobQueue.progress. */
  progress: (progress: JobProgress) => Promise<void>;
}

export interface QueueStats {
  queue: string;
  pending: number;
  processing: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** The queue is paused (queue.pause()): it hands out no jobs until resumed. */
  paused: boolean;
}

/** At most max claims per window of durationMs (windows aligned on the Unix epoch), across every daemon. */
export interface RateLimit {
  max: number;
  durationMs: number;
}

/** When a schedule fires: a cron expression (5 fields, or 6 with seconds first; @daily and the like) in a time zone, or an interval. */
export type ScheduleTiming = { cron: string; tz?: string } | { everyMs: number };

export interface ScheduleOptions {
  priority?: number;
  maxAttempts?: number;
  backoff?: Backoff;
  /** "skip": no new job while the schedule's previous one is pending or processing; "allow" (default): one job per slot. */
  overlap?: "skip" | "allow";
  /** How far back slots missed while no daemon ran are caught up; default 0: only the latest missed slot runs. */
  backfillMs?: number;
}

/** A recurring schedule: a job enqueued into its queue at every slot, by exactly one daemon. */
export interface Schedule<T = unknown> {
  queue: string;
  name: string;
  cron?: string;
  tz?: string;
  everyMs?: number;
  data: T;
  priority: number;
  maxAttempts: number;
  backoff: Backoff;
  overlap: "skip" | "allow";
  backfillMs: number;
  /** The next slot. */
  next: Date;
  lastJobId?: string;
  lastRunAt?: Date;
  createdAt: Date;
  updatedAt: Date;
}

/** A queue's flow control, kept by the daemon in the shared store and enforced across every daemon and worker. */
export interface QueueSettings {
  /** Paused queues hand out no jobs; enqueues and claims already made go on. */
  paused: boolean;
  /** The most jobs of the queue processing at once (null: no limit). */
  concurrency: number | null;
  /** The most claims per window (null: no limit). */
  rateLimit: RateLimit | null;
}

export interface WorkOptions {
  /** Handlers run at once; default 1. */
  concurrency?: number;
  /**
   * The most claims held beyond those running, so that the next job is at
   * hand when a handler finishes and one dequeue brings many jobs
   * (DESIGN §3a). Below it the worker holds what its handlers finish in two
   * dequeue round trips, never more than they finish in a third of the
   * lease; waiting claims are renewed with the running ones and stop()
   * hands them back. Default 3 000 (three of the largest batches; at most
   * 10 000); 0 claims only what can start at once. See README, "Tuning
   * workers".
   */
  prefetch?: number;
  /** Lease per claim; heartbeats renew it at a third of its length. Default 30 000. */
  leaseMs?: number;
  /** Long-poll wait per dequeue; default 30 000. */
  waitMs?: number;
  /**
   * A handler still running after this long has its signal aborted (with
   * a JobTimeoutError) and its job failed with that error, retried per the
   * job's policy. A job enqueued with its own timeoutMs uses that instead.
   * Default 0: no timeout.
   */
  timeoutMs?: number;
  /** Called with errors the loop survives (daemon unreachable, lost lease). */
  onError?: (err: unknown) => void;
}

export interface Worker {
  /**
   * Stops taking jobs: hands prefetched claims back at once (release),
   * waits for the jobs in flight and sends their outcomes, then resolves.
   */
  stop(): Promise<void>;
}

/** One item of failMany. */
export interface FailItem<T> {
  job: Job<T> | string;
  error: Error;
  /** Default true. */
  retry?: boolean;
}

/**
 * The outcome of one item of a batch call, in request order: null when it
 * was done, else the error that call alone would have raised (a stale
 * lease is a ConflictError, an unknown job a NotFoundError).
 */
export type ItemResult = StorageError | null;

/** A queue (the seed's JobQueue<T> with DESIGN's extensions); R is its jobs' result. */
export interface JobQueue<T, R = unknown> {
  enqueue(data: T, options?: EnqueueOptions): Promise<string>;
  enqueueMany(jobs: ReadonlyArray<{ data: T } & EnqueueOptions>): Promise<string[]>;
  dequeue(options?: DequeueOptions): Promise<Job<T> | null>;
  /**
   * Completes a claimed job. Pass the Job that dequeue returned: it settles
   * exactly that claim (a stale one gets ConflictError). The seed's
   * `acknowledge(job.id)` settles the one claim this client holds for the
   * id, and is refused with ConflictError while it holds more than one (the
   * job's lease ran out and another loop of this process claimed it again).
   * The same holds for fail and heartbeat.
   */
  acknowledge(job: Job<T> | string, result?: R): Promise<void>;
  /** Fails a claimed job: pending again after its backoff while attempts remain (retry), else failed. */
  fail(job: Job<T> | string, error: Error, retry?: boolean): Promise<void>;
  getStatus(jobId: string): Promise<JobStatus | null>;
  getJob(jobId: string): Promise<Job<T, R> | null>;
  /**
   * Waits until the job is completed, failed or cancelled and returns it
   * (with its result or lastError); null if it is still pending or
   * processing after timeoutMs (default 30 000). Woken by the finish, on
   * any daemon sharing the database.
   */
  waitFor(jobId: string, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Job<T, R> | null>;
  /** Reports a claim's progress (0-100 or an object) and extends its lease like heartbeat. */
  progress(job: Job<T> | string, progress: JobProgress, leaseMs?: number): Promise<void>;
  /** Extends a claim's lease to now + leaseMs (default: the claim's own leaseMs). */
  heartbeat(job: Job<T> | string, leaseMs?: number): Promise<void>;
  cancel(jobId: string): Promise<void>;
  stats(): Promise<QueueStats>;
  listFailed(options?: { limit?: number; offset?: number }): Promise<Job<T>[]>;
  retryFailed(jobId: string): Promise<void>;
  /** Deletes the queue's dead letters; returns how many. */
  purgeFailed(): Promise<number>;
  /** Stops the queue handing out jobs, on every daemon, until resume(); enqueues still work. */
  pause(): Promise<void>;
  /** Undoes pause(); waiting workers get jobs at once. */
  resume(): Promise<void>;
  /**
   * Replaces the queue's flow control settings and returns them: what is
   * left out is "no limit" and not paused.
   */
  configure(settings: Partial<QueueSettings>): Promise<QueueSettings>;
  /** The queue's flow control settings. */
  settings(): Promise<QueueSettings>;
  /**
   * Creates or replaces the recurring schedule `name` of this queue. Calling
   * it again with the same arguments changes nothing, so apps may call it
   * at every start.
   */
  schedule(name: string, timing: ScheduleTiming, data: T, options?: ScheduleOptions): Promise<Schedule<T>>;
  /** Deletes a schedule (NotFoundError if there is none). */
  unschedule(name: string): Promise<void>;
  /** The queue's schedules, by name. */
  schedules(): Promise<Schedule<T>[]>;
  /**
   * The queue's events from now (or after a cursor) as they happen, until
   * signal aborts: long polls that a transition on any daemon answers.
   * Not on SQS (jobCapabilities.events).
   */
  events(options?: EventsOptions): AsyncIterableIterator<QueueEvent<R>>;
  /** Runs handler on each job; what it returns becomes the job's result. */
  work(handler: (job: Job<T>, context: JobContext) => Promise<R | void>, options?: WorkOptions): Worker;
  /** A keyset page of the queue's jobs by status, key and data (issue 20). */
  findJobs(options?: FindJobsOptions<T>): Promise<JobPage<T, R>>;
  /** Retries failed and cancelled jobs (attempts back to 0). */
  retryJobs(selection: JobSelection<T>): Promise<BulkResult>;
  /** Cancels pending and processing jobs. */
  cancelJobs(selection: JobSelection<T>): Promise<BulkResult>;
  /** Deletes jobs that are not processing. */
  deleteJobs(selection: JobSelection<T>): Promise<BulkResult>;
  /** Reschedules, reprioritises or rewrites a pending job (ConflictError otherwise) and returns it. */
  updateJob(jobId: string, patch: JobPatch<T>): Promise<Job<T, R>>;

  // Batches (DESIGN §3a): one call, many jobs, one outcome per item.

  /** Claims up to max (1-1 000) ready jobs in claim order; [] when none came within waitMs. */
  dequeueMany(max: number, options?: DequeueOptions): Promise<Job<T>[]>;
  /** results[i], if given, is jobs[i]'s result. */
  acknowledgeMany(jobs: ReadonlyArray<Job<T> | string>, results?: ReadonlyArray<R | undefined>): Promise<ItemResult[]>;
  failMany(items: ReadonlyArray<FailItem<T>>): Promise<ItemResult[]>;
  /** Extends each claim's lease to now + leaseMs (default: each claim's own leaseMs). */
  heartbeatMany(jobs: ReadonlyArray<Job<T> | string>, leaseMs?: number): Promise<ItemResult[]>;
  /** Hands a claim back unstarted: pending again at once, its attempt not counted. */
  release(job: Job<T> | string): Promise<void>;
  releaseMany(jobs: ReadonlyArray<Job<T> | string>): Promise<ItemResult[]>;
}

// Browsing jobs (issue 20): find, bulk actions, edits.

/** The time a find orders jobs by: runAt orders pending jobs, createdAt processing, failed and cancelled ones, finishedAt finished ones. */
export type JobSort = "createdAt" | "runAt" | "finishedAt";

/** What POST /v1/queues/{q}/jobs/find selects. */
export interface FindJobsOptions<T> {
  /** One status or several; none: every status the sort orders. */
  status?: JobStatus | JobStatus[];
  /** The jobs enqueued with this dedupe key. */
  key?: string;
  /** The records' filter language, over the job's data. */
  filter?: T extends object ? Filter<T> : Filter<Record<string, unknown>>;
  /** Default: runAt for pending jobs, finishedAt when every status is finished, else createdAt. */
  sort?: JobSort;
  /** Default desc (newest first), asc for runAt (due soonest first). */
  order?: "asc" | "desc";
  /** 1-1000, default 50. */
  limit?: number;
  /** The previous page's next. */
  after?: string;
}

/** A page of jobs: next is null after the last page. A page may hold fewer jobs than the limit, even none, while next is set. */
export interface JobPage<T, R = unknown> {
  jobs: Job<T, R>[];
  next: string | null;
}

/** The jobs a bulk action takes: ids (1-1000), or a status with an optional key and filter. */
export type JobSelection<T> =
  | { ids: string[] }
  | { status: JobStatus | JobStatus[]; key?: string; filter?: FindJobsOptions<T>["filter"] };

/** What a bulk action did; more when it stopped after its time budget with jobs left (call again). */
export interface BulkResult {
  affected: number;
  more?: boolean;
}

/** PATCH /v1/jobs/{id}: what to change in a pending job. */
export interface JobPatch<T> {
  runAt?: Date;
  priority?: number;
  data?: T;
}

/** One queue of GET /v1/queues. */
export interface QueueOverview {
  queue: string;
  stats: QueueStats;
  /** null where the job queue keeps no settings. */
  settings: QueueSettings | null;
  schedules: number;
  /** Jobs completed and failed in the last hour, in twelve windows of bucketMs, oldest first. */
  lastHour: { since: string; bucketMs: number; completed: number[]; failed: number[] } | null;
}

/** One collection of GET /v1/repos. */
export interface CollectionOverview {
  collection: string;
  count: number;
  indexes: Array<{ name: string; fields: string[]; unique: boolean }>;
}

/** The jobs port (the seed's JobQueueBackend). */
export interface JobQueueBackend {
  /** The seed declares `T = any`; unknown keeps `any` out of the public types. */
  queue<T = unknown, R = unknown>(name?: string): JobQueue<T, R>;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}
