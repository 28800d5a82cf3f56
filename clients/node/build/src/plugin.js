import fp from "fastify-plugin";
import { SocketJobQueueBackend } from "./jobqueue.js";
import { SocketRepositoryBackend } from "./repository.js";
/** createStorage({ socketPath? }): both socket backends, not yet connected. */
export function createStorage(options = {}) {
    return { repository: new SocketRepositoryBackend(options), jobQueue: new SocketJobQueueBackend(options) };
}
async function storaged(fastify, options) {
    if (fastify.hasDecorator("repository") || fastify.hasDecorator("jobQueue")) {
        throw new Error("@storaged/client is already registered on this Fastify instance (repository/jobQueue are decorated)");
    }
    const transport = {};
    if (options.socketPath !== undefined)
        transport.socketPath = options.socketPath;
    if (options.traceparent !== undefined)
        transport.traceparent = options.traceparent;
    const made = options.repository && options.jobQueue ? undefined : createStorage(transport);
    const repository = options.repository ?? made.repository;
    const jobQueue = options.jobQueue ?? made.jobQueue;
    // Connect before ready: a missing daemon fails startup with a message
    // naming the socket, not the first request.
    await repository.connect();
    try {
        await jobQueue.connect();
    }
    catch (err) {
        await repository.disconnect();
        throw err;
    }
    fastify.decorate("repository", repository);
    fastify.decorate("jobQueue", jobQueue);
    fastify.addHook("onClose", async () => {
        // Workers first: they drain their jobs and acknowledge through the queue.
        await jobQueue.disconnect();
        await repository.disconnect();
    });
}
export default fp(storaged, { name: "@storaged/client", fastify: "5.x" });
//# sourceMappingURL=plugin.js.map