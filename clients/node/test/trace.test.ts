import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { it } from "node:test";
import { SocketRepositoryBackend } from "../src/index.js";
import { findBinary } from "../src/daemon.js";
import { sleep, tempDir } from "./harness.js";

it("sends the caller's traceparent, which the daemon logs with the request", async () => {
  const socketPath = join(tempDir(), "trace.sock");
  const child = spawn(findBinary(), ["serve"], {
    env: { ...process.env, STORAGED_SOCKET: socketPath, STORAGED_LOG_LEVEL: "debug", REPOSITORY_BACKEND: "memory", JOBQUEUE_BACKEND: "memory" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((r) => child.once("exit", r));
  try {
    let logs = "";
    child.stderr.on("data", (b: Buffer) => (logs += b.toString()));
    await new Promise<void>((resolve) => child.stdout.on("data", (b: Buffer) => b.toString().includes("serving on") && resolve()));
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const repo = new SocketRepositoryBackend({ socketPath, traceparent: () => tp });
    await repo.connect();
    await repo.repository("traced").findById("nope");
    await repo.disconnect();
    for (let i = 0; i < 100 && !logs.includes("findById"); i++) await sleep(10);
    const line = logs.split("\n").find((l) => l.includes(tp) && l.includes("findById"));
    assert.ok(line, `no log line carries the traceparent:\n${logs}`);
    assert.match(line, /"route":"findById"/);
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
});
