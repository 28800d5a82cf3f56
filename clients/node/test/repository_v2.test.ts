import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ConflictError, SocketRepositoryBackend, ValidationError, type Change } from "../src/index.js";
import { BACKENDS, sleep, startDaemon, uniqueName, type TestDaemon } from "./harness.js";

interface Counter {
  id: string;
  name: string;
  n: number;
  tags: string[];
  meta?: { a: number; b: number };
}

for (const backend of BACKENDS) {
  describe(`repository (issue 18) on ${backend}`, () => {
    let daemon: TestDaemon;
    let repo: SocketRepositoryBackend;
    before(async () => {
      daemon = await startDaemon(backend);
      repo = new SocketRepositoryBackend({ socketPath: daemon.socketPath });
      await repo.connect();
    });
    after(async () => {
      await repo.disconnect();
      await daemon.stop();
    });

    it("counts writes in versions and honours ifVersion", async () => {
      const c = repo.repository<Counter>(uniqueName("counters"));
      await c.create({ id: "a", name: "a", n: 0, tags: [] });
      assert.deepEqual(await c.getWithVersion("a"), { record: { id: "a", name: "a", n: 0, tags: [] }, version: 1 });
      await c.update("a", { $inc: { n: 2 }, $push: { tags: "x" } }, { ifVersion: 1 });
      await assert.rejects(c.update("a", { n: 9 }, { ifVersion: 1 }), ConflictError);
      await assert.rejects(c.delete("a", { ifVersion: 1 }), ConflictError);
      const v = await c.getWithVersion("a");
      assert.deepEqual(v, { record: { id: "a", name: "a", n: 2, tags: ["x"] }, version: 2 });
      await assert.rejects(c.update("a", { $inc: { name: 1 } } as never), ValidationError);
      await c.delete("a", { ifVersion: 2 });
      assert.equal(await c.getWithVersion("a"), null);
    });

    it("adds concurrently without a transaction", async () => {
      const c = repo.repository<Counter>(uniqueName("counters"));
      await c.create({ id: "hits", name: "h", n: 0, tags: [] });
      await Promise.all(Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 50; i++) await c.update("hits", { $inc: { n: 1 } });
      }));
      assert.equal((await c.findById("hits"))?.n, 400);
    });

    it("upserts", async () => {
      const c = repo.repository<Counter>(uniqueName("counters"));
      const first = await c.upsert("u", { name: "one", n: 1, tags: [] });
      assert.deepEqual(first, { id: "u", name: "one", n: 1, tags: [] });
      await c.upsert("u", { name: "two", n: 2, tags: [] });
      assert.equal((await c.getWithVersion("u"))?.version, 2);
      await assert.rejects(c.upsert("u", { name: "x", n: 0, tags: [] }, { ifAbsent: true }), ConflictError);
    });

    it("updates, deletes and gets many, and runs batches whole", async () => {
      const c = repo.repository<Counter>(uniqueName("counters"));
      for (const id of ["a", "b", "c"]) await c.create({ id, name: id, n: id === "c" ? 5 : 1, tags: [] });
      assert.deepEqual(await c.updateMany({ n: 1 }, { $set: { name: "one" } }), { matched: 2, modified: 2 });
      assert.deepEqual((await c.getMany(["c", "zz", "a"])).map((r) => r?.name ?? null), ["c", null, "one"]);
      assert.deepEqual(await c.getMany(["a"], { fields: ["n"] }), [{ id: "a", n: 1 }]);
      assert.equal(await c.query().where("n", "=", 1).deleteMany(), 2);
      const results = await c.batch([
        { op: "put", id: "p", data: { name: "p", n: 0, tags: [] } },
        { op: "update", id: "c", data: { $inc: { n: 1 } }, ifVersion: 1 },
      ]);
      assert.deepEqual(results.map((r) => [r.id, r.version]), [["p", 1], ["c", 2]]);
      await assert.rejects(c.batch([{ op: "delete", id: "p" }, { op: "update", id: "c", data: { n: 0 }, ifVersion: 1 }]), ConflictError);
      assert.notEqual(await c.findById("p"), null);
    });

    it("pages with after and projects fields", async () => {
      const c = repo.repository<Counter>(uniqueName("counters"));
      for (let i = 0; i < 7; i++) await c.create({ id: `r${i}`, name: `n${i}`, n: i % 3, tags: [], meta: { a: i, b: -i } });
      const seen: string[] = [];
      let page = await c.findPage({ sort: { n: "desc" }, limit: 3, fields: ["name", "meta.a"] });
      for (;;) {
        for (const item of page.items) {
          assert.deepEqual(Object.keys(item).sort(), ["id", "meta", "name"]);
          seen.push(item.id);
        }
        if (!page.next) break;
        page = await c.findPage({ sort: { n: "desc" }, limit: 3, fields: ["name", "meta.a"], after: page.next });
      }
      const all = (await c.findMany({ sort: { n: "desc" } })).map((r) => r.id);
      assert.deepEqual(seen, all);
      assert.deepEqual(await c.findById("r1", { fields: ["meta.b"] }), { id: "r1", meta: { b: -1 } });
    });

    it("expires records", async () => {
      const c = repo.repository<Counter>(uniqueName("counters"));
      await c.create({ id: "old", name: "o", n: 0, tags: [] }, { expiresAt: new Date(Date.now() - 1000) });
      await c.create({ id: "new", name: "n", n: 0, tags: [] }, { ttlMs: 60_000 });
      assert.equal(await c.findById("old"), null);
      assert.notEqual(await c.findById("new"), null);
    });

    it("watches changes as they commit", async () => {
      const c = repo.repository<Counter>(uniqueName("counters"));
      const ac = new AbortController();
      const got: Change[] = [];
      const watching = (async () => {
        for await (const change of c.watch({ signal: ac.signal, waitMs: 5_000 })) {
          got.push(change);
          if (change.op === "delete") ac.abort();
        }
      })();
      // Watching starts from now, at its first request: a sentinel is
      // written until the watcher sees it, so the writes below come after.
      await c.create({ id: "s", name: "s", n: 0, tags: [] });
      while (!got.some((g) => g.id === "s")) {
        await c.update("s", { $inc: { n: 1 } });
        await sleep(20);
      }
      await c.create({ id: "w", name: "w", n: 0, tags: [] });
      await c.update("w", { $inc: { n: 1 } });
      await c.delete("w");
      await watching;
      const mine = got.filter((g) => g.id === "w").map((g) => `${g.op} ${g.id} ${g.version}`);
      assert.deepEqual(mine, ["create w 1", "update w 2", "delete w 2"]);
    });
  });
}
