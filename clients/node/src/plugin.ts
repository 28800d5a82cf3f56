import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { SocketJobQueueBackend } from "./jobqueue.js";
import { SocketRepositoryBackend } from "./repository.js";
import type { TransportOptions } from "./transport.js";
import type { JobQueueBackend, StoragedRepositoryBackend } from "./types.js";

declare module "fastify" {
  interface FastifyInstance {
    /** The seed's RepositoryBackend; its transaction(fn) also offers tx.queue(name) and retries. */
    repository: StoragedRepositoryBackend;
    jobQueue: JobQueueBackend;
  }
}

export interface StoragedPluginOptions {
  /** The daemon's socket; default STORAGED_SOCKET. */
  socketPath?: string;
  /** The caller's W3C traceparent, sent with every request (see TransportOptions). */
  traceparent?: () => string | undefined;
  /** Connections for ordinary calls; default 32 (long polls have their own). */
  connections?: number;
  /** Calls in flight on one connection once all are busy; default 4, 1 turns pipelining off (see TransportOptions). */
  pipelining?: number;
  /** How long connecting may take before startup fails; default 5 000 ms (see TransportOptions). */
  connectTimeoutMs?: number;
  /** How long a call waits for its answer; default 30 000 ms, long polls get their waitMs on top (see TransportOptions). */
  requestTimeoutMs?: number;
  /** Use these backends instead (e.g. createMemoryStorage()'s in tests). */
  repository?: StoragedRepositoryBackend;
  jobQueue?: JobQueueBackend;
}

/** Storage with both backends, not yet connected. */
export interface Storage {
  repository: SocketRepositoryBackend;
  jobQueue: SocketJobQueueBackend;
}

/** createStorage({ socketPath?, connectTimeoutMs?, requestTimeoutMs?, ... }): both socket backends, not yet connected. */
export function createStorage(options: TransportOptions = {}): Storage {
  const storage = { repository: new SocketRepositoryBackend(options), jobQueue: new SocketJobQueueBackend(options) };
  storage.repository.linkJobQueue(storage.jobQueue);
  return storage;
}

async function storaged(fastify: FastifyInstance, options: StoragedPluginOptions): Promise<void> {
  if (fastify.hasDecorator("repository") || fastify.hasDecorator("jobQueue")) {
    throw new Error("@storaged/client is already registered on this Fastify instance (repository/jobQueue are decorated)");
  }
  const transport: TransportOptions = {};
  if (options.socketPath !== undefined) transport.socketPath = options.socketPath;
  if (options.traceparent !== undefined) transport.traceparent = options.traceparent;
  if (options.connections !== undefined) transport.connections = options.connections;
  if (options.pipelining !== undefined) transport.pipelining = options.pipelining;
  if (options.connectTimeoutMs !== undefined) transport.connectTimeoutMs = options.connectTimeoutMs;
  if (options.requestTimeoutMs !== undefined) transport.requestTimeoutMs = options.requestTimeoutMs;
  let { repository, jobQueue } = options;
  if (!repository || !jobQueue) {
    const made = createStorage(transport);
    repository ??= made.repository;
    jobQueue ??= made.jobQueue;
  }
  // Transactions settle the claims of this job queue's dequeues
  // (tx.queue(name).acknowledge(job.id)), so the two must know each other.
  if (repository instanceof SocketRepositoryBackend && jobQueue instanceof SocketJobQueueBackend) {
    repository.linkJobQueue(jobQueue);
  }
  // Connect before ready: a missing daemon fails startup with a message
  // naming the socket, not the first request.
  await repository.connect();
  try {
    await jobQueue.connect();
  } catch (err) {
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
