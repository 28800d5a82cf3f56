import { createHash } from "node:crypto";
import { Claims } from "./claims.js";
import { StorageUnavailableError, ValidationError } from "./errors.js";
import type { SocketJobQueueBackend } from "./jobqueue.js";
import { Query } from "./query.js";
import { isRetryable, retriesOption, retryDelayMs } from "./retry.js";
import { seg, Transport, type TransportOptions } from "./transport.js";
import { SocketTxQueue, TxClaims } from "./txqueue.js";
import type {
  BatchOp,
  BatchResult,
  Change,
  ExpiryOptions,
  FieldPath,
  Filter,
  IndexSpec,
  Page,
  PageOptions,
  Projected,
  QueryOptions,
  Repository,
  StoragedRepositoryBackend,
  Transaction,
  TransactionOptions,
  TxQueue,
  Update,
  UpdateOptions,
  UpsertOptions,
  WatchOptions,
} from "./types.js";

/** If-Match for a version condition. */
function ifMatch(version: number | undefined): Record<string, string> | undefined {
  return version === undefined ? undefined : { "if-match": `"${version}"` };
}

/** ?ttlMs= or ?expiresAt= of a write. */
function expiryQuery(o: ExpiryOptions): string {
  if (o.ttlMs !== undefined) return `?ttlMs=${encodeURIComponent(String(o.ttlMs))}`;
  if (o.expiresAt !== undefined) {
    const at = o.expiresAt instanceof Date ? o.expiresAt.toISOString() : o.expiresAt;
    return `?expiresAt=${encodeURIComponent(at)}`;
  }
  return "";
}

/** A Repository<T> served by the daemon; tx binds every call to a transaction. */
class SocketRepository<T extends { id: string }> implements Repository<T> {
  private readonly base: string;
  /** The options of a call without headers of its own, made once. */
  private readonly plain: { tx?: string };
  constructor(
    private readonly transport: () => Transport,
    collection: string,
    private readonly tx?: string,
  ) {
    this.base = `/v1/repos/${seg(collection)}`;
    this.plain = tx ? { tx } : {};
  }

  private req(method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE", path: string, body?: unknown, headers?: Record<string, string>) {
    return this.transport().request(method, path, body, headers ? { ...this.plain, headers } : this.plain);
  }

  async create(data: Omit<T, "id"> & { id?: string }, options: ExpiryOptions = {}): Promise<T> {
    const res = await this.req("POST", this.base + expiryQuery(options), data);
    return JSON.parse(res.body) as T;
  }

  findById(id: string): Promise<T | null>;
  findById<F extends FieldPath<T>>(id: string, options: { fields: ReadonlyArray<F> }): Promise<Projected<T, F> | null>;
  async findById(id: string, options?: { fields: ReadonlyArray<string> }): Promise<unknown> {
    const q = options?.fields ? `?fields=${encodeURIComponent(options.fields.join(","))}` : "";
    try {
      const res = await this.req("GET", `${this.base}/${seg(id)}${q}`);
      return JSON.parse(res.body) as unknown;
    } catch (err) {
      if ((err as { code?: string }).code === "not_found") return null;
      throw err;
    }
  }

  async getWithVersion(id: string): Promise<{ record: T; version: number } | null> {
    const res = await this.req("POST", `${this.base}/get`, { ids: [id] });
    const { items, versions } = JSON.parse(res.body) as { items: (T | null)[]; versions: (number | null)[] };
    const record = items[0];
    const version = versions[0];
    return record && version != null ? { record, version } : null;
  }

  findMany(options?: QueryOptions<T>): Promise<T[]>;
  findMany<F extends FieldPath<T>>(options: QueryOptions<T> & { fields: ReadonlyArray<F> }): Promise<Projected<T, F>[]>;
  async findMany(options: QueryOptions<T> & { fields?: ReadonlyArray<string> } = {}): Promise<unknown[]> {
    const res = await this.req("POST", `${this.base}/find`, options);
    return JSON.parse(res.body) as unknown[];
  }

  findPage(options?: PageOptions<T>): Promise<Page<T>>;
  findPage<F extends FieldPath<T>>(options: PageOptions<T> & { fields: ReadonlyArray<F> }): Promise<Page<Projected<T, F>>>;
  async findPage(options: PageOptions<T> & { fields?: ReadonlyArray<string> } = {}): Promise<Page<unknown>> {
    const { after, ...rest } = options;
    const body = after ? { ...rest, after } : { ...rest, page: true };
    const res = await this.req("POST", `${this.base}/find`, body);
    return JSON.parse(res.body) as Page<unknown>;
  }

