import net from "node:net";

/**
 * A minimal HTTP/1.1 client for one peer: the daemon on its Unix socket.
 * It keeps connections open, sends one request per connection at a time,
 * reads Content-Length bodies, and bounds every request's wait for its
 * answer (a connection whose answer is overdue is closed, never reused, so
 * a late answer cannot be read as the next request's). Measured against undici on
 * the same socket (bench/, "IPC floor"), it cut a findById round trip from
 * 108 to 68 µs and raised 64-in-flight findById from 38k/s to 58k/s; it
 * needs to speak to nothing but storaged (which always sends
 * Content-Length), and that is what makes it this small.
 */

export interface HttpResponse {
  status: number;
  body: string;
}

/** Bounds a request's wait for its answer; name is the option that set it. */
export interface Timeout {
  ms: number;
  name: string;
}

interface Pending {
  head: string;
  body: Buffer | undefined;
  resolve: (r: HttpResponse) => void;
  reject: (e: Error) => void;
  /** The connection it was sent on, once it was. */
  conn: Connection | undefined;
}

const CRLF2 = Buffer.from("\r\n\r\n");

/** How long an aborted request may take to bring the answer already on its way. */
const WRAP_UP_MS = 5_000;

function abortError(): Error {
  return Object.assign(new Error("request aborted"), { name: "AbortError" });
}

class Connection {
  readonly socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  /** An answer arriving in chunks: them, their size, and the size wanted. */
  private chunks: Buffer[] = [];
  private have = 0;
  private want = 0;
  private cur: Pending | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  /** The write side is shut (wrapUp): no request may follow. */
  private ending = false;
  closed = false;

  constructor(
    path: string,
    connectTimeoutMs: number,
    private readonly release: (c: Connection) => void,
    private readonly drop: (c: Connection) => void,
  ) {
    this.socket = net.createConnection(path);
    this.socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => this.fail(new Error(`could not connect within ${connectTimeoutMs} ms (connectTimeoutMs)`)), connectTimeoutMs);
    this.socket.once("connect", () => {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    });
    this.socket.on("data", (d) => this.onData(d));
    this.socket.on("error", (e) => this.fail(e));
    this.socket.on("close", () => this.fail(new Error("connection closed by storaged")));
  }

  send(p: Pending): void {
    this.cur = p;
    p.conn = this;
    if (p.body) {
      this.socket.cork();
      this.socket.write(p.head, "latin1");
      this.socket.write(p.body);
      this.socket.uncork();
    } else {
      this.socket.write(p.head, "latin1");
    }
  }

  /**
   * Gives up on p if this connection still serves it. Its answer would
   * come on this connection later, so the connection cannot be reused.
   */
  cancel(p: Pending, err: Error): void {
    if (this.cur === p) this.fail(err);
  }

  /**
   * Ends p early without losing its answer: the write side is shut, which
   * the daemon sees as the client leaving (a long poll then answers at
   * once, and releases what it claimed if it had not answered yet), while
   * an answer already on its way is still read and delivered. The
   * connection is not reused. Past graceMs without an answer, p fails.
   */
  wrapUp(p: Pending, graceMs: number): void {
    if (this.cur !== p || this.closed || this.ending) return;
    this.ending = true;
    this.socket.end();
    const t = setTimeout(() => this.fail(abortError()), graceMs);
    t.unref();
  }

  private finish(): Pending | undefined {
    const p = this.cur;
    this.cur = undefined;
    return p;
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.connectTimer);
    this.socket.destroy();
    this.drop(this);
    this.finish()?.reject(err);
  }

  private onData(d: Buffer): void {
    // Chunks are kept aside until the answer is whole and joined once: a
    // batch of jobs comes in dozens of chunks, and joining as they came
    // copied the answer over and over (a tenth of a worker's time).
    if (this.want > 0) {
      this.chunks.push(d);
      this.have += d.length;
      if (this.have < this.want) return;
      this.buf = Buffer.concat(this.chunks, this.have);
      this.chunks = [];
      this.want = this.have = 0;
    } else {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    }
    if (!this.cur) return;
    const end = this.buf.indexOf(CRLF2);
    if (end < 0) return;
    const head = this.buf.toString("latin1", 0, end);
    const status = Number(head.slice(9, 12));
    let length = 0;
    let close = false;
    let i = head.indexOf("\r\n");
    while (i >= 0) {
      const next = head.indexOf("\r\n", i + 2);
      const line = head.slice(i + 2, next < 0 ? undefined : next);
      const colon = line.indexOf(":");
      if (colon > 0) {
        const name = line.slice(0, colon).toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === "content-length") length = Number(value);
        else if (name === "transfer-encoding") { this.fail(new Error(`storaged sent a ${value} body; this client reads Content-Length bodies only`)); return; }
        else if (name === "connection" && value.toLowerCase() === "close") close = true;
      }
      i = next;
    }
    const start = end + 4;
    if (this.buf.length < start + length) {
      // The rest is on its way: wait for all of it.
      this.chunks = [this.buf];
      this.have = this.buf.length;
      this.want = start + length;
      this.buf = Buffer.alloc(0);
      return;
    }
    const body = this.buf.toString("utf8", start, start + length);
    this.buf = this.buf.subarray(start + length);
    const p = this.finish();
    if (close || this.ending) {
      this.closed = true;
      this.socket.end();
      this.drop(this);
    } else {
      this.release(this);
    }
    p?.resolve({ status, body });
  }
}

