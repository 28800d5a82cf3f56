// Jobs in the same transaction as records (DESIGN §4 "Transactional
// jobs"), and transactions that retry themselves after a serialization
// conflict, against a real daemon on every backend.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import {
  ConflictError,
  createMemoryStorage,
  createStorage,
  JobStatus,
  SocketJobQueueBackend,
  SocketRepositoryBackend,
  ValidationError,
  type Storage,
} from "../src/index.js";
import { BACKENDS, startDaemon, uniqueName, type TestDaemon } from "./harness.js";

interface Order {
  id: string;
  total: number;
}
interface Counter {
  id: string;
  n: number;
}

/** Where the daemon keeps jobs in the records' database. */
const TRANSACTIONAL = new Set(["memory", "sqlite", "postgres"]);

async function info(socketPath: string): Promise<{ transactionalJobs: boolean; repositoryBackend?: string }> {
  const repo = new SocketRepositoryBackend({ socketPath });
  await repo.connect();
  try {
    // The transport is the client's own; GET /v1/info is not a client call.
    const t = (repo as unknown as { transport: () => { request(m: string, p: string): Promise<{ body: string }> } }).transport();
    return JSON.parse((await t.request("GET", "/v1/info")).body) as { transactionalJobs: boolean };
  } finally {
    await repo.disconnect();
  }
}

/** Keeps both cores busy while fn runs, so that transactions overlap and time out of step. */
async function underCPULoad<R>(fn: () => Promise<R>): Promise<R> {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < 2; i++) hogs.push(spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" }));
  try {
    return await fn();
  } finally {
    for (const h of hogs) h.kill("SIGKILL");
  }
}

