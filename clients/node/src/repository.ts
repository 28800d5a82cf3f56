import { createHash } from "node:crypto";
import { Claims } from "./claims.js";
import { StorageUnavailableError, ValidationError } from "./errors.js";
import type { SocketJobQueueBackend } from "./jobqueue.js";
import { Query } from "./query.js";
import { isRetryable, retriesOption, retryDelayMs } from "./retry.js";
import { seg, Transport, type TransportOptions } from "./transport.js";
import { SocketTxQueue, TxClaims } from "./txqueue.js";
import type {
  Filter,
  IndexSpec,
  QueryOptions,
  Repository,
  RepositoryBackend,
  StoragedRepositoryBackend,
  Transaction,
  TransactionOptions,
  TxQueue,
} from "./types.js";

/** A Repository<T> served by the daemon; tx binds every call to a transaction. */
class SocketRepository<T extends { id: string }> implements Repository<T> {
  private readonly base: string;
  constructor(
    private readonly transport: () => Transport,
    collection: string,
    private readonly tx?: string,
  ) {
    this.base = `/v1/repos/${seg(collection)}`;
  }

  private req(method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE", path: string, body?: unknown) {
    return this.transport().request(method, path, body, this.tx ? { tx: this.tx } : {});
  }

  async create(data: Omit<T, "id"> & { id?: string }): Promise<T> {
    const res = await this.req("POST", this.base, data);
    return JSON.parse(res.body) as T;
  }

  async findById(id: string): Promise<T | null> {
    try {
      const res = await this.req("GET", `${this.base}/${seg(id)}`);
      return JSON.parse(res.body) as T;
    } catch (err) {
      if ((err as { code?: string }).code === "not_found") return null;
      throw err;
    }
  }

  async findMany(options: QueryOptions<T> = {}): Promise<T[]> {
    const res = await this.req("POST", `${this.base}/find`, options);
    return JSON.parse(res.body) as T[];
  }

  async update(id: string, data: Partial<Omit<T, "id">>): Promise<T> {
    const res = await this.req("PATCH", `${this.base}/${seg(id)}`, data);
    return JSON.parse(res.body) as T;
  }

  async delete(id: string): Promise<void> {
    await this.req("DELETE", `${this.base}/${seg(id)}`);
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
