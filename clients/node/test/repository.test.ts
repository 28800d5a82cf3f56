import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  ConflictError,
  NotFoundError,
  SocketRepositoryBackend,
  StorageError,
  TransactionExpiredError,
  ValidationError,
  type Filter,
  type QueryOptions,
  type Sort,
} from "../src/index.js";
import { defaultIndexName } from "../src/repository.js";
import { BACKENDS, loadVectors, sleep, startDaemon, uniqueName, type TestDaemon } from "./harness.js";

interface TestPlanV1 {
  id: string;
  name: string;
  steps: string[];
  priority?: number;
  owner?: { team: string };
}

describe("default index names", () => {
  const rule = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/; // backend.ValidateName
  it("are distinct for distinct specs and valid index names", () => {
    const specs = [
      { fields: ["a", "b"] },
      { fields: ["a_b"] },
      { fields: ["a.b"] },
      { fields: ["x"], unique: true },
      { fields: ["x_u"] },
      { fields: ["x", "u"] },
      { fields: ["b", "a"] },
      { fields: ["a", "b"], unique: true },
      { fields: ["ü"] },
      { fields: ["_"] },
      { fields: Array.from({ length: 8 }, (_, i) => `a_very_long_field_name_number_${i}.with.some.nesting`) },
      { fields: Array.from({ length: 8 }, (_, i) => `a_very_long_field_name_number_${i}.with.some.nesting_`) },
    ];
    const names = specs.map((s) => defaultIndexName(s));
    assert.equal(new Set(names).size, names.length, names.join("\n"));
    for (const n of names) assert.match(n, rule);
    assert.equal(defaultIndexName({ fields: ["x"] }), defaultIndexName({ fields: ["x"], unique: false }));
  });
});

