import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { StorageUnavailableError } from "./errors.js";

/**
 * Finds the storaged binary: STORAGED_BIN, then this package's own bin/,
 * then PATH.
 */
export function findBinary(): string {
  const candidates: string[] = [];
  const fromEnv = process.env["STORAGED_BIN"];
  if (fromEnv) candidates.push(fromEnv);
  candidates.push(fileURLToPath(new URL("../bin/storaged", import.meta.url)));
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir) candidates.push(join(dir, "storaged"));
  }
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // try the next one
    }
  }
  throw new StorageUnavailableError(
    "cannot find the storaged binary: set STORAGED_BIN, put it in @storaged/client/bin, or on PATH (make build writes bin/storaged)",
  );
}

/** Private daemons still running, with their sockets. */
const running = new Map<ChildProcess, string>();
let exitHookInstalled = false;

function removeSocket(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // best effort: nothing more can be done at exit
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // On exit (process.exit(), an uncaught exception, the loop running dry)
  // kill what is left and remove its socket here, synchronously: a daemon
  // killed with SIGKILL cannot. When this process dies without running
  // exit handlers (a signal, SIGKILL), the daemon sees its stdin close,
  // shuts down and removes its socket itself (STORAGED_STDIN_LIFELINE).
  process.on("exit", () => {
    for (const [c, socketPath] of running) {
      c.kill("SIGKILL");
      removeSocket(socketPath);
    }
  });
}

/**
 * A private storaged with memory backends, owned by this process: the
 * engine of MemoryRepositoryBackend and MemoryJobQueueBackend.
 */
export class PrivateDaemon {
  private constructor(
    readonly socketPath: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  /** Starts a daemon; env may choose other backends (the test harness does). */
  static async start(env: Record<string, string> = {}): Promise<PrivateDaemon> {
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
    running.set(child, socketPath);
    installExitHook();
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    void exited.then(() => {
      running.delete(child);
      // A daemon that stopped cleanly removed it already; one that crashed did not.
      removeSocket(socketPath);
    });
    // Ready when it prints its "serving on" line: no polling of the socket.
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const onData = (b: Buffer) => {
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
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    return new PrivateDaemon(socketPath, child, exited);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      // Hold the event loop until the exit is seen (the child is unref'd).
      this.child.ref();
      this.child.kill("SIGTERM");
    }
    await this.exited;
  }
}
