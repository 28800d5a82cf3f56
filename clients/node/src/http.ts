import net from "node:net";

/**
 * A minimal HTTP/1.1 client for one peer: the daemon on its Unix socket.
 * It keeps connections open, pipelines requests on them once every
 * connection is busy, reads Content-Length bodies, and bounds every
 * request's wait for its answer (a connection whose answer is overdue is
 * closed, never reused, so a late answer cannot be read as the next
 * request's; the requests pipelined behind it fail with it). Measured against undici on
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

/**
 * One request. A class rather than an object literal with closures: a
 * findById allocated five closures for these, and the garbage collector
 * was a quarter of the client's time at 64 in flight.
 */
class Pending {
  /** The connection it was sent on, once it was. */
  conn: Connection | undefined = undefined;
  timer: NodeJS.Timeout | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  /** Sent only on a connection with nothing else in flight (see HttpPool.request). */
  alone = false;
  abortListener: (() => void) | undefined = undefined;

  constructor(
    readonly head: string,
    readonly body: Buffer | undefined,
    private readonly settleOk: (r: HttpResponse) => void,
    private readonly settleErr: (e: Error) => void,
  ) {}

  resolve(r: HttpResponse): void {
    this.done();
    this.settleOk(r);
  }

  reject(e: Error): void {
    this.done();
    this.settleErr(e);
  }

  private done(): void {
    clearTimeout(this.timer);
    if (this.abortListener) this.signal?.removeEventListener("abort", this.abortListener);
  }
}

const CRLF2 = Buffer.from("\r\n\r\n");

/** How long an aborted request may take to bring the answer already on its way. */
const WRAP_UP_MS = 5_000;

function abortError(): Error {
  return Object.assign(new Error("request aborted"), { name: "AbortError" });
}

/** Sends what a connection's requests of this tick wrote, in one write. */
function uncork(c: Connection): void {
  c.corked = false;
  c.socket.uncork();
}

class Connection {
  readonly socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  /** An answer arriving in chunks: them, their size, and the size wanted. */
  private chunks: Buffer[] = [];
  private have = 0;
  private want = 0;
  /** Requests sent and not answered yet, oldest first: answers come in that order. */
  private readonly sent: Pending[] = [];
  private connectTimer: NodeJS.Timeout | undefined;
  /** The write side is shut (wrapUp): no request may follow. */
  ending = false;
  corked = false;
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

  /** Requests in flight on this connection. */
  get depth(): number {
    return this.sent.length;
  }

  send(p: Pending): void {
    this.sent.push(p);
    p.conn = this;
    // The requests sent in one tick (answers that came together let
    // their callers send the next ones together) leave in one write, and
    // the daemon then reads them in one read and answers them in one write.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    this.socket.write(p.head, "latin1");
    if (p.body) this.socket.write(p.body);
  }

  /**
   * Gives up on p if it is in flight here. Its answer would come on this
   * connection later, so the connection cannot be reused: the requests
   * sent after it on the connection fail with it.
   */
  cancel(p: Pending, err: Error): void {
    if (this.sent.includes(p)) this.fail(err, p);
  }

  /**
   * Ends p early without losing its answer: the write side is shut, which
   * the daemon sees as the client leaving (a long poll then answers at
   * once, and releases what it claimed if it had not answered yet), while
   * an answer already on its way is still read and delivered. The
   * connection is not reused. Past graceMs without an answer, p fails.
   */
  wrapUp(p: Pending, graceMs: number): void {
    if (!this.sent.includes(p) || this.closed || this.ending) return;
    this.ending = true;
    this.socket.end();
    const t = setTimeout(() => this.fail(abortError()), graceMs);
    t.unref();
  }

