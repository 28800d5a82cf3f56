import { setMaxListeners } from "node:events";
import { ConflictError, StorageUnavailableError, ValidationError } from "./errors.js";
import { seg, Transport } from "./transport.js";
function toJob(w) {
    const job = {
        id: w.id,
        queue: w.queue,
        data: w.data,
        status: w.status,
        priority: w.priority,
        attempts: w.attempts,
        maxAttempts: w.maxAttempts,
        backoff: w.backoff,
        runAt: new Date(w.runAt),
        createdAt: new Date(w.createdAt),
        updatedAt: new Date(w.updatedAt),
    };
    if (w.key !== undefined)
        job.key = w.key;
    if (w.startedAt)
        job.startedAt = new Date(w.startedAt);
    if (w.finishedAt)
        job.finishedAt = new Date(w.finishedAt);
    if (w.leaseExpiresAt)
        job.leaseExpiresAt = new Date(w.leaseExpiresAt);
    if (w.lease)
        job.lease = w.lease;
    if (w.lastError)
        job.lastError = w.lastError;
    return job;
}
function wireOptions(o) {
    if (!o)
        return {};
    const out = {};
    if (o.runAt !== undefined)
        out["runAt"] = o.runAt instanceof Date ? o.runAt.toISOString() : o.runAt;
    if (o.delayMs !== undefined)
        out["delayMs"] = o.delayMs;
    if (o.priority !== undefined)
        out["priority"] = o.priority;
    if (o.maxAttempts !== undefined)
        out["maxAttempts"] = o.maxAttempts;
    if (o.backoff !== undefined)
        out["backoff"] = o.backoff;
    if (o.key !== undefined)
        out["key"] = o.key;
    return out;
}
class SocketJobQueue {
    backend;
    name;
    leases;
    base;
    constructor(backend, name, leases) {
        this.backend = backend;
        this.name = name;
        this.leases = leases;
        this.base = `/v1/queues/${seg(name)}`;
    }
    get t() {
        return this.backend.transport();
    }
    async enqueue(data, options) {
        const res = await this.t.request("POST", `${this.base}/jobs`, { data: data ?? null, ...wireOptions(options) });
        return JSON.parse(res.body).id;
    }
    async enqueueMany(jobs) {
        const body = jobs.map((j) => ({ data: j.data ?? null, ...wireOptions(j) }));
        const res = await this.t.request("POST", `${this.base}/jobs/batch`, body);
        return JSON.parse(res.body).ids;
    }
    async dequeue(options = {}, signal) {
        const poll = (options.waitMs ?? 0) > 0;
        const res = await this.t.request("POST", `${this.base}/dequeue`, options, signal ? { poll, signal } : { poll });
        if (res.status === 204)
            return null;
        const job = toJob(JSON.parse(res.body));
        if (job.lease)
            this.leases.set(job.id, job.lease);
        return job;
    }
    lease(jobId) {
        const lease = this.leases.get(jobId);
        if (!lease) {
            throw new ValidationError(`job ${jobId} was not dequeued by this client (or was already acknowledged or failed): no lease to send`);
        }
        return lease;
    }
    async acknowledge(jobId) {
        const lease = this.lease(jobId);
        await this.t.request("POST", `/v1/jobs/${seg(jobId)}/ack`, { lease });
        this.leases.delete(jobId);
    }
    async fail(jobId, error, retry = true) {
        const lease = this.lease(jobId);
        const e = error instanceof Error ? error : new Error(String(error));
        const body = { lease, retry, error: { name: e.name || "Error", message: e.message ?? "", stack: e.stack ?? "" } };
        try {
            await this.t.request("POST", `/v1/jobs/${seg(jobId)}/fail`, body);
        }
        finally {
            // Whatever the answer, this claim is over: a conflict means it was
            // already taken over.
            this.leases.delete(jobId);
        }
    }
    async getJob(jobId) {
        try {
            const res = await this.t.request("GET", `/v1/jobs/${seg(jobId)}`);
            return toJob(JSON.parse(res.body));
        }
        catch (err) {
            if (err.code === "not_found")
                return null;
            throw err;
        }
    }
    async getStatus(jobId) {
        return (await this.getJob(jobId))?.status ?? null;
    }
    async heartbeat(jobId, leaseMs) {
        const body = leaseMs === undefined ? { lease: this.lease(jobId) } : { lease: this.lease(jobId), leaseMs };
        await this.t.request("POST", `/v1/jobs/${seg(jobId)}/heartbeat`, body);
    }
    async cancel(jobId) {
        await this.t.request("POST", `/v1/jobs/${seg(jobId)}/cancel`);
        this.leases.delete(jobId);
    }
    async stats() {
        const res = await this.t.request("GET", `${this.base}/stats`);
        return JSON.parse(res.body);
    }
    async listFailed(options = {}) {
        const q = new URLSearchParams();
        if (options.limit !== undefined)
            q.set("limit", String(options.limit));
        if (options.offset !== undefined)
            q.set("offset", String(options.offset));
        const qs = q.size ? `?${q.toString()}` : "";
        const res = await this.t.request("GET", `${this.base}/failed${qs}`);
        return JSON.parse(res.body).map((w) => toJob(w));
    }
    async retryFailed(jobId) {
        await this.t.request("POST", `/v1/jobs/${seg(jobId)}/retry`);
    }
    work(handler, options = {}) {
        const w = new QueueWorker(this, handler, options);
        this.backend.track(w);
        return w;
    }
}
/**
 * The seed's processing loop, done right: `concurrency` loops each long-poll
 * for a job, renew its lease while the handler runs, acknowledge on success
 * and fail (with retry) on a throw. stop() stops claiming, aborts the
 * waiting polls and resolves once the jobs in flight are finished.
 */
