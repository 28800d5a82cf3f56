import { StorageUnavailableError } from "./errors.js";

/**
 * This client's release. Kept equal to package.json's "version" and the
 * repository's VERSION file, which stamps the daemon (a test checks all
 * three agree).
 */
export const CLIENT_VERSION = "0.1.0";

/**
 * What an unstamped daemon calls itself: `go build` without make's
 * -ldflags, i.e. built from the checkout at hand. It is let through:
 * whoever built it chose it, and no release ever carries it.
 */
export const UNSTAMPED_VERSION = "dev";

const SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * The daemon answering on a socket is of another release line than this
 * client: its API may differ, so connect() refuses it rather than fail
 * later on a route or a field that one side lacks.
 */
export class IncompatibleDaemonError extends StorageUnavailableError {
  readonly daemonVersion: string;
  readonly clientVersion: string;
  constructor(message: string, daemonVersion: string, clientVersion: string) {
    super(message);
    this.name = "IncompatibleDaemonError";
    this.daemonVersion = daemonVersion;
    this.clientVersion = clientVersion;
  }
}

/**
 * The compatibility rule: client and daemon share major.minor (0.1.x with
 * 0.1.y, 1.4.x with 1.4.y). Patch releases only fix, on either side; a
 * minor release may add routes or fields the other side relies on, and
 * before 1.0 a minor release may change them. Prerelease and build
 * suffixes are ignored. "dev" (an unstamped build) is compatible.
 *
 * Returns the reason they are not compatible, or undefined when they are.
 */
export function incompatibility(daemonVersion: string, clientVersion: string = CLIENT_VERSION): string | undefined {
  if (daemonVersion === UNSTAMPED_VERSION) return undefined;
  const d = SEMVER.exec(daemonVersion);
  const c = SEMVER.exec(clientVersion);
  if (!c) return `the client's own version ${JSON.stringify(clientVersion)} is not a release version`;
  const line = `${c[1]}.${c[2]}.x`;
  if (!d) return `its version ${JSON.stringify(daemonVersion)} is not a release version (want ${line})`;
  if (d[1] !== c[1] || d[2] !== c[2]) return `it is ${d[1]}.${d[2]}.x and this client needs ${line} (same major.minor)`;
  return undefined;
}

/** Throws IncompatibleDaemonError naming both versions and where the daemon is. */
export function assertCompatible(daemonVersion: unknown, where: string, clientVersion: string = CLIENT_VERSION): void {
  const v = typeof daemonVersion === "string" ? daemonVersion : String(daemonVersion);
  const why = incompatibility(v, clientVersion);
  if (why === undefined) return;
  throw new IncompatibleDaemonError(
    `storaged ${v} ${where} does not work with @storaged/client ${clientVersion}: ${why}. ` +
      `Run a storaged of the client's release line (the @storaged/daemon-* package of the same version, the release tarball or .deb), or a client of the daemon's.`,
    v,
    clientVersion,
  );
}
