import { PrivateDaemon } from "./daemon.js";
import { SocketJobQueueBackend } from "./jobqueue.js";
import { SocketRepositoryBackend } from "./repository.js";

/**
 * The seed's zero-setup test double, with exactly the daemon's semantics:
 * connect() starts a private storaged with memory backends, disconnect()
 * stops it. Each instance has its own data.
 */
export class MemoryRepositoryBackend extends SocketRepositoryBackend {
  private daemon: PrivateDaemon | undefined;

  constructor() {
    super({});
  }

  /** The private daemon's process id while connected. */
  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  override async connect(): Promise<void> {
    if (this.daemon) return;
    this.daemon = await PrivateDaemon.start();
    this.transportOptions = { socketPath: this.daemon.socketPath };
    try {
      await super.connect();
    } catch (err) {
      await this.daemon.stop();
      this.daemon = undefined;
      throw err;
    }
  }

  override async disconnect(): Promise<void> {
    await super.disconnect();
    await this.daemon?.stop();
    this.daemon = undefined;
  }
}

/** The job-queue twin of MemoryRepositoryBackend. */
export class MemoryJobQueueBackend extends SocketJobQueueBackend {
  private daemon: PrivateDaemon | undefined;

  constructor() {
    super({});
  }

  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  override async connect(): Promise<void> {
    if (this.daemon) return;
    this.daemon = await PrivateDaemon.start();
    this.transportOptions = { socketPath: this.daemon.socketPath };
    try {
      await super.connect();
    } catch (err) {
      await this.daemon.stop();
      this.daemon = undefined;
      throw err;
    }
  }

  override async disconnect(): Promise<void> {
    await super.disconnect();
    await this.daemon?.stop();
    this.daemon = undefined;
  }
}
