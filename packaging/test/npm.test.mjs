// The npm packages as a new user gets them: the packed tarballs installed
// into an empty project, with no Go and no storaged on PATH, no
// STORAGED_BIN and nothing of this repository reachable; the seed's tests
// (project/plan.test.mjs) then run there against the installed daemon.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { accessSync, constants, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { artifact, npmPlatform, ROOT, run, VERSION } from "./helpers.mjs";

function onPath(path, name) {
  return path.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

// Only the system's directories and node's own: no Go toolchain, no bin/.
const PATH = [...new Set([dirname(process.execPath), "/usr/bin", "/bin"])]
  .filter((dir) => !onPath(dir, "go") && !onPath(dir, "storaged"))
  .join(delimiter);

/** The environment of the user's project: ours less Go, storaged and npm's own settings. */
function userEnv() {
  const env = { ...process.env, PATH };
  for (const k of Object.keys(env)) {
    // NODE_TEST_CONTEXT would make the project's node --test think it runs inside ours.
    if (k.startsWith("STORAGED_") || k.startsWith("GO") || k.startsWith("npm_") || k === "NODE_TEST_CONTEXT") delete env[k];
  }
  return env;
}

describe(`npm install of the packed @storaged/client on ${npmPlatform}`, () => {
  const project = mkdtempSync(join(tmpdir(), "storaged-npm-"));
  const client = artifact(`storaged-client-${VERSION}.tgz`);
  const daemon = artifact(`storaged-daemon-${npmPlatform}-${VERSION}.tgz`);
  // The fastify the client is developed against (its lockfile's).
  const fastifyVersion = JSON.parse(readFileSync(join(ROOT, "clients/node/node_modules/fastify/package.json"), "utf8")).version;
  const env = userEnv();

  before(() => {
    assert.ok(PATH.length > 0 && onPath(PATH, "node") && onPath(PATH, "npm"), `node and npm on ${PATH}`);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "plan-service", private: true, type: "module" }));
    // Packages other than ours may come from npm's cache or the registry;
    // ours only from the tarballs (the registry has none of them).
    run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", client, daemon, `fastify@${fastifyVersion}`], {
      cwd: project,
      env,
    });
  });
  after(() => rmSync(project, { recursive: true, force: true }));

  it("has neither Go nor storaged on the PATH the project sees", () => {
    assert.equal(onPath(PATH, "go"), false);
    assert.equal(onPath(PATH, "storaged"), false);
  });

  it("the client lists every platform package, of its own version, as optional", () => {
    const m = JSON.parse(readFileSync(join(project, "node_modules/@storaged/client/package.json"), "utf8"));
    assert.equal(m.version, VERSION);
    assert.equal(m.optionalDependencies[`@storaged/daemon-${npmPlatform}`], VERSION);
    for (const [name, v] of Object.entries(m.optionalDependencies)) {
      assert.match(name, /^@storaged\/daemon-(linux|darwin)-(x64|arm64)$/);
      assert.equal(v, VERSION, name);
    }
    assert.equal(m.devDependencies, undefined);
  });

  it("the platform package says its os and cpu and holds a stamped daemon", () => {
    const dir = join(project, `node_modules/@storaged/daemon-${npmPlatform}`);
    const m = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    assert.deepEqual(m.os, [process.platform]);
    assert.deepEqual(m.cpu, [process.arch]);
    const out = run(join(dir, "bin/storaged"), ["version"], { env });
    assert.match(out, new RegExp(`^storaged ${VERSION.replace(/\./g, "\\.")} \\(commit [0-9a-f]{7,}(-dirty)?, go[0-9.]+, ${process.platform}/`));
  });

  it("the client ships the dashboard's pages and mounts them in Fastify", () => {
    const ui = join(project, "node_modules/@storaged/client/dist/ui");
    for (const f of ["index.html", "app.js", "routes.json", "vendor/preact.js", "vendor/LICENSE-preact", "vendor/LICENSE-htm"]) {
      accessSync(join(ui, f), constants.R_OK);
    }
    const script = `
      import Fastify from "fastify";
      import { storagedDashboard } from "@storaged/client";
      const app = Fastify();
      await app.register(storagedDashboard, { socketPath: "/nonexistent.sock", prefix: "/dash" });
      const res = await app.inject({ url: "/dash/" });
      console.log(res.statusCode, res.headers["content-security-policy"] ? "csp" : "no-csp", res.body.includes("./app.js"));
    `;
    writeFileSync(join(project, "dash.mjs"), script);
    assert.equal(run(process.execPath, ["dash.mjs"], { cwd: project, env }).trim(), "200 csp true");
  });

  it("the seed's Testing block and plan routes pass against the installed daemon", () => {
    copyFileSync(join(ROOT, "packaging/test/project/plan.test.mjs"), join(project, "plan.test.mjs"));
    const r = spawnSync(process.execPath, ["--test", "plan.test.mjs"], { cwd: project, env, encoding: "utf8", timeout: 120_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.match(out, /^# pass 5$/m, out);
    assert.match(out, /^# fail 0$/m, out);
  });
});
