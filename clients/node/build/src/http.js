import net from "node:net";
const CRLF2 = Buffer.from("\r\n\r\n");
class Connection {
    release;
    drop;
    socket;
    buf = Buffer.alloc(0);
    cur;
    onAbort;
    closed = false;
    constructor(path, release, drop) {
        this.release = release;
        this.drop = drop;
        this.socket = net.createConnection(path);
        this.socket.setNoDelay(true);
        this.socket.on("data", (d) => this.onData(d));
        this.socket.on("error", (e) => this.fail(e));
        this.socket.on("close", () => this.fail(new Error("connection closed by storaged")));
    }
    send(p) {
        this.cur = p;
        if (p.signal) {
            this.onAbort = () => {
                // The answer would come on this connection; it cannot be reused.
                this.fail(Object.assign(new Error("request aborted"), { name: "AbortError" }));
            };
            p.signal.addEventListener("abort", this.onAbort, { once: true });
        }
        if (p.body) {
            this.socket.cork();
            this.socket.write(p.head, "latin1");
            this.socket.write(p.body);
            this.socket.uncork();
        }
        else {
            this.socket.write(p.head, "latin1");
        }
    }
    finish() {
        const p = this.cur;
        this.cur = undefined;
        if (p?.signal && this.onAbort)
            p.signal.removeEventListener("abort", this.onAbort);
        this.onAbort = undefined;
        return p;
    }
    fail(err) {
        if (this.closed)
            return;
        this.closed = true;
        this.socket.destroy();
        this.drop(this);
        this.finish()?.reject(err);
    }
    onData(d) {
        this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
        if (!this.cur)
            return;
        const end = this.buf.indexOf(CRLF2);
        if (end < 0)
            return;
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
                if (name === "content-length")
                    length = Number(value);
                else if (name === "transfer-encoding")
                    return this.fail(new Error(`storaged sent a ${value} body; this client reads Content-Length bodies only`));
                else if (name === "connection" && value.toLowerCase() === "close")
                    close = true;
            }
            i = next;
        }
        const start = end + 4;
        if (this.buf.length < start + length)
            return; // the rest is on its way
        const body = this.buf.toString("utf8", start, start + length);
        this.buf = this.buf.subarray(start + length);
        const p = this.finish();
        if (close) {
            this.closed = true;
            this.socket.end();
            this.drop(this);
        }
        else {
            this.release(this);
        }
        p?.resolve({ status, body });
    }
}
/** A pool of keep-alive connections; max 0 means unbounded. */
export class HttpPool {
    socketPath;
    max;
    idle = [];
    all = new Set();
    waiting = [];
    closed = false;
    constructor(socketPath, max) {
        this.socketPath = socketPath;
        this.max = max;
    }
    request(method, path, body, headers, signal) {
        if (signal?.aborted)
            return Promise.reject(Object.assign(new Error("request aborted"), { name: "AbortError" }));
        let head = `${method} ${path} HTTP/1.1\r\nHost: storaged\r\n`;
        if (headers)
            for (const k in headers)
                head += `${k}: ${headers[k]}\r\n`;
        let buf;
        if (body !== undefined) {
            buf = Buffer.from(body, "utf8");
            head += `Content-Type: application/json\r\nContent-Length: ${buf.length}\r\n`;
        }
        head += "\r\n";
        return new Promise((resolve, reject) => {
            const p = { head, body: buf, resolve, reject, signal };
            if (this.closed)
                return reject(new Error("client is closed"));
            const c = this.idle.pop();
            if (c)
                return c.send(p);
            if (this.max === 0 || this.all.size < this.max)
                return this.open().send(p);
            this.waiting.push(p);
            signal?.addEventListener("abort", () => {
                const i = this.waiting.indexOf(p);
                if (i >= 0) {
                    this.waiting.splice(i, 1);
                    reject(Object.assign(new Error("request aborted"), { name: "AbortError" }));
                }
            }, { once: true });
        });
    }
    open() {
        const c = new Connection(this.socketPath, (conn) => {
            const next = this.waiting.shift();
            if (next)
                conn.send(next);
            else
                this.idle.push(conn);
        }, (conn) => {
            this.all.delete(conn);
            const i = this.idle.indexOf(conn);
            if (i >= 0)
                this.idle.splice(i, 1);
            // Someone waiting gets a fresh connection.
            const next = this.waiting.shift();
            if (next && !this.closed)
                this.open().send(next);
        });
        this.all.add(c);
        return c;
    }
    close() {
        this.closed = true;
        for (const p of this.waiting.splice(0))
            p.reject(new Error("client is closed"));
        for (const c of this.all)
            c.socket.destroy();
        this.all.clear();
        this.idle.length = 0;
    }
}
//# sourceMappingURL=http.js.map