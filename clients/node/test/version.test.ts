// The client/daemon version rule (version.ts) and how the client finds the
// daemon binary (daemon.ts): the order, and the platform package before PATH.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { locateBinary, platformPackage } from "../src/daemon.js";
import { CLIENT_VERSION, IncompatibleDaemonError, MemoryRepositoryBackend, SocketRepositoryBackend } from "../src/index.js";
import { incompatibility } from "../src/version.js";
import { tempDir } from "./harness.js";

describe("the version rule: same major.minor", () => {
  const cases: { daemon: string; client: string; ok: boolean }[] = [
    { daemon: "0.1.0", client: "0.1.0", ok: true },
    { daemon: "0.1.7", client: "0.1.0", ok: true },
    { daemon: "0.1.0", client: "0.1.9", ok: true },
    { daemon: "v0.1.2", client: "0.1.0", ok: true },
    { daemon: "0.1.0-rc.1", client: "0.1.0", ok: true },
    { daemon: "0.1.0+abc", client: "0.1.0", ok: true },
    { daemon: "dev", client: "0.1.0", ok: true },
    { daemon: "0.2.0", client: "0.1.0", ok: false },
    { daemon: "1.1.0", client: "0.1.0", ok: false },
    { daemon: "1.4.0", client: "1.3.2", ok: false },
    { daemon: "f7a50e7", client: "0.1.0", ok: false },
    { daemon: "", client: "0.1.0", ok: false },
    { daemon: "0.1", client: "0.1.0", ok: false },
  ];
  for (const c of cases) {
    it(`daemon ${JSON.stringify(c.daemon)} with client ${c.client}: ${c.ok ? "compatible" : "refused"}`, () => {
      assert.equal(incompatibility(c.daemon, c.client) === undefined, c.ok, incompatibility(c.daemon, c.client));
    });
  }

  it("CLIENT_VERSION is package.json's version and the repository's VERSION (which stamps the daemon)", () => {
    // build/test/version.test.js → clients/node and the repository root.
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    const repoVersion = readFileSync(new URL("../../../../VERSION", import.meta.url), "utf8").trim();
    assert.equal(CLIENT_VERSION, pkg.version);
    assert.equal(CLIENT_VERSION, repoVersion);
  });
});

/** A stand-in daemon that answers /healthz and /v1/info with the given version. */
function fakeDaemon(socketPath: string, version: unknown): Promise<Server> {
  const server = createServer((req, res) => {
    const body = req.url === "/v1/info" ? JSON.stringify({ version, repositoryBackend: "memory" }) : JSON.stringify({ status: "ok" });
    res.setHeader("content-type", "application/json");
    res.end(body);
  });
  return new Promise((resolve) => server.listen(socketPath, () => resolve(server)));
}

