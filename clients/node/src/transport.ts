import { errorFromResponse, StorageError, StorageUnavailableError } from "./errors.js";
import { HttpPool } from "./http.js";

export interface TransportOptions {
  socketPath?: string;
  /** Connections for ordinary calls; default 32. */
  connections?: number;
  /**
   * Returns the W3C traceparent of the caller's current span (e.g. from
   * OpenTelemetry); it is sent with each request and appears in the
   * daemon's log lines and spans for it.
   */
  traceparent?: () => string | undefined;
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
  private closed = false;

  constructor(opts: TransportOptions = {}) {
    this.socketPath = resolveSocketPath(opts.socketPath);
    this.pool = new HttpPool(this.socketPath, opts.connections ?? 32);
    this.pollPool = new HttpPool(this.socketPath, 0);
    this.traceparent = opts.traceparent;
  }

  /** Sends a request; a non-2xx answer becomes the matching StorageError. */
  async request(
    method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE",
    path: string,
    body?: unknown,
    opts: { tx?: string; poll?: boolean; signal?: AbortSignal } = {},
  ): Promise<Response> {
    if (this.closed) {
      throw new StorageUnavailableError(`the client for ${this.socketPath} is disconnected`);
    }
    let headers: Record<string, string> | undefined = opts.tx ? { [TX_HEADER]: opts.tx } : undefined;
    const tp = this.traceparent?.();
    if (tp && /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(tp)) headers = { ...headers, traceparent: tp };
    let res;
    try {
      res = await (opts.poll ? this.pollPool : this.pool).request(method, path, body === undefined ? undefined : JSON.stringify(body), headers, opts.signal);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new StorageUnavailableError(`storaged is not answering on ${this.socketPath}: ${(err as Error).message}`, undefined, {
        cause: err,
      });
    }
    if (res.status >= 200 && res.status < 300) return res;
    throw parseError(res.status, res.body);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pool.close();
    this.pollPool.close();
  }
}

function parseError(status: number, text: string): StorageError {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (parsed.error) {
      return errorFromResponse(status, parsed.error.code, parsed.error.message ?? "");
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
