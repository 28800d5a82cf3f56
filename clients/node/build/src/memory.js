import { PrivateDaemon } from "./daemon.js";
import { SocketJobQueueBackend } from "./jobqueue.js";
import { SocketRepositoryBackend } from "./repository.js";
/**
 * The seed's zero-setup test double, with exactly the daemon's semantics:
 * connect() starts a private storaged with memory backends, disconnect()
 * stops it. Each instance has its own data.
 */
export class MemoryRepositoryBackend extends SocketRepositoryBackend {
    daemon;
    constructor() {
        super({});
    }
    /** The private daemon's process id while connected. */
    get pid() {
        return this.daemon?.pid;
    }
    async connect() {
        if (this.daemon)
            return;
        this.daemon = await PrivateDaemon.start();
        this.transportOptions = { socketPath: this.daemon.socketPath };
        try {
            await super.connect();
        }
        catch (err) {
            await this.daemon.stop();
            this.daemon = undefined;
            throw err;
        }
    }
    async disconnect() {
        await super.disconnect();
        await this.daemon?.stop();
        this.daemon = undefined;
    }
}
/** The job-queue twin of MemoryRepositoryBackend. */
export class MemoryJobQueueBackend extends SocketJobQueueBackend {
    daemon;
    constructor() {
        super({});
    }
    get pid() {
        return this.daemon?.pid;
    }
    async connect() {
        if (this.daemon)
            return;
        this.daemon = await PrivateDaemon.start();
        this.transportOptions = { socketPath: this.daemon.socketPath };
        try {
            await super.connect();
        }
        catch (err) {
            await this.daemon.stop();
            this.daemon = undefined;
            throw err;
        }
    }
    async disconnect() {
        await super.disconnect();
        await this.daemon?.stop();
        this.daemon = undefined;
    }
}
//# sourceMappingURL=memory.js.map