import { PrivateDaemon } from "./daemon.js";
import { SocketJobQueueBackend } from "./jobqueue.js";
import { SocketRepositoryBackend } from "./repository.js";
import type { TransportOptions } from "./transport.js";

/** The transport options a Memory backend takes: all but the socket, which is its own daemon's. */
export type MemoryBackendOptions = Omit<TransportOptions, "socketPath">;

/** What both Memory backends do around their socket twin's connect/disconnect. */
class PrivateDaemonSlot {
  daemon: PrivateDaemon | undefined;

  /** Starts the daemon, points the transport at it, then connects. */
  constructor(private readonly options: MemoryBackendOptions) {}

  async open(setOptions: (o: TransportOptions) => void, connect: () => Promise<void>): Promise<void> {
    if (this.daemon) return;
    this.daemon = await PrivateDaemon.start();
    setOptions({ ...this.options, socketPath: this.daemon.socketPath });
    try {
      await connect();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.daemon?.stop();
    this.daemon = undefined;
  }
}

/**
 * The seed's zero-setup test double, with exactly the daemon's semantics:
 * connect() starts a private storaged with memory backends, disconnect()
 * stops it. Each instance has its own data.
 */
export class MemoryRepositoryBackend extends SocketRepositoryBackend {
  private readonly slot: PrivateDaemonSlot;

  /** options: timeouts, connections, traceparent (see TransportOptions). */
  constructor(options: MemoryBackendOptions = {}) {
    super({});
    this.slot = new PrivateDaemonSlot(options);
  }

  /** The private daemon's process id while connected. */
  get pid(): number | undefined {
    return this.slot.daemon?.pid;
  }

  override async connect(): Promise<void> {
    await this.slot.open((o) => (this.transportOptions = o), () => super.connect());
  }

  override async disconnect(): Promise<void> {
    await super.disconnect();
    await this.slot.close();
  }
}

/** The job-queue twin of MemoryRepositoryBackend. */
export class MemoryJobQueueBackend extends SocketJobQueueBackend {
  private readonly slot: PrivateDaemonSlot;

  /** options: timeouts, connections, traceparent (see TransportOptions). */
  constructor(options: MemoryBackendOptions = {}) {
    super({});
    this.slot = new PrivateDaemonSlot(options);
  }

  /** The private daemon's process id while connected. */
  get pid(): number | undefined {
    return this.slot.daemon?.pid;
  }

  override async connect(): Promise<void> {
    await this.slot.open((o) => (this.transportOptions = o), () => super.connect());
  }

  override async disconnect(): Promise<void> {
    await super.disconnect();
    await this.slot.close();
  }
}
