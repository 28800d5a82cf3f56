import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { StorageUnavailableError } from "./errors.js";

/** The npm package holding the prebuilt daemon for a platform, e.g. @storaged/daemon-linux-x64. */
export function platformPackage(platform: string = process.platform, arch: string = process.arch): string {
  return `@storaged/daemon-${platform}-${arch}`;
}

/** A storaged binary and how it was found (named in errors). */
export interface FoundBinary {
  path: string;
  /** "STORAGED_BIN", the platform package's name, "@storaged/client/bin" or "PATH". */
  source: string;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the storaged binary: STORAGED_BIN, then the platform package
 * (@storaged/daemon-<platform>-<arch>, which npm installs with this one as
 * an optional dependency), then this package's own bin/, then PATH.
 * STORAGED_BIN set to something that is not an executable file is an
 * error, not a hint to look elsewhere: whoever set it meant that binary.
 *
 * env and resolve are for tests; resolve returns a package's package.json
 * path or throws, as require.resolve does.
 */
export function locateBinary(
  env: NodeJS.ProcessEnv = process.env,
  resolve: (id: string) => string = createRequire(import.meta.url).resolve,
): FoundBinary {
  const fromEnv = env["STORAGED_BIN"];
  if (fromEnv) {
    if (executable(fromEnv)) return { path: fromEnv, source: "STORAGED_BIN" };
    throw new StorageUnavailableError(`STORAGED_BIN=${fromEnv} is not an executable file`);
  }
  const pkg = platformPackage();
  try {
    const path = join(dirname(resolve(`${pkg}/package.json`)), "bin", "storaged");
    if (executable(path)) return { path, source: pkg };
  } catch {
    // not installed: npm skips optional dependencies of other platforms
  }
  const own = fileURLToPath(new URL("../bin/storaged", import.meta.url));
  if (executable(own)) return { path: own, source: "@storaged/client/bin" };
  for (const dir of (env["PATH"] ?? "").split(delimiter)) {
    if (dir && executable(join(dir, "storaged"))) return { path: join(dir, "storaged"), source: "PATH" };
  }
  throw new StorageUnavailableError(
    `cannot find the storaged binary: set STORAGED_BIN, install ${pkg} (npm installs it with @storaged/client on the platforms it is built for), ` +
      "or put storaged on PATH (a release tarball or .deb; make build writes bin/storaged)",
  );
}

/** The storaged binary's path (see locateBinary for the order). */
export function findBinary(): string {
  return locateBinary().path;
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
    /** The binary it runs and how it was found. */
    readonly binary: FoundBinary,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  /** Starts a daemon; env may choose other backends (the test harness does). */
  static async start(env: Record<string, string> = {}): Promise<PrivateDaemon> {
    const found = locateBinary();
    const bin = found.path;
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
          child.stdout.off("data", onData);
          child.stdout.resume();
          resolve();
        }
      };
      child.stdout.on("data", onData);
      child.once("error", (err) => reject(new StorageUnavailableError(`cannot start ${bin}: ${err.message}`, undefined, { cause: err })));
      child.once("exit", (code) => reject(new StorageUnavailableError(`${bin} exited with code ${code} before serving`)));
    });
    // Neither the child nor its pipes keep the event loop alive: a test
    // runner that forgets disconnect() still exits, and the daemon with it.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    return new PrivateDaemon(socketPath, found, child, exited);
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
