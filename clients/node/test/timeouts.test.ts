// Connect and request timeouts, against fake daemons on Unix sockets: one
// that accepts and never answers, one that answers only what it is told to,
// and one that never accepts at all.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import Fastify from "fastify";
import storaged, { CLIENT_VERSION, SocketJobQueueBackend, SocketRepositoryBackend, StorageUnavailableError, ValidationError } from "../src/index.js";
import { tempDir } from "./harness.js";

/** A fake daemon: answers GET /healthz and GET /v1/info (connect's checks), and hands every other request to onRequest. */
async function fakeDaemon(onRequest: (line: string, socket: net.Socket) => void = () => {}) {
  const socketPath = join(tempDir(), "fake.sock");
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let closed = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => {
      closed++;
      sockets.delete(socket);
    });
    socket.on("error", () => {});
    let buf = "";
    socket.on("data", (d) => {
      buf += d.toString("latin1");
      for (let end = buf.indexOf("\r\n\r\n"); end >= 0; end = buf.indexOf("\r\n\r\n")) {
        const head = buf.slice(0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        buf = buf.slice(end + 4 + length);
        const line = head.slice(0, head.indexOf("\r\n"));
        if (line.startsWith("GET /healthz ")) answer(socket, 200, '{"status":"ok"}');
        else if (line.startsWith("GET /v1/info ")) answer(socket, 200, JSON.stringify({ version: CLIENT_VERSION }));
        else onRequest(line, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    stats: () => ({ accepted, closed }),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function answer(socket: net.Socket, status: number, body = ""): void {
  socket.write(`HTTP/1.1 ${status} X\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + 15_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const unavailableOn = (socketPath: string, option: string) => (e: unknown) =>
  e instanceof StorageUnavailableError && e.message.includes(socketPath) && e.message.includes(option);

describe("client timeouts", () => {
  it("connect() gives up on a daemon that accepts and never answers", async () => {
    // Not even /healthz is answered.
    const silent = net.createServer(() => {});
    const socketPath = join(tempDir(), "silent.sock");
    await new Promise<void>((resolve) => silent.listen(socketPath, resolve));
    try {
      const repo = new SocketRepositoryBackend({ socketPath, connectTimeoutMs: 200 });
      await assert.rejects(repo.connect(), unavailableOn(socketPath, "connectTimeoutMs"));
      const jobs = new SocketJobQueueBackend({ socketPath, connectTimeoutMs: 200 });
      await assert.rejects(jobs.connect(), unavailableOn(socketPath, "connectTimeoutMs"));
      const app = Fastify();
      await assert.rejects(
        (async () => {
          await app.register(storaged, { socketPath, connectTimeoutMs: 200 });
          await app.ready();
        })(),
        unavailableOn(socketPath, "connectTimeoutMs"),
      );
    } finally {
      silent.close();
    }
  });

  it("a request that gets no answer fails after requestTimeoutMs and its connection is not reused", async () => {
    const d = await fakeDaemon(); // never answers anything but connect's checks
    const repo = new SocketRepositoryBackend({ socketPath: d.socketPath, requestTimeoutMs: 200 });
    try {
      await repo.connect();
      const plans = repo.repository("plans");
      await assert.rejects(plans.findById("x"), unavailableOn(d.socketPath, "requestTimeoutMs"));
      await until("the timed-out connection to be closed", () => d.stats().closed >= 1);
      const before = d.stats().accepted;
      await assert.rejects(plans.count(), unavailableOn(d.socketPath, "requestTimeoutMs"));
      assert.equal(d.stats().accepted, before + 1, "the next request did not get a fresh connection");
    } finally {
      await repo.disconnect();
      await d.close();
    }
  });

  it("a long poll gets its waitMs on top of requestTimeoutMs", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const d = await fakeDaemon((line, socket) => {
      if (line.includes("/dequeue")) void held.then(() => answer(socket, 204));
      // anything else: no answer
    });
    const jobs = new SocketJobQueueBackend({ socketPath: d.socketPath, requestTimeoutMs: 200 });
    try {
      await jobs.connect();
      const queue = jobs.queue("q");
      const poll = queue.dequeue({ waitMs: 60_000 });
      // A plain request sent after the poll times out first: by then the
      // poll has waited longer than requestTimeoutMs alone allows.
      await assert.rejects(queue.stats(), unavailableOn(d.socketPath, "requestTimeoutMs"));
      release();
      assert.equal(await poll, null);
    } finally {
      await jobs.disconnect();
      await d.close();
    }
  });

  it("connect() fails on a daemon that never accepts", async () => {
    const socketPath = join(tempDir(), "stuck.sock");
    // A listener whose process never runs its event loop again: connections
    // queue in the kernel's backlog until it is full, then are refused.
    const child = spawn(process.execPath, ["-e", `
      require("node:net").createServer().listen({ path: ${JSON.stringify(socketPath)}, backlog: 1 }, () => {
        console.log("listening");
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      });
    `], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", () => resolve());
        child.once("exit", (code) => reject(new Error(`listener exited ${code}`)));
      });
      // The first connection waits in the backlog, unanswered: the timeout.
      const first = new SocketRepositoryBackend({ socketPath, connectTimeoutMs: 200 });
      await assert.rejects(first.connect(), unavailableOn(socketPath, "connectTimeoutMs"));
      // Later ones find the backlog full (EAGAIN) or wait like the first.
      for (let i = 0; i < 4; i++) {
        const repo = new SocketRepositoryBackend({ socketPath, connectTimeoutMs: 200 });
        await assert.rejects(repo.connect(), (e: unknown) => e instanceof StorageUnavailableError && e.message.includes(socketPath));
      }
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("refuses timeouts that are not positive integers", async () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) {
      await assert.rejects(new SocketRepositoryBackend({ socketPath: "/nowhere.sock", connectTimeoutMs: bad }).connect(), (e: unknown) =>
        e instanceof ValidationError && e.message.includes("connectTimeoutMs"));
      await assert.rejects(new SocketJobQueueBackend({ socketPath: "/nowhere.sock", requestTimeoutMs: bad }).connect(), (e: unknown) =>
        e instanceof ValidationError && e.message.includes("requestTimeoutMs"));
    }
  });
});

describe("pipelining", () => {
  /** A fake daemon that keeps each request line with its socket until the test answers it. */
  async function holdingDaemon() {
    const held: { line: string; socket: net.Socket }[] = [];
    const d = await fakeDaemon((line, socket) => held.push({ line, socket }));
    return { ...d, held };
  }
  const idOf = (line: string) => decodeURIComponent(line.split(" ")[1]!.split("/").pop()!);

  it("pipelines calls on a busy connection and gives each call its own answer", async () => {
    const d = await holdingDaemon();
    const repo = new SocketRepositoryBackend({ socketPath: d.socketPath, connections: 1, pipelining: 4 });
    try {
      await repo.connect();
      const plans = repo.repository<{ id: string; n: number }>("plans");
      const ids = ["a", "b/1", "c", "d"];
      const calls = ids.map((id) => plans.findById(id));
      await until("all four requests on the daemon", () => d.held.length === 4);
      assert.equal(d.stats().accepted, 1, "the calls did not share the one connection");
      assert.deepEqual(d.held.map((h) => idOf(h.line)), ids);
      // All four answers in one write, in the order asked.
      const socket = d.held[0]!.socket;
      socket.write(
        d.held
          .map((h, n) => {
            const body = JSON.stringify({ id: idOf(h.line), n });
            return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
          })
          .join(""),
      );
      assert.deepEqual(await Promise.all(calls), ids.map((id, n) => ({ id, n })));
    } finally {
      await repo.disconnect();
      await d.close();
    }
  });

  it("holds calls back past connections × pipelining, and sends them as answers come", async () => {
    const d = await holdingDaemon();
    const repo = new SocketRepositoryBackend({ socketPath: d.socketPath, connections: 1, pipelining: 2 });
    try {
      await repo.connect();
      const plans = repo.repository<{ id: string }>("plans");
      const calls = ["a", "b", "c"].map((id) => plans.findById(id));
      await until("two requests on the daemon", () => d.held.length === 2);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(d.held.length, 2, "a third call was sent past pipelining: 2");
      answer(d.held[0]!.socket, 200, JSON.stringify({ id: "a" }));
      await until("the third request on the daemon", () => d.held.length === 3);
      answer(d.held[1]!.socket, 200, JSON.stringify({ id: "b" }));
      answer(d.held[2]!.socket, 200, JSON.stringify({ id: "c" }));
      assert.deepEqual(await Promise.all(calls), [{ id: "a" }, { id: "b" }, { id: "c" }]);
      assert.equal(d.stats().accepted, 1);
    } finally {
      await repo.disconnect();
      await d.close();
    }
  });

  it("pipelining: 1 sends one call per connection at a time", async () => {
    const d = await holdingDaemon();
    const repo = new SocketRepositoryBackend({ socketPath: d.socketPath, connections: 1, pipelining: 1 });
    try {
      await repo.connect();
      const plans = repo.repository<{ id: string }>("plans");
      const calls = ["a", "b"].map((id) => plans.findById(id));
      await until("one request on the daemon", () => d.held.length === 1);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(d.held.length, 1, "a second call was pipelined");
      answer(d.held[0]!.socket, 200, JSON.stringify({ id: "a" }));
      await until("the second request on the daemon", () => d.held.length === 2);
      answer(d.held[1]!.socket, 200, JSON.stringify({ id: "b" }));
      assert.deepEqual(await Promise.all(calls), [{ id: "a" }, { id: "b" }]);
    } finally {
      await repo.disconnect();
      await d.close();
    }
  });

  it("a call that times out fails the calls pipelined behind it, and its connection is not reused", async () => {
    const d = await holdingDaemon();
    const repo = new SocketRepositoryBackend({ socketPath: d.socketPath, connections: 1, pipelining: 3, requestTimeoutMs: 200 });
    try {
      await repo.connect();
      const plans = repo.repository<{ id: string }>("plans");
      const [first, ...behind] = ["a", "b", "c"].map((id) => plans.findById(id));
      await assert.rejects(first!, unavailableOn(d.socketPath, "requestTimeoutMs"));
      for (const call of behind) {
        await assert.rejects(call, (e: unknown) => e instanceof StorageUnavailableError && e.message.includes("a request before this one"));
      }
      await until("the timed-out connection to be closed", () => d.stats().closed >= 1);
      const before = d.stats().accepted;
      const next = plans.findById("d");
      await until("the next request on the daemon", () => d.held.length === 4);
      assert.equal(d.stats().accepted, before + 1, "the next call did not get a fresh connection");
      answer(d.held[3]!.socket, 200, JSON.stringify({ id: "d" }));
      assert.deepEqual(await next, { id: "d" });
    } finally {
      await repo.disconnect();
      await d.close();
    }
  });

  it("never pipelines a transaction's calls behind another call, and lets no call overtake them", async () => {
    const d = await holdingDaemon();
    const repo = new SocketRepositoryBackend({ socketPath: d.socketPath, connections: 1, pipelining: 4 });
    try {
      await repo.connect();
      const plans = repo.repository<{ id: string }>("plans");
      const before = plans.findById("a");
      await until("the first call on the daemon", () => d.held.length === 1);
      const tx = repo.transaction(async (t) => t.repository<{ id: string }>("plans").findById("t"));
      await new Promise((r) => setTimeout(r, 20));
      const after = plans.findById("b");
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(d.held.length, 1, "the transaction's begin, or a call after it, was pipelined behind a call in flight");
      answer(d.held[0]!.socket, 200, JSON.stringify({ id: "a" }));
      // The begin, then the call that came after it (pipelined behind it).
      await until("the begin and the next call on the daemon", () => d.held.length === 3);
      assert.match(d.held[1]!.line, /^POST \/v1\/tx /);
      assert.match(d.held[2]!.line, /\/plans\/b /);
      answer(d.held[1]!.socket, 201, JSON.stringify({ id: "t1" }));
      answer(d.held[2]!.socket, 200, JSON.stringify({ id: "b" }));
      assert.deepEqual(await Promise.all([before, after]), [{ id: "a" }, { id: "b" }]);
      await until("the transaction's call on the daemon", () => d.held.length === 4);
      answer(d.held[3]!.socket, 200, JSON.stringify({ id: "t" }));
      await until("the commit on the daemon", () => d.held.length === 5);
      assert.match(d.held[4]!.line, /^POST \/v1\/tx\/t1\/commit /);
      answer(d.held[4]!.socket, 204);
      assert.deepEqual(await tx, { id: "t" });
    } finally {
      await repo.disconnect();
      await d.close();
    }
  });

  it("refuses a pipelining that is not a whole number from 1 to 64", async () => {
    for (const bad of [0, -1, 1.5, 65, Number.NaN]) {
      await assert.rejects(new SocketRepositoryBackend({ socketPath: "/nowhere.sock", pipelining: bad }).connect(), (e: unknown) =>
        e instanceof ValidationError && e.message.includes("pipelining"));
    }
  });
});