  getMany(ids: ReadonlyArray<string>): Promise<(T | null)[]>;
  getMany<F extends FieldPath<T>>(ids: ReadonlyArray<string>, options: { fields: ReadonlyArray<F> }): Promise<(Projected<T, F> | null)[]>;
  async getMany(ids: ReadonlyArray<string>, options?: { fields: ReadonlyArray<string> }): Promise<unknown[]> {
    const res = await this.req("POST", `${this.base}/get`, options?.fields ? { ids, fields: options.fields } : { ids });
    return (JSON.parse(res.body) as { items: unknown[] }).items;
  }

  async update(id: string, data: Update<T>, options: UpdateOptions = {}): Promise<T> {
    const res = await this.req("PATCH", `${this.base}/${seg(id)}${expiryQuery(options)}`, data, ifMatch(options.ifVersion));
    return JSON.parse(res.body) as T;
  }

  async upsert(id: string, data: Omit<T, "id">, options: UpsertOptions = {}): Promise<T> {
    const headers = { ...ifMatch(options.ifVersion), ...(options.ifAbsent ? { "if-none-match": "*" } : {}) };
    const res = await this.req("PUT", `${this.base}/${seg(id)}${expiryQuery(options)}`, data, headers);
    return JSON.parse(res.body) as T;
  }

  async delete(id: string, options: { ifVersion?: number } = {}): Promise<void> {
    await this.req("DELETE", `${this.base}/${seg(id)}`, undefined, ifMatch(options.ifVersion));
  }

  async updateMany(filter: Filter<T>, update: Update<T>): Promise<{ matched: number; modified: number }> {
    const res = await this.req("POST", `${this.base}/updateMany`, { filter, update });
    return JSON.parse(res.body) as { matched: number; modified: number };
  }

  async deleteMany(filter: Filter<T>): Promise<number> {
    const res = await this.req("POST", `${this.base}/deleteMany`, { filter });
    return (JSON.parse(res.body) as { deleted: number }).deleted;
  }

  async batch(ops: ReadonlyArray<BatchOp<T>>): Promise<BatchResult<T>[]> {
    const wire = ops.map((o) => {
      const { ifVersion, ifAbsent, expiresAt, ...rest } = o as BatchOp<T> & UpsertOptions;
      return {
        ...rest,
        ...(ifVersion !== undefined ? { ifMatch: ifVersion } : {}),
        ...(ifAbsent ? { ifNoneMatch: true } : {}),
        ...(expiresAt !== undefined ? { expiresAt: expiresAt instanceof Date ? expiresAt.toISOString() : expiresAt } : {}),
      };
    });
    const res = await this.req("POST", `${this.base}/batch`, wire);
    return (JSON.parse(res.body) as { results: BatchResult<T>[] }).results;
  }

  async *watch(options: WatchOptions = {}): AsyncIterable<Change> {
    const waitMs = options.waitMs ?? 30_000;
    let after = options.after;
    const signal = options.signal;
    while (!signal?.aborted) {
      const q = new URLSearchParams({ waitMs: String(waitMs) });
      if (after !== undefined) q.set("after", after);
      let res;
      try {
        res = await this.transport().request("GET", `${this.base}/changes?${q.toString()}`, undefined, { waitMs, ...(signal ? { signal } : {}) });
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      const page = JSON.parse(res.body) as { changes: Change[]; next: string };
      after = page.next;
      for (const c of page.changes) {
        if (signal?.aborted) return;
        yield c;
      }
    }
  }

  async count(filter?: Filter<T>): Promise<number> {
    const res = await this.req("POST", `${this.base}/count`, filter === undefined ? {} : { filter });
    return (JSON.parse(res.body) as { count: number }).count;
  }

  query(): Query<T> {
    return Query.of<T>(this);
  }

  async ensureIndex(spec: IndexSpec<T>): Promise<void> {
    const name = spec.name ?? defaultIndexName(spec);
    await this.req("PUT", `${this.base}/indexes/${seg(name)}`, { fields: spec.fields, unique: spec.unique ?? false });
  }
}

/**
 * The name ensureIndex gives a spec without one: readable fields, then a
 * hash of the exact spec. The readable part alone is ambiguous (["a", "b"],
 * ["a_b"] and ["a.b"] all read a_b) and may be cut to fit the 128-character
 * limit, so the hash is what keeps two specs from sharing a name, which the
 * daemon would refuse as "exists with another definition". The characters
 * are the daemon's name rule: [A-Za-z0-9_.:-], a letter first.
 */
export function defaultIndexName(spec: { fields: ReadonlyArray<string>; unique?: boolean }): string {
  const canonical = JSON.stringify({ fields: spec.fields, unique: spec.unique ?? false });
  const hash = createHash("sha256").update(canonical).digest("hex").slice(0, 12);
  const readable = spec.fields.join("_").replace(/[^A-Za-z0-9_]/g, "_") + (spec.unique ? "_u" : "");
  return `idx_${readable.slice(0, 128 - 4 - 1 - hash.length)}_${hash}`;
}

/**
 * The seed's RepositoryBackend, served by storaged over its Unix socket.
 * `transaction(fn)` holds a daemon-side transaction: committed when fn
 * resolves, rolled back when it throws, and run again (up to `retries`
 * times) when it loses a serialization race. Its `tx` also reaches the
 * job queue (`tx.queue(name)`), when the daemon keeps jobs in the same
 * database as records.
 */
export class SocketRepositoryBackend implements StoragedRepositoryBackend {
  protected transportOptions: TransportOptions;
  private t: Transport | undefined;
  private jobs: SocketJobQueueBackend | undefined;