for (const backend of BACKENDS) {
  describe(`transactional jobs on ${backend}`, () => {
    let daemon: TestDaemon;
    let storage: Storage;
    before(async () => {
      daemon = await startDaemon(backend);
      storage = createStorage({ socketPath: daemon.socketPath });
      await storage.repository.connect();
      await storage.jobQueue.connect();
    });
    after(async () => {
      await storage.jobQueue.disconnect();
      await storage.repository.disconnect();
      await daemon.stop();
    });

    it("says in GET /v1/info whether jobs can join a transaction", async () => {
      assert.equal((await info(daemon.socketPath)).transactionalJobs, TRANSACTIONAL.has(backend));
    });

    if (!TRANSACTIONAL.has(backend)) {
      it("refuses a transactional enqueue naming both backends, and writes nothing", async () => {
        const orders = uniqueName("orders");
        const queueName = uniqueName("mail");
        let recordId = "";
        await assert.rejects(
          storage.repository.transaction(async (tx) => {
            recordId = (await tx.repository<Order>(orders).create({ total: 5 })).id;
            await tx.queue<{ orderId: string }>(queueName).enqueue({ orderId: recordId });
          }),
          (err: unknown) => {
            assert.ok(err instanceof ValidationError, String(err));
            assert.match(err.message, /memory/);
            assert.match(err.message, new RegExp(backend));
            return true;
          },
        );
        assert.equal(await storage.repository.repository<Order>(orders).findById(recordId), null);
        const stats = await storage.jobQueue.queue(queueName).stats();
        assert.equal(stats.pending + stats.processing + stats.completed, 0);
      });
      return;
    }

    it("rolls back both the record and the job when fn throws", async () => {
      const orders = uniqueName("orders");
      const qname = uniqueName("mail");
      const queue = storage.jobQueue.queue<{ orderId: string }>(qname);
      let recordId = "";
      await assert.rejects(
        storage.repository.transaction(async (tx) => {
          recordId = (await tx.repository<Order>(orders).create({ total: 5 })).id;
          await tx.queue<{ orderId: string }>(qname).enqueue({ orderId: recordId });
          throw new Error("payment declined");
        }),
        /payment declined/,
      );
      assert.equal(await storage.repository.repository<Order>(orders).findById(recordId), null);
      assert.equal(await queue.dequeue(), null);
      assert.equal((await queue.stats()).pending, 0);
    });

    it("commits both, and the job is delivered exactly once, only after commit", async () => {
      const orders = uniqueName("orders");
      const qname = uniqueName("mail");
      const queue = storage.jobQueue.queue<{ orderId: string }>(qname);
      // A long poll waiting before the transaction begins wakes at commit.
      const polling = queue.dequeue({ waitMs: 10_000 });
      const order = await storage.repository.transaction(async (tx) => {
        const o = await tx.repository<Order>(orders).create({ total: 7 });
        const [a, b] = await tx.queue<{ orderId: string }>(qname).enqueueMany([{ data: { orderId: o.id } }, { data: { orderId: o.id }, key: `dup-${o.id}` }]);
        assert.ok(a && b);
        // Dedupe keys are resolved inside the transaction.
        assert.equal(await tx.queue<{ orderId: string }>(qname).enqueue({ orderId: o.id }, { key: `dup-${o.id}` }), b);
        // Not visible outside before commit. (On SQLite a dequeue waits for
        // the one writer, which this transaction holds: nothing to ask.)
        if (backend !== "sqlite") assert.equal(await storage.jobQueue.queue(qname).dequeue(), null);
        return o;
      });
      assert.deepEqual(await storage.repository.repository<Order>(orders).findById(order.id), order);
      const first = await polling;
      assert.ok(first, "the waiting long poll woke at commit");
      const second = await queue.dequeue();
      assert.ok(second);
      assert.equal(await queue.dequeue(), null, "two jobs committed, two delivered");
      for (const j of [first, second]) {
        assert.equal(j.data.orderId, order.id);
        await queue.acknowledge(j);
      }
      assert.equal((await queue.stats()).completed, 2);
    });

    it("acknowledges inside a transaction: rollback keeps the claim, commit completes the job", async () => {
      const plans = uniqueName("plans");
      const qname = uniqueName("exec");
      const queue = storage.jobQueue.queue<{ planId: string }>(qname);
      const plan = await storage.repository.repository<{ id: string; status: string }>(plans).create({ status: "created" });
      await queue.enqueue({ planId: plan.id });
      const job = await queue.dequeue({ leaseMs: 60_000 });
      assert.ok(job);

      await assert.rejects(
        storage.repository.transaction(async (tx) => {
          await tx.repository<{ id: string; status: string }>(plans).update(plan.id, { status: "executed" });
          await tx.queue(qname).acknowledge(job.id);
          throw new Error("not this time");
        }),
        /not this time/,
      );
      assert.equal((await queue.getJob(job.id))?.status, JobStatus.PROCESSING, "a rolled-back ack leaves the job processing");
      assert.equal(storage.jobQueue.heldClaims(), 1, "and the claim held, so the job id still settles it");

      await storage.repository.transaction(async (tx) => {
        await tx.repository<{ id: string; status: string }>(plans).update(plan.id, { status: "executed" });
        await tx.queue(qname).acknowledge(job.id);
      });
      assert.equal((await queue.getJob(job.id))?.status, JobStatus.COMPLETED);
      assert.equal((await storage.repository.repository<{ id: string; status: string }>(plans).findById(plan.id))?.status, "executed");
      assert.equal(storage.jobQueue.heldClaims(), 0);
    });

    it("fails a job inside a transaction: it is retried after commit", async () => {
      const qname = uniqueName("retry");
      const queue = storage.jobQueue.queue<{ n: number }>(qname);
      await queue.enqueue({ n: 1 }, { maxAttempts: 2, backoff: { type: "fixed", delayMs: 0 } });
      const job = await queue.dequeue();
      assert.ok(job);
      await storage.repository.transaction(async (tx) => {
        await tx.queue<{ n: number }>(qname).fail(job, new Error("try again"));
      });
      const again = await queue.dequeue();
      assert.ok(again, "retried after the committed fail");
      assert.equal(again.attempts, 2);
      assert.equal(again.lastError?.message, "try again");
      await queue.acknowledge(again);
    });

    it("lands every increment of 8 concurrent clients, retrying conflicts, under CPU load", async () => {
      const counters = uniqueName("counters");
      const id = (await storage.repository.repository<Counter>(counters).create({ n: 0 })).id;
      const clients = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const r = new SocketRepositoryBackend({ socketPath: daemon.socketPath });
          await r.connect();
          return r;
        }),
      );
      const each = 10;
      let runs = 0;
      try {
        await underCPULoad(() =>
          Promise.all(
            clients.map(async (client) => {
              for (let i = 0; i < each; i++) {
                await client.transaction(async (tx) => {
                  runs++;
                  const c = await tx.repository<Counter>(counters).findById(id);
                  await tx.repository<Counter>(counters).update(id, { n: c!.n + 1 });
                });
              }
            }),
          ),
        );
      } finally {
        await Promise.all(clients.map((c) => c.disconnect()));
      }
      assert.equal((await storage.repository.repository<Counter>(counters).findById(id))?.n, 8 * each);
      // Not asserted: how many ran twice depends on timing (none on memory
      // and SQLite, whose transactions hold the one writer).
      console.log(`# ${backend}: ${8 * each} increments in ${runs} runs of fn`);
    });

    if (backend === "postgres") {
      it("runs fn again after a serialization conflict, and raises it when retries are off", async () => {
        const counters = uniqueName("counters");
        const repo = storage.repository.repository<Counter>(counters);
        const id = (await repo.create({ n: 0 })).id;
        // Another transaction commits a write to the row fn has read, between
        // fn's read and its write: fn's write cannot be serialized after it.
        const interfere = () =>
          storage.repository.transaction(async (other) => {
            await other.repository<Counter>(counters).update(id, { n: 100 });
          });
        let runs = 0;
        await storage.repository.transaction(async (tx) => {
          runs++;
          const c = await tx.repository<Counter>(counters).findById(id);
          if (runs === 1) await interfere();
          await tx.repository<Counter>(counters).update(id, { n: c!.n + 1 });
        });
        assert.equal(runs, 2);
        assert.equal((await repo.findById(id))?.n, 101);

        runs = 0;
        await assert.rejects(
          storage.repository.transaction(
            async (tx) => {
              runs++;
              const c = await tx.repository<Counter>(counters).findById(id);
              await interfere();
              await tx.repository<Counter>(counters).update(id, { n: c!.n + 1 });
            },
            { retries: 0 },
          ),
          (err: unknown) => err instanceof ConflictError && err.retryable,
        );
        assert.equal(runs, 1);
        assert.equal((await repo.findById(id))?.n, 100);
      });
    }

    it("refuses a negative or fractional retries option before beginning", async () => {
      for (const retries of [-1, 1.5]) {
        await assert.rejects(
          storage.repository.transaction(async () => undefined, { retries }),
          (err: unknown) => err instanceof ValidationError && /retries/.test(err.message),
        );
      }
    });
  });
}

