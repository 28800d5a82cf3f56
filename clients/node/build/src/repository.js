import { StorageUnavailableError } from "./errors.js";
import { seg, Transport } from "./transport.js";
/** A Repository<T> served by the daemon; tx binds every call to a transaction. */
class SocketRepository {
    transport;
    tx;
    base;
    constructor(transport, collection, tx) {
        this.transport = transport;
        this.tx = tx;
        this.base = `/v1/repos/${seg(collection)}`;
    }
    req(method, path, body) {
        return this.transport().request(method, path, body, this.tx ? { tx: this.tx } : {});
    }
    async create(data) {
        const res = await this.req("POST", this.base, data);
        return JSON.parse(res.body);
    }
    async findById(id) {
        try {
            const res = await this.req("GET", `${this.base}/${seg(id)}`);
            return JSON.parse(res.body);
        }
        catch (err) {
            if (err.code === "not_found")
                return null;
            throw err;
        }
    }
    async findMany(options = {}) {
        const res = await this.req("POST", `${this.base}/find`, options);
        return JSON.parse(res.body);
    }
    async update(id, data) {
        const res = await this.req("PATCH", `${this.base}/${seg(id)}`, data);
        return JSON.parse(res.body);
    }
    async delete(id) {
        await this.req("DELETE", `${this.base}/${seg(id)}`);
    }
    async count(filter) {
        const res = await this.req("POST", `${this.base}/count`, filter === undefined ? {} : { filter });
        return JSON.parse(res.body).count;
    }
    async ensureIndex(spec) {
        const name = spec.name ?? `idx_${spec.fields.join("_").replace(/[^A-Za-z0-9_]/g, "_")}${spec.unique ? "_u" : ""}`.slice(0, 128);
        await this.req("PUT", `${this.base}/indexes/${seg(name)}`, { fields: spec.fields, unique: spec.unique ?? false });
    }
}
/**
 * The seed's RepositoryBackend, served by storaged over its Unix socket.
 * `transaction(fn)` holds a daemon-side transaction: committed when fn
 * resolves, rolled back when it throws.
 */
export class SocketRepositoryBackend {
    transportOptions;
    t;
    constructor(options = {}) {
        this.transportOptions = options;
    }
    /** The socket this backend talks to (after connect). */
    get socketPath() {
        return this.t?.socketPath;
    }
    transport = () => {
        if (!this.t) {
            throw new StorageUnavailableError("repository backend is not connected: call connect() first");
        }
        return this.t;
    };
    repository(collection) {
        return new SocketRepository(this.transport, collection);
    }
    async connect() {
        if (this.t)
            return;
        const t = new Transport(this.transportOptions);
        try {
            await t.request("GET", "/healthz");
        }
        catch (err) {
            await t.close();
            throw err;
        }
        this.t = t;
    }
    async disconnect() {
        const t = this.t;
        this.t = undefined;
        await t?.close();
    }
    async transaction(fn) {
        const t = this.transport();
        const res = await t.request("POST", "/v1/tx");
        const id = JSON.parse(res.body).id;
        const tx = new TxBackend(this.transport, id);
        let result;
        try {
            result = await fn(tx);
        }
        catch (err) {
            tx.ended = true;
            try {
                await t.request("POST", `/v1/tx/${seg(id)}/rollback`);
            }
            catch {
                // The daemon may have rolled it back already (idle timeout); the
                // caller's error is the one that matters.
            }
            throw err;
        }
        tx.ended = true;
        await t.request("POST", `/v1/tx/${seg(id)}/commit`);
        return result;
    }
}
/** The RepositoryBackend handed to a transaction callback. */
class TxBackend {
    transport;
    id;
    ended = false;
    constructor(transport, id) {
        this.transport = transport;
        this.id = id;
    }
    repository(collection) {
        return new SocketRepository(this.transport, collection, this.id);
    }
    async connect() { }
    async disconnect() { }
    /** A nested transaction joins this one. */
    async transaction(fn) {
        return fn(this);
    }
}
//# sourceMappingURL=repository.js.map