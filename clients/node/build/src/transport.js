import { Pool } from "undici";
import { errorFromResponse, StorageUnavailableError } from "./errors.js";
/** The header that binds a repository call to a transaction. */
export const TX_HEADER = "storaged-tx";
const JSON_HEADERS = { "content-type": "application/json" };
/** Resolves the socket path: the option, else STORAGED_SOCKET. */
export function resolveSocketPath(socketPath) {
    const p = socketPath ?? process.env["STORAGED_SOCKET"];
    if (!p) {
        throw new StorageUnavailableError("no socket path: pass { socketPath } or set STORAGED_SOCKET");
    }
    return p;
}
/**
 * HTTP/1.1 over the daemon's Unix socket with undici. Long polls get their
 * own pool, so that workers waiting for jobs never hold up ordinary calls.
 */
export class Transport {
    socketPath;
    pool;
    pollPool;
    closed = false;
    constructor(opts = {}) {
        this.socketPath = resolveSocketPath(opts.socketPath);
        const common = { socketPath: this.socketPath, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 };
        this.pool = new Pool("http://storaged", { ...common, connections: opts.connections ?? 32, pipelining: 1 });
        this.pollPool = new Pool("http://storaged", { ...common, connections: null, headersTimeout: 0, bodyTimeout: 0 });
    }
    /** Sends a request; a non-2xx answer becomes the matching StorageError. */
    async request(method, path, body, opts = {}) {
        if (this.closed) {
            throw new StorageUnavailableError(`the client for ${this.socketPath} is disconnected`);
        }
        const headers = body === undefined ? {} : { ...JSON_HEADERS };
        if (opts.tx)
            headers[TX_HEADER] = opts.tx;
        let res;
        try {
            res = await (opts.poll ? this.pollPool : this.pool).request({
                method,
                path,
                headers,
                body: body === undefined ? undefined : JSON.stringify(body),
                signal: opts.signal,
            });
        }
        catch (err) {
            if (opts.signal?.aborted)
                throw err;
            throw new StorageUnavailableError(`storaged is not answering on ${this.socketPath}: ${err.message}`, undefined, {
                cause: err,
            });
        }
        const text = await res.body.text();
        if (res.statusCode >= 200 && res.statusCode < 300) {
            return { status: res.statusCode, body: text };
        }
        throw parseError(res.statusCode, text);
    }
    async close() {
        if (this.closed)
            return;
        this.closed = true;
        await Promise.all([this.pool.close(), this.pollPool.destroy()]);
    }
}
function parseError(status, text) {
    try {
        const parsed = JSON.parse(text);
        if (parsed.error) {
            return errorFromResponse(status, parsed.error.code, parsed.error.message ?? "");
        }
    }
    catch {
        // not the daemon's error body; fall through
    }
    return errorFromResponse(status, status === 503 ? "unavailable" : undefined, `storaged answered ${status}: ${text.slice(0, 200)}`);
}
/** Percent-encodes a path segment (ids may hold "/", spaces, anything). */
export function seg(s) {
    return encodeURIComponent(s);
}
//# sourceMappingURL=transport.js.map