import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { StorageUnavailableError } from "./errors.js";
/**
 * Finds the storaged binary: STORAGED_BIN, then this package's own bin/,
 * then PATH.
 */
export function findBinary() {
    const candidates = [];
    const fromEnv = process.env["STORAGED_BIN"];
    if (fromEnv)
        candidates.push(fromEnv);
    candidates.push(fileURLToPath(new URL("../bin/storaged", import.meta.url)));
    for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
        if (dir)
            candidates.push(join(dir, "storaged"));
    }
    for (const c of candidates) {
        try {
            accessSync(c, constants.X_OK);
            return c;
        }
        catch {
            // try the next one
        }
    }
    throw new StorageUnavailableError("cannot find the storaged binary: set STORAGED_BIN, put it in @storaged/client/bin, or on PATH (make build writes bin/storaged)");
}
const running = new Set();
let exitHookInstalled = false;
function installExitHook() {
    if (exitHookInstalled)
        return;
    exitHookInstalled = true;
    // On a normal exit kill what is left; on a crash or SIGKILL the daemon
    // sees its stdin close and exits by itself (STORAGED_STDIN_LIFELINE).
    process.on("exit", () => {
        for (const c of running)
            c.kill("SIGKILL");
    });
}
/**
 * A private storaged with memory backends, owned by this process: the
 * engine of MemoryRepositoryBackend and MemoryJobQueueBackend.
 */
export class PrivateDaemon {
    socketPath;
    child;
    exited;
    constructor(socketPath, child, exited) {
        this.socketPath = socketPath;
        this.child = child;
        this.exited = exited;
    }
    /** Starts a daemon; env may choose other backends (the test harness does). */
    static async start(env = {}) {
        const bin = findBinary();
        const socketPath = join(tmpdir(), `storaged-${process.pid}-${randomBytes(6).toString("hex")}.sock`);
        const child = spawn(bin, ["serve"], {
            env: {
                ...process.env,
                REPOSITORY_BACKEND: "memory",
                JOBQUEUE_BACKEND: "memory",
                STORAGED_SOCKET: socketPath,
                STORAGED_SOCKET_MODE: "0600",
                STORAGED_STDIN_LIFELINE: "true",
                STORAGED_LOG_LEVEL: process.env["STORAGED_LOG_LEVEL"] ?? "warn",
                ...env,
            },
            stdio: ["pipe", "pipe", "inherit"],
        });
        running.add(child);
        installExitHook();
        const exited = new Promise((resolve) => child.once("exit", () => resolve()));
        void exited.then(() => running.delete(child));
        // Ready when it prints its "serving on" line: no polling of the socket.
        await new Promise((resolve, reject) => {
            let out = "";
            const onData = (b) => {
                out += b.toString();
                if (out.includes("serving on")) {
                    child.stdout?.off("data", onData);
                    child.stdout?.resume();
                    resolve();
                }
            };
            child.stdout?.on("data", onData);
            child.once("error", (err) => reject(new StorageUnavailableError(`cannot start ${bin}: ${err.message}`, undefined, { cause: err })));
            child.once("exit", (code) => reject(new StorageUnavailableError(`${bin} exited with code ${code} before serving`)));
        });
        // Neither the child nor its pipes keep the event loop alive: a test
        // runner that forgets disconnect() still exits, and the daemon with it.
        child.unref();
        child.stdin?.unref?.();
        child.stdout?.unref?.();
        return new PrivateDaemon(socketPath, child, exited);
    }
    get pid() {
        return this.child.pid;
    }
    async stop() {
        if (this.child.exitCode === null && this.child.signalCode === null) {
            // Hold the event loop until the exit is seen (the child is unref'd).
            this.child.ref();
            this.child.kill("SIGTERM");
        }
        await this.exited;
    }
}
//# sourceMappingURL=daemon.js.map