import { errorFromResponse, StorageError, StorageUnavailableError, ValidationError } from "./errors.js";
import { HttpPool, type Timeout } from "./http.js";
import { assertCompatible } from "./version.js";

export interface TransportOptions {
  socketPath?: string;
  /** Connections for ordinary calls; default 32. */
  connections?: number;
  /**
   * How many ordinary calls may be in flight on one connection once all
   * `connections` are busy (HTTP/1.1 pipelining); default 4, 1 turns it
   * off. Pipelined calls share one write and one read on each side, which
   * cut the CPU time of a call at 64 in flight by about a third; the price
   * is that a call queued behind a slow one on its connection waits for
   * it, and that when a call on a connection times out, the calls
   * pipelined behind it fail with it (StorageUnavailableError: a write
   * among them may have been applied).
   */
  pipelining?: number;
  /**
   * Returns the W3C traceparent of the caller's current span (e.g. from
   * OpenTelemetry); it is sent with each request and appears in the
   * daemon's log lines and spans for it.
   */
  traceparent?: () => string | undefined;
  /**
   * How long connect() waits for the daemon to accept and answer, and a
   * new connection to be accepted; default 5 000 ms. Past it, the call fails
   * with StorageUnavailableError naming the socket.
   */
  connectTimeoutMs?: number;
  /**
   * How long a call waits for its answer before it fails with
   * StorageUnavailableError; default 30 000 ms. A long poll (dequeue with
   * waitMs) gets its waitMs on top. The connection of a request that timed
   * out is closed, never reused. A write that timed out may still have
   * been applied.
   */
  requestTimeoutMs?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_PIPELINING = 4;

/** Timers take at most 2^31-1 ms; the longest long poll is added on top. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1 - 60_000;

function timeoutOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > MAX_TIMEOUT_MS) {
    throw new ValidationError(`${name} must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}, got ${value}`);
  }
  return value;
}

export interface Response {
  status: number;
  body: string;
}

/** The header that binds a repository call to a transaction. */
export const TX_HEADER = "storaged-tx";

/** Resolves the socket path: the option, else STORAGED_SOCKET. */
export function resolveSocketPath(socketPath?: string): string {
  const p = socketPath ?? process.env["STORAGED_SOCKET"];
  if (!p) {
    throw new StorageUnavailableError("no socket path: pass { socketPath } or set STORAGED_SOCKET");
  }
  return p;
}

/**
 * HTTP/1.1 over the daemon's Unix socket. Long polls get their own pool,
 * so that workers waiting for jobs never hold up ordinary calls.
 */
export class Transport {
  readonly socketPath: string;
  private readonly pool: HttpPool;
  private readonly pollPool: HttpPool;
  private readonly traceparent: (() => string | undefined) | undefined;
  private readonly connectTimeout: Timeout;
  private readonly requestTimeoutMs: number;
  /** The timeout of an ordinary call, made once rather than per call. */
  private readonly requestTimeout: Timeout;
  private closed = false;
  /**
   * Whether the daemon's job queue keeps results (GET /v1/info,
   * jobCapabilities.getJob): SQS cannot, and refuses an ack with one.
   */
  keepsResults = true;

  constructor(opts: TransportOptions = {}) {
    const connectMs = timeoutOption("connectTimeoutMs", opts.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS);
    this.requestTimeoutMs = timeoutOption("requestTimeoutMs", opts.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS);
    this.connectTimeout = { ms: connectMs, name: "connectTimeoutMs" };
    this.requestTimeout = { ms: this.requestTimeoutMs, name: "requestTimeoutMs" };
    this.socketPath = resolveSocketPath(opts.socketPath);
    const pipelining = opts.pipelining ?? DEFAULT_PIPELINING;
    if (!Number.isInteger(pipelining) || pipelining < 1 || pipelining > 64) {
      throw new ValidationError(`pipelining must be a whole number from 1 to 64, got ${pipelining}`);
    }
    this.pool = new HttpPool(this.socketPath, opts.connections ?? 32, connectMs, pipelining);
    this.pollPool = new HttpPool(this.socketPath, 0, connectMs);
    this.traceparent = opts.traceparent;
  }

  /**
   * The check of connect(): the daemon answers within connectTimeoutMs
   * (else StorageUnavailableError) and is of this client's release line
   * (else IncompatibleDaemonError naming both versions; see version.ts).
   */
  async ping(): Promise<void> {
    await this.request("GET", "/healthz", undefined, { timeout: this.connectTimeout });
    const res = await this.request("GET", "/v1/info", undefined, { timeout: this.connectTimeout });
    let version: unknown;
    try {
      const info = JSON.parse(res.body) as { version?: unknown; jobCapabilities?: { getJob?: boolean } };
      version = info.version;
      this.keepsResults = info.jobCapabilities?.getJob !== false;
    } catch (err) {
      throw new StorageUnavailableError(`${this.socketPath} answered GET /v1/info with no JSON: is it storaged?`, res.status, { cause: err });
    }
    assertCompatible(version, `on ${this.socketPath}`);
  }

  /** Sends a request; a non-2xx answer becomes the matching StorageError. */
  async request(
    method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE",
    path: string,
    body?: unknown,
    opts: { tx?: string; waitMs?: number; signal?: AbortSignal; timeout?: Timeout; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    if (this.closed) {
      throw new StorageUnavailableError(`the client for ${this.socketPath} is disconnected`);
    }
    let json: string | undefined;
    try {
      json = body === undefined ? undefined : JSON.stringify(body);
    } catch (err) {
      // A BigInt, a cycle, a throwing toJSON: the caller's value, not the daemon.
      throw new ValidationError(`the request body cannot be sent as JSON: ${(err as Error).message}`, undefined, "invalid_argument", { cause: err });
    }
    const poll = opts.waitMs !== undefined && opts.waitMs > 0;
    const timeout =
      opts.timeout ??
      (poll
        ? { ms: this.requestTimeoutMs + (Number.isFinite(opts.waitMs) ? Math.min(opts.waitMs ?? 0, 60_000) : 0), name: "requestTimeoutMs + waitMs" }
        : this.requestTimeout);
    let headers: Record<string, string> | undefined = opts.tx ? { [TX_HEADER]: opts.tx } : undefined;
    if (opts.headers) headers = { ...headers, ...opts.headers };
    const tp = this.traceparent?.();
    if (tp && /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(tp)) headers = { ...headers, traceparent: tp };
    let res;
    try {
      // A transaction's calls are never pipelined behind other calls (HttpPool.request).
      const alone = opts.tx !== undefined || path.startsWith("/v1/tx");
      res = await (poll ? this.pollPool : this.pool).request(method, path, json, headers, timeout, opts.signal, alone);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new StorageUnavailableError(`storaged is not answering on ${this.socketPath}: ${(err as Error).message}`, undefined, {
        cause: err,
      });
    }
    if (res.status >= 200 && res.status < 300) return res;
    throw parseError(res.status, res.body);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.pool.close();
      this.pollPool.close();
    }
    return Promise.resolve();
  }
}

function parseError(status: number, text: string): StorageError {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string; retryable?: boolean } };
    if (parsed.error) {
      return errorFromResponse(status, parsed.error.code, parsed.error.message ?? "", parsed.error.retryable === true);
    }
  } catch {
    // not the daemon's error body; fall through
  }
  return errorFromResponse(status, status === 503 ? "unavailable" : undefined, `storaged answered ${status}: ${text.slice(0, 200)}`);
}

/** Percent-encodes a path segment (ids may hold "/", spaces, anything). */
export function seg(s: string): string {
  return encodeURIComponent(s);
}