  /**
   * Closes the connection and fails what is in flight on it: culprit (if
   * given) with err, the others with an error that names it.
   */
  private fail(err: Error, culprit?: Pending): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.connectTimer);
    this.socket.destroy();
    this.drop(this);
    const others = culprit ? new Error(`connection closed: a request before this one on it failed (${err.message})`) : err;
    for (const p of this.sent.splice(0)) p.reject(p === culprit ? err : others);
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
    // One read may hold the answers of several pipelined requests.
    while (this.sent.length > 0 && !this.closed) {
      const end = this.buf.indexOf(CRLF2);
      if (end < 0) return;
      const head = this.buf.toString("latin1", 0, end);
      const status = Number(head.slice(9, 12));
      let length = 0;
      let close = false;
      // Only three headers matter; a name is lower-cased only when its
      // length is one of theirs (fasthttp sends Date, Server, Content-Type
      // and ETag with every answer).
      let i = head.indexOf("\r\n");
      while (i >= 0) {
        const next = head.indexOf("\r\n", i + 2);
        const colon = head.indexOf(":", i + 2);
        const stop = next < 0 ? head.length : next;
        const n = colon - i - 2;
        if (colon > 0 && colon < stop && (n === 14 || n === 17 || n === 10)) {
          const name = head.slice(i + 2, colon).toLowerCase();
          if (name === "content-length") length = Number(head.slice(colon + 1, stop));
          else if (name === "transfer-encoding") {
            this.fail(new Error(`storaged sent a ${head.slice(colon + 1, stop).trim()} body; this client reads Content-Length bodies only`));
            return;
          } else if (name === "connection" && head.slice(colon + 1, stop).trim().toLowerCase() === "close") close = true;
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
      const p = this.sent.shift() as Pending;
      if (close || (this.ending && this.sent.length === 0)) {
        // No answer follows this one: what was sent after it fails.
        this.closed = true;
        this.socket.end();
        this.drop(this);
        p.resolve({ status, body });
        const err = new Error("connection closed by storaged");
        for (const q of this.sent.splice(0)) q.reject(err);
        return;
      }
      if (!this.ending) this.release(this);
      p.resolve({ status, body });
    }
  }
}

function giveUp(pool: HttpPool, p: Pending, timeout: Timeout): void {
  pool.giveUp(p, new Error(`no answer within ${timeout.ms} ms (${timeout.name})`));
}

/**
 * A pool of keep-alive connections; max 0 means unbounded. A request goes
 * to an idle connection, else to a new one while there are fewer than
 * max, else it is pipelined behind the requests in flight on the least
 * busy connection, up to pipelining on one; past that it waits, and
 * requests that come later wait behind it (none overtakes another).
 */
export class HttpPool {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly waiting: Pending[] = [];
  private closed = false;

  constructor(
    private readonly socketPath: string,
    private readonly max: number,
    private readonly connectTimeoutMs: number,
    private readonly pipelining = 1,
  ) {}

  /**
   * Sends a request; it is rejected when signal aborts or when no answer
   * came within timeout (waiting for a free connection included). A
   * request sent alone is never pipelined behind another: the calls of a
   * transaction, so that the transaction's next step or commit cannot sit
   * behind a call that waits for the transaction's locks.
   */
  request(
    method: string,
    path: string,
    body: string | undefined,
    headers: Record<string, string> | undefined,
    timeout: Timeout,
    signal?: AbortSignal,
    alone = false,
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
      const p = new Pending(head, buf, resolve, reject);
      p.alone = alone;
      p.timer = setTimeout(giveUp, timeout.ms, this, p, timeout);
      if (signal) {
        // A request under way when aborted is wrapped up, not cut: its
        // answer (a long poll's claimed jobs) may already be on its way.
        p.signal = signal;
        p.abortListener = () => (p.conn ? p.conn.wrapUp(p, WRAP_UP_MS) : this.giveUp(p, abortError()));
        signal.addEventListener("abort", p.abortListener, { once: true });
      }
      this.dispatch(p);
    });
  }

  private dispatch(p: Pending): void {
    if (this.waiting.length === 0) {
      const c = this.idle.pop();
      if (c) { c.send(p); return; }
      if (this.max === 0 || this.all.size < this.max) { this.open().send(p); return; }
      if (this.pipelining > 1 && !p.alone) {
        let best: Connection | undefined;
        for (const c of this.all) {
          if (!c.ending && c.depth < this.pipelining && (!best || c.depth < best.depth)) best = c;
        }
        if (best) { best.send(p); return; }
      }
    }
    this.waiting.push(p);
  }

  /** Ends p with err: cut on its connection if sent, else taken off the queue. */
  giveUp(p: Pending, err: Error): void {
    if (p.conn) { p.conn.cancel(p, err); return; }
    const i = this.waiting.indexOf(p);
    if (i >= 0) this.waiting.splice(i, 1);
    p.reject(err);
  }

  private open(): Connection {
    const c = new Connection(
      this.socketPath,
      this.connectTimeoutMs,
      (conn) => {
        // Waiting requests go in order, as many as the connection takes;
        // one to be sent alone waits for a connection with nothing else
        // in flight.
        for (let next = this.waiting[0]; next; next = this.waiting[0]) {
          if (next.alone ? conn.depth > 0 : conn.depth >= this.pipelining) break;
          this.waiting.shift();
          conn.send(next);
        }
        if (conn.depth === 0) this.idle.push(conn);
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