class QueueWorker {
    queue;
    handler;
    stopping = false;
    abort = new AbortController();
    loops = [];
    onError;
    leaseMs;
    waitMs;
    stopped;
    constructor(queue, handler, options) {
        this.queue = queue;
        this.handler = handler;
        const concurrency = options.concurrency ?? 1;
        if (!Number.isInteger(concurrency) || concurrency < 1) {
            throw new ValidationError(`concurrency must be a positive integer, got ${concurrency}`);
        }
        this.leaseMs = options.leaseMs ?? 30_000;
        this.waitMs = options.waitMs ?? 30_000;
        this.onError = options.onError ?? ((err) => process.emitWarning(`storaged worker: ${err.message ?? err}`));
        // Every waiting poll listens on the one stop signal.
        setMaxListeners(0, this.abort.signal);
        for (let i = 0; i < concurrency; i++)
            this.loops.push(this.loop());
        this.stopped = Promise.all(this.loops).then(() => undefined);
    }
    async loop() {
        while (!this.stopping) {
            let job;
            try {
                job = await this.queue.dequeue({ waitMs: this.waitMs, leaseMs: this.leaseMs }, this.abort.signal);
            }
            catch (err) {
                if (this.stopping)
                    return;
                this.onError(err);
                await sleep(1000, this.abort.signal);
                continue;
            }
            if (job)
                await this.run(job);
        }
    }
    async run(job) {
        // Renew at a third of the lease so two heartbeats may be lost before
        // the claim runs out.
        const timer = setInterval(() => {
            this.queue.heartbeat(job.id).catch((err) => this.onError(err));
        }, Math.max(Math.floor(this.leaseMs / 3), 10));
        let failure;
        try {
            await this.handler(job);
        }
        catch (err) {
            failure = err instanceof Error ? err : new Error(String(err));
        }
        finally {
            clearInterval(timer);
        }
        try {
            if (failure)
                await this.queue.fail(job.id, failure, true);
            else
                await this.queue.acknowledge(job.id);
        }
        catch (err) {
            // A conflict means the lease was lost (the handler outlived it and
            // another worker took the job); the job is not lost, only this claim.
            this.onError(err instanceof ConflictError ? new ConflictError(`job ${job.id}: ${err.message}`) : err);
        }
    }
    async stop() {
        this.stopping = true;
        this.abort.abort();
        await this.stopped;
    }
}
function sleep(ms, signal) {
    return new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        signal.addEventListener("abort", () => {
            clearTimeout(t);
            resolve();
        }, { once: true });
    });
}
/** The seed's JobQueueBackend, served by storaged over its Unix socket. */
export class SocketJobQueueBackend {
    transportOptions;
    t;
    leases = new Map();
    workers = new Set();
    constructor(options = {}) {
        this.transportOptions = options;
    }
    get socketPath() {
        return this.t?.socketPath;
    }
    /** @internal */
    transport() {
        if (!this.t) {
            throw new StorageUnavailableError("job queue backend is not connected: call connect() first");
        }
        return this.t;
    }
    /** @internal */
    track(w) {
        this.workers.add(w);
    }
    queue(name = "default") {
        return new SocketJobQueue(this, name, this.leases);
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
    /** Stops every worker (draining their jobs), then closes the connections. */
    async disconnect() {
        await Promise.all([...this.workers].map((w) => w.stop()));
        this.workers.clear();
        const t = this.t;
        this.t = undefined;
        await t?.close();
    }
}
//# sourceMappingURL=jobqueue.js.map