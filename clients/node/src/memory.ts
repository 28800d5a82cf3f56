import { PrivateDaemon } from "./daemon.js";
import { SocketJobQueueBackend } from "./jobqueue.js";
import { SocketRepositoryBackend } from "./repository.js";
import type { TransportOptions } from "./transport.js";
import { assertCompatible, IncompatibleDaemonError } from "./version.js";

/** The transport options a Memory backend takes: all but the socket, which is its own daemon's. */
export type MemoryBackendOptions = Omit<TransportOptions, "socketPath">;

/** What both Memory backends do around their socket twin's connect/disconnect. */
/** @internal */
export class PrivateDaemonSlot {
  daemon: PrivateDaemon | undefined;
  private starting: Promise<PrivateDaemon> | undefined;
  /** How many backends use the daemon: createMemoryStorage's two share one. */
  private users = 0;

  constructor(private readonly options: MemoryBackendOptions) {}

  /** Starts the daemon (once for all its users), points the transport at it, then connects. */
  async open(setOptions: (o: TransportOptions) => void, connect: () => Promise<void>): Promise<void> {
    this.starting ??= PrivateDaemon.start();
    let daemon: PrivateDaemon;
    try {
      daemon = await this.starting;
    } catch (err) {
      this.starting = undefined;
      throw err;
    }
    this.daemon = daemon;
    this.users++;
    setOptions({ ...this.options, socketPath: daemon.socketPath });
    try {
      await connect();
    } catch (err) {
      await this.close();
      // Name the binary rather than its private socket: that is what to replace.
      if (err instanceof IncompatibleDaemonError) {
        assertCompatible(err.daemonVersion, `at ${daemon.binary.path} (found through ${daemon.binary.source})`, err.clientVersion);
      }
      throw err;
    }
  }

  /** Stops the daemon when its last user is done with it. */
  async close(): Promise<void> {
    if (this.users === 0) return;
    if (--this.users > 0) return;
    const daemon = this.daemon;
    this.daemon = undefined;
    this.starting = undefined;
    await daemon?.stop();
  }
}

/**
 * The seed's zero-setup test double, with exactly the daemon's semantics:
 * connect() starts a private storaged with memory backends, disconnect()
 * stops it. Each instance has its own data.
 */
export class MemoryRepositoryBackend extends SocketRepositoryBackend {
  private readonly slot: PrivateDaemonSlot;
  private open = false;

  /** options: timeouts, connections, traceparent (see TransportOptions). */
  constructor(options: MemoryBackendOptions = {}, slot?: PrivateDaemonSlot) {
    super({});
    this.slot = slot ?? new PrivateDaemonSlot(options);
  }

  /** The private daemon's process id while connected. */
  get pid(): number | undefined {
    return this.slot.daemon?.pid;
  }

  override async connect(): Promise<void> {
    if (this.open) return;
    await this.slot.open((o) => (this.transportOptions = o), () => super.connect());
    this.open = true;
  }

  override async disconnect(): Promise<void> {
    await super.disconnect();
    if (!this.open) return;
    this.open = false;
    await this.slot.close();
  }
}

/** The job-queue twin of MemoryRepositoryBackend. */
export class MemoryJobQueueBackend extends SocketJobQueueBackend {
  private readonly slot: PrivateDaemonSlot;
  private open = false;

  /** options: timeouts, connections, traceparent (see TransportOptions). */
  constructor(options: MemoryBackendOptions = {}, slot?: PrivateDaemonSlot) {
    super({});
    this.slot = slot ?? new PrivateDaemonSlot(options);
  }

  /** The private daemon's process id while connected. */
  get pid(): number | undefined {
    return this.slot.daemon?.pid;
  }

  override async connect(): Promise<void> {
    if (this.open) return;
    await this.slot.open((o) => (this.transportOptions = o), () => super.connect());
    this.open = true;
  }

  override async disconnect(): Promise<void> {
    await super.disconnect();
    if (!this.open) return;
    this.open = false;
    await this.slot.close();
  }
}

/**
 * Both Memory backends on one private daemon, linked like createStorage's:
 * a transaction's jobs (tx.queue) land in the queue the job backend reads.
 * The daemon stops when both are disconnected.
 */
export function createMemoryStorage(options: MemoryBackendOptions = {}): {
  repository: MemoryRepositoryBackend;
  jobQueue: MemoryJobQueueBackend;
} {
  const slot = new PrivateDaemonSlot(options);
  const repository = new MemoryRepositoryBackend(options, slot);
  const jobQueue = new MemoryJobQueueBackend(options, slot);
  repository.linkJobQueue(jobQueue);
  return { repository, jobQueue };
}
