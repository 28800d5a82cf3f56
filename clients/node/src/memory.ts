import { PrivateDaemon } from "./daemon.js";
import { SocketJobQueueBackend } from "./jobqueue.js";
import { SocketRepositoryBackend } from "./repository.js";
import type { TransportOptions } from "./transport.js";

/** What both Memory backends do around their socket twin's connect/disconnect. */
class PrivateDaemonSlot {
  daemon: PrivateDaemon | undefined;

  /** Starts the daemon, points the transport at it, then connects. */
  async open(setOptions: (o: TransportOptions) => void, connect: () => Promise<void>): Promise<void> {
    if (this.daemon) return;
    this.daemon = await PrivateDaemon.start();
    setOptions({ socketPath: this.daemon.socketPath });
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
  private readonly slot = new PrivateDaemonSlot();

  constructor() {
    super({});
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
  private readonly slot = new PrivateDaemonSlot();

  constructor() {
    super({});
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