  constructor(options: TransportOptions = {}) {
    this.transportOptions = options;
  }

  /** The socket this backend talks to (after connect). */
  get socketPath(): string | undefined {
    return this.t?.socketPath;
  }

  protected transport = (): Transport => {
    if (!this.t) {
      throw new StorageUnavailableError("repository backend is not connected: call connect() first");
    }
    return this.t;
  };

  /**
   * @internal Lets transactions settle the claims that this job queue's
   * dequeues hold (tx.queue(name).acknowledge(job.id)). createStorage and
   * the Fastify plugin link the two; nobody else needs to.
   */
  linkJobQueue(jobs: SocketJobQueueBackend): void {
    this.jobs = jobs;
  }

  repository<T extends { id: string }>(collection: string): Repository<T> {
    return new SocketRepository<T>(this.transport, collection);
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

  async disconnect(): Promise<void> {
    const t = this.t;
    this.t = undefined;
    await t?.close();
  }

  async transaction<R>(fn: (tx: Transaction) => Promise<R>, options: TransactionOptions = {}): Promise<R> {
    const retries = retriesOption(options.retries);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(fn);
      } catch (err) {
        if (attempt >= retries || !isRetryable(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs(attempt)));
      }
    }
  }

  private async once<R>(fn: (tx: Transaction) => Promise<R>): Promise<R> {
    const t = this.transport();
    const res = await t.request("POST", "/v1/tx");
    const id = (JSON.parse(res.body) as { id: string }).id;
    const claims = new TxClaims(this.jobs?.claimBook() ?? new Claims());
    const tx = new TxBackend(this.transport, id, claims, () => this.checkJobs(t));
    let result: R;
    try {
      result = await fn(tx);
    } catch (err) {
      tx.ended = true;
      try {
        await t.request("POST", `/v1/tx/${seg(id)}/rollback`);
      } catch {
        // The daemon may have rolled it back already (idle timeout, or the
        // statement that failed ended it); the caller's error is the one
        // that matters.
      }
      throw err;
    }
    tx.ended = true;
    await t.request("POST", `/v1/tx/${seg(id)}/commit`);
    claims.committed();
    return result;
  }

  /**
   * tx.queue() sends job calls to the daemon that holds the transaction.
   * If this client's job queue talks to another daemon (two Memory
   * backends, each with its own private daemon), a transactional job
   * would land where no worker of this client looks: refuse that.
   */
  private checkJobs(t: Transport): void {
    const jobs = this.jobs?.socketPath;
    if (jobs !== undefined && jobs !== t.socketPath) {
      throw new ValidationError(
        `tx.queue() needs the job queue on the transaction's daemon: records use ${t.socketPath}, jobs use ${jobs} ` +
          "(for Memory backends, createMemoryStorage() gives both one daemon)",
      );
    }
  }
}

/** The Transaction handed to a transaction callback. */
class TxBackend implements Transaction {
  ended = false;
  constructor(
    private readonly transport: () => Transport,
    private readonly id: string,
    private readonly claims: TxClaims,
    private readonly checkJobs: () => void,
  ) {}

  repository<T extends { id: string }>(collection: string): Repository<T> {
    return new SocketRepository<T>(this.transport, collection, this.id);
  }

  queue<T = unknown, R = unknown>(name = "default"): TxQueue<T, R> {
    this.checkJobs();
    return new SocketTxQueue<T, R>(this.transport, this.id, name, this.claims);
  }

  async connect(): Promise<void> {}
  async disconnect(): Promise<void> {}

  /** A nested transaction joins this one (it neither commits nor retries on its own). */
  async transaction<R>(fn: (tx: Transaction) => Promise<R>): Promise<R> {
    return fn(this);
  }
}