describe("transactional jobs with Memory backends", () => {
  it("createMemoryStorage puts both on one private daemon, so tx.queue reaches the worker's queue", async () => {
    const { repository, jobQueue } = createMemoryStorage();
    await repository.connect();
    await jobQueue.connect();
    try {
      assert.equal(repository.pid, jobQueue.pid);
      await repository.transaction(async (tx) => {
        await tx.repository<Order>("orders").create({ total: 1 });
        await tx.queue<{ n: number }>("mail").enqueue({ n: 1 });
      });
      const job = await jobQueue.queue<{ n: number }>("mail").dequeue();
      assert.deepEqual(job?.data, { n: 1 });
      await jobQueue.queue("mail").acknowledge(job);
    } finally {
      await jobQueue.disconnect();
      await repository.disconnect();
    }
  });

  it("refuses tx.queue when the linked job queue is on another daemon", async () => {
    const a = await startDaemon("memory");
    const b = await startDaemon("memory");
    const repository = new SocketRepositoryBackend({ socketPath: a.socketPath });
    const jobQueue = new SocketJobQueueBackend({ socketPath: b.socketPath });
    repository.linkJobQueue(jobQueue);
    await repository.connect();
    await jobQueue.connect();
    try {
      await assert.rejects(
        repository.transaction(async (tx) => {
          tx.queue("mail");
        }),
        (err: unknown) => err instanceof ValidationError && err.message.includes(b.socketPath),
      );
    } finally {
      await jobQueue.disconnect();
      await repository.disconnect();
      await a.stop();
      await b.stop();
    }
  });
});