describe("a daemon of another release line is refused at connect", () => {
  const dir = tempDir();
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  it("names both versions and the socket", async () => {
    const socketPath = join(dir, "other.sock");
    servers.push(await fakeDaemon(socketPath, "9.9.0"));
    const backend = new SocketRepositoryBackend({ socketPath });
    const err = await backend.connect().then(
      () => assert.fail("connected to a 9.9.0 daemon"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof IncompatibleDaemonError, String(err));
    assert.equal(err.daemonVersion, "9.9.0");
    assert.equal(err.clientVersion, CLIENT_VERSION);
    assert.match(err.message, /storaged 9\.9\.0/);
    assert.ok(err.message.includes(`@storaged/client ${CLIENT_VERSION}`), err.message);
    assert.ok(err.message.includes(socketPath), err.message);
    assert.equal(err.code, "unavailable");
    // Refused means not connected: calls say so rather than reach the daemon.
    await assert.rejects(async () => backend.repository("x").findById("a"), /not connected/);
  });

  it("connects to a daemon of the same major.minor", async () => {
    const [major, minor] = CLIENT_VERSION.split(".");
    const socketPath = join(dir, "same.sock");
    servers.push(await fakeDaemon(socketPath, `${major}.${minor}.99`));
    const backend = new SocketRepositoryBackend({ socketPath });
    await backend.connect();
    await backend.disconnect();
  });

  it("a private daemon (Memory backends) is named by its binary and how it was found", async () => {
    // A stand-in storaged: serves the fake API on STORAGED_SOCKET and says so.
    const bin = join(dir, "old-storaged");
    writeFileSync(
      bin,
      `#!${process.execPath}
const http = require("node:http");
const s = http.createServer((req, res) => res.end(req.url === "/v1/info" ? '{"version":"0.0.1"}' : "{}"));
s.listen(process.env.STORAGED_SOCKET, () => console.log("serving on " + process.env.STORAGED_SOCKET));
process.stdin.on("end", () => process.exit(0)).resume();
`,
    );
    chmodSync(bin, 0o755);
    const saved = process.env["STORAGED_BIN"];
    process.env["STORAGED_BIN"] = bin;
    try {
      const backend = new MemoryRepositoryBackend();
      const err = await backend.connect().then(
        () => assert.fail("connected to a 0.0.1 daemon"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof IncompatibleDaemonError, String(err));
      assert.ok(err.message.includes(`storaged 0.0.1 at ${bin} (found through STORAGED_BIN)`), err.message);
      assert.equal(backend.pid, undefined, "the refused daemon was stopped");
    } finally {
      if (saved === undefined) delete process.env["STORAGED_BIN"];
      else process.env["STORAGED_BIN"] = saved;
    }
  });
});

describe("finding the binary", () => {
  const dir = tempDir();
  const fake = (path: string) => {
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, "#!/bin/sh\n");
    chmodSync(path, 0o755);
    return path;
  };
  let envBin: string;
  let pkgDir: string;
  let pathDir: string;
  before(() => {
    envBin = fake(join(dir, "env", "storaged"));
    pkgDir = join(dir, "node_modules", platformPackage());
    fake(join(pkgDir, "bin", "storaged"));
    writeFileSync(join(pkgDir, "package.json"), "{}");
    pathDir = join(dir, "path");
    fake(join(pathDir, "storaged"));
  });
  const resolvePkg = (id: string) => {
    assert.equal(id, `${platformPackage()}/package.json`);
    return join(pkgDir, "package.json");
  };
  const notInstalled = (id: string): string => {
    throw new Error(`Cannot find module '${id}'`);
  };

  it("the platform package is named for this platform", () => {
    assert.equal(platformPackage(), `@storaged/daemon-${process.platform}-${process.arch}`);
    assert.equal(platformPackage("linux", "arm64"), "@storaged/daemon-linux-arm64");
  });

  it("STORAGED_BIN wins over the platform package and PATH", () => {
    assert.deepEqual(locateBinary({ STORAGED_BIN: envBin, PATH: pathDir }, resolvePkg), { path: envBin, source: "STORAGED_BIN" });
  });

  it("STORAGED_BIN that is not an executable is an error naming it, not a fallback", () => {
    assert.throws(() => locateBinary({ STORAGED_BIN: join(dir, "missing"), PATH: pathDir }, resolvePkg), /STORAGED_BIN=.*missing is not an executable/);
  });

  it("the platform package comes before PATH", () => {
    assert.deepEqual(locateBinary({ PATH: pathDir }, resolvePkg), {
      path: join(pkgDir, "bin", "storaged"),
      source: platformPackage(),
    });
  });

  it("PATH when the platform package is not installed", () => {
    assert.deepEqual(locateBinary({ PATH: pathDir }, notInstalled), { path: join(pathDir, "storaged"), source: "PATH" });
  });

  it("nothing anywhere: the error says what to install", () => {
    assert.throws(() => locateBinary({ PATH: join(dir, "empty") }, notInstalled), (err: Error) => {
      assert.ok(err.message.includes(platformPackage()), err.message);
      assert.match(err.message, /STORAGED_BIN/);
      return true;
    });
  });
});