for (const backend of BACKENDS) {
  describe(`repository on ${backend}`, () => {
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

    it("does the seed's CRUD", async () => {
      const plans = repo.repository<TestPlanV1>(uniqueName("plans"));
      const plan = await plans.create({ name: "Test Plan", steps: ["a", "b"], priority: 2 });
      assert.match(plan.id, /^[0-9a-f-]{36}$/);
      assert.deepEqual(await plans.findById(plan.id), plan);
      assert.equal(await plans.findById("missing"), null);
      const updated = await plans.update(plan.id, { name: "Renamed" });
      assert.deepEqual(updated, { ...plan, name: "Renamed" });
      assert.equal(await plans.count(), 1);
      assert.equal(await plans.count({ name: "Renamed" }), 1);
      await plans.delete(plan.id);
      await plans.delete(plan.id);
      assert.equal(await plans.findById(plan.id), null);
    });

    it("keeps caller ids, even ones that need escaping", async () => {
      const plans = repo.repository<TestPlanV1>(uniqueName("plans"));
      for (const id of ["plan/1", "with space", "ü?#&%"]) {
        await plans.create({ id, name: id, steps: [] });
        assert.equal((await plans.findById(id))?.name, id);
      }
      await assert.rejects(plans.create({ id: "plan/1", name: "dup", steps: [] }), ConflictError);
    });

    it("maps errors to classes with codes", async () => {
      const plans = repo.repository<TestPlanV1>(uniqueName("plans"));
      await assert.rejects(plans.update("missing", { name: "x" }), (e: unknown) => e instanceof NotFoundError && e.code === "not_found");
      const bad = { name: { $regex: "x" } } as unknown as Filter<TestPlanV1>;
      await assert.rejects(plans.findMany({ filter: bad }), (e: unknown) => e instanceof ValidationError && e.code === "invalid_argument" && e instanceof StorageError);
      await assert.rejects(plans.findMany({ limit: -1 }), ValidationError);
      await assert.rejects(repo.repository("bad name!").count(), ValidationError);
      await assert.rejects(plans.update("x", { id: "y" } as unknown as Partial<TestPlanV1>), ValidationError);
    });

    it("filters, sorts and pages with typed options", async () => {
      const plans = repo.repository<TestPlanV1>(uniqueName("plans"));
      for (let i = 0; i < 10; i++) {
        await plans.create({ name: `p${i}`, steps: i % 2 ? ["x"] : [], priority: i % 3, owner: { team: i < 5 ? "a" : "b" } });
      }
      const opts: QueryOptions<TestPlanV1> = { filter: { "owner.team": "a", priority: { $gte: 1 } }, sort: { priority: "desc", name: "asc" }, limit: 2 };
      const got = await plans.findMany(opts);
      assert.deepEqual(got.map((p) => p.name), ["p2", "p1"]);
      assert.equal(await plans.count({ steps: { $contains: "x" } }), 5);
      const sort: Sort<TestPlanV1> = { name: "desc" };
      const page2 = await plans.findMany({ sort, limit: 3, offset: 3 });
      assert.deepEqual(page2.map((p) => p.name), ["p6", "p5", "p4"]);
    });

    it("runs typed queries built with query()", async () => {
      const plans = repo.repository<TestPlanV1>(uniqueName("plans"));
      for (let i = 0; i < 10; i++) {
        await plans.create({ name: `p${i}`, steps: i % 2 ? ["x"] : [], priority: i % 3, owner: { team: i < 5 ? "a" : "b" } });
      }
      const q = plans.query().where("owner.team", "=", "a").where("priority", ">=", 1).orderBy("priority", "desc").orderBy("name");
      assert.deepEqual(q.options(), {
        filter: { $and: [{ "owner.team": { $eq: "a" } }, { priority: { $gte: 1 } }] },
        sort: { priority: "desc", name: "asc" },
      });
      assert.deepEqual((await q.limit(2).find()).map((p) => p.name), ["p2", "p1"]);
      assert.equal(await q.count(), 3);
      assert.equal(await plans.query().where("steps", "contains", "x").count(), 5);
      assert.deepEqual((await plans.query().where("name", "in", ["p3", "p7", "zz"]).orderBy("name").offset(1).find()).map((p) => p.name), ["p7"]);
      assert.equal(await plans.query().where("priority", "exists", false).count(), 0);
      assert.equal(await plans.query().count(), 10);
    });

    it("passes the shared filter vectors", async () => {
      const vf = loadVectors();
      const names: Record<string, string> = {};
      for (const [ds, docs] of Object.entries(vf.datasets)) {
        names[ds] = uniqueName(ds);
        const r = repo.repository<{ id: string }>(names[ds]);
        for (const d of docs) await r.create(d);
      }
      let checked = 0;
      for (const v of vf.vectors) {
        const r = repo.repository<{ id: string }>(names[v.dataset]!);
        if (v.error) {
          await assert.rejects(r.findMany(v.query as QueryOptions<{ id: string }>), ValidationError, v.name);
        } else {
          const got = await r.findMany(v.query as QueryOptions<{ id: string }>);
          assert.deepEqual(got.map((d) => d.id), v.expect, v.name);
        }
        checked++;
      }
      assert.ok(checked > 500, `only ${checked} vectors`);
    });

    it("commits and rolls back transactions", async () => {
      const name = uniqueName("accounts");
      const accounts = repo.repository<{ id: string; balance: number }>(name);
      await accounts.create({ id: "a", balance: 100 });
      await accounts.create({ id: "b", balance: 0 });
      const moved = await repo.transaction(async (tx) => {
        const r = tx.repository<{ id: string; balance: number }>(name);
        const a = await r.findById("a");
        await r.update("a", { balance: a!.balance - 30 });
        await r.update("b", { balance: 30 });
        return 30;
      });
      assert.equal(moved, 30);
      assert.equal((await accounts.findById("a"))?.balance, 70);
      await assert.rejects(
        repo.transaction(async (tx) => {
          const r = tx.repository<{ id: string; balance: number }>(name);
          await r.update("a", { balance: 0 });
          await r.create({ id: "c", balance: 1 });
          throw new Error("abort");
        }),
        /abort/,
      );
      assert.equal((await accounts.findById("a"))?.balance, 70);
      assert.equal(await accounts.findById("c"), null);
    });

    it("reports an expired transaction", async () => {
      const name = uniqueName("tx");
      await assert.rejects(
        repo.transaction(async (tx) => {
          await tx.repository(name).create({ id: "x" });
          await sleep(1600); // the harness sets STORAGED_TX_IDLE_TIMEOUT=1s
          await tx.repository(name).create({ id: "y" });
        }),
        (e: unknown) => e instanceof TransactionExpiredError && e.code === "tx_not_found",
      );
      assert.equal(await repo.repository(name).findById("x"), null);
    });

    it("builds indexes and enforces unique ones", async () => {
      const users = repo.repository<{ id: string; email: string }>(uniqueName("users"));
      await users.ensureIndex({ fields: ["email"], unique: true });
      await users.ensureIndex({ fields: ["email"], unique: true });
      await users.create({ email: "a@x" });
      await assert.rejects(users.create({ email: "a@x" }), ConflictError);
    });

    it("gives distinct specs distinct default index names, and re-ensuring one is a no-op", async () => {
      type Doc = { id: string; a?: { b: number }; a_b?: number; b?: number; x?: number; x_u?: number; u?: number };
      const docs = repo.repository<Doc>(uniqueName("ix"));
      const specs = [
        { fields: ["a", "b"] as const },
        { fields: ["a_b"] as const },
        { fields: ["a.b"] as const },
        { fields: ["x"] as const, unique: true },
        { fields: ["x_u"] as const },
        { fields: ["x", "u"] as const },
      ];
      for (const s of specs) await docs.ensureIndex({ fields: [...s.fields], unique: s.unique ?? false });
      for (const s of specs) await docs.ensureIndex({ fields: [...s.fields], unique: s.unique ?? false });
      await docs.ensureIndex({ fields: ["x"], unique: true });
      await docs.create({ x: 1, x_u: 1, u: 1 });
      await docs.create({ x: 2, x_u: 1, u: 1 });
      await assert.rejects(docs.create({ x: 1 }), ConflictError, "the unique index on x is not enforced");
    });

    it("refuses records that cannot be sent as JSON with ValidationError", async () => {
      const docs = repo.repository<{ id: string; n?: unknown; self?: unknown }>(uniqueName("json"));
      await assert.rejects(docs.create({ n: 10n }), (e: unknown) => e instanceof ValidationError && /BigInt/i.test(e.message));
      const circular: { self?: unknown } = {};
      circular.self = circular;
      await assert.rejects(docs.create(circular), (e: unknown) => e instanceof ValidationError && /circular/i.test(e.message));
      await assert.rejects(docs.update("x", { n: 1n }), ValidationError);
      assert.equal(await docs.count(), 0);
    });
  });
}