/** A pool of keep-alive connections; max 0 means unbounded. */
export class HttpPool {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly waiting: Pending[] = [];
  private closed = false;

  constructor(
    private readonly socketPath: string,
    private readonly max: number,
    private readonly connectTimeoutMs: number,
  ) {}

  /**
   * Sends a request; it is rejected when signal aborts or when no answer
   * came within timeout (waiting for a free connection included).
   */
  request(
    method: string,
    path: string,
    body: string | undefined,
    headers: Record<string, string> | undefined,
    timeout: Timeout,
    signal?: AbortSignal,
  ): Promise<HttpResponse> {
    if (signal?.aborted) return Promise.reject(abortError());
    let head = `${method} ${path} HTTP/1.1\r\nHost: storaged\r\n`;
    if (headers) for (const k in headers) head += `${k}: ${headers[k]}\r\n`;
    let buf: Buffer | undefined;
    if (body !== undefined) {
      buf = Buffer.from(body, "utf8");
      head += `Content-Type: application/json\r\nContent-Length: ${buf.length}\r\n`;
    }
    head += "\r\n";
    return new Promise((resolve, reject) => {
      if (this.closed) { reject(new Error("client is closed")); return; }
      const p: Pending = {
        head,
        body: buf,
        conn: undefined,
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      const giveUp = (err: Error) => {
        if (p.conn) { p.conn.cancel(p, err); return; }
        const i = this.waiting.indexOf(p);
        if (i >= 0) this.waiting.splice(i, 1);
        p.reject(err);
      };
      // A request under way when aborted is wrapped up, not cut: its
      // answer (a long poll's claimed jobs) may already be on its way.
      const onAbort = () => (p.conn ? p.conn.wrapUp(p, WRAP_UP_MS) : giveUp(abortError()));
      const timer = setTimeout(() => giveUp(new Error(`no answer within ${timeout.ms} ms (${timeout.name})`)), timeout.ms);
      signal?.addEventListener("abort", onAbort, { once: true });
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      }
      const c = this.idle.pop();
      if (c) { c.send(p); return; }
      if (this.max === 0 || this.all.size < this.max) { this.open().send(p); return; }
      this.waiting.push(p);
    });
  }

  private open(): Connection {
    const c = new Connection(
      this.socketPath,
      this.connectTimeoutMs,
      (conn) => {
        const next = this.waiting.shift();
        if (next) conn.send(next);
        else this.idle.push(conn);
      },
      (conn) => {
        this.all.delete(conn);
        const i = this.idle.indexOf(conn);
        if (i >= 0) this.idle.splice(i, 1);
        // Someone waiting gets a fresh connection.
        const next = this.waiting.shift();
        if (next && !this.closed) this.open().send(next);
      },
    );
    this.all.add(c);
    return c;
  }

  close(): void {
    this.closed = true;
    for (const p of this.waiting.splice(0)) p.reject(new Error("client is closed"));
    for (const c of this.all) c.socket.destroy();
    this.all.clear();
    this.idle.length = 0;
  }
}
