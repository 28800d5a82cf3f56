// Type tests: this file must compile (tsc --noEmit), and every line under
// an expect-error directive must fail to. It is how users write code against the
// client, so a change that breaks it breaks them.
import Fastify from "fastify";
import storaged, {
  JobStatus,
  MemoryRepositoryBackend,
  SocketJobQueueBackend,
  SocketRepositoryBackend,
  type Filter,
  type Job,
  type JobQueue,
  type QueryOptions,
  type Repository,
  type RepositoryBackend,
  type Sort,
} from "../../src/index.js";

interface TestPlanV1 {
  id: string;
  name: string;
  steps: string[];
  priority: number;
  active: boolean;
  owner?: { team: string };
}

export async function usage(): Promise<void> {
  const app = Fastify();
  await app.register(storaged, { socketPath: "/run/storaged/storaged.sock" });

  const plans: Repository<TestPlanV1> = app.repository.repository<TestPlanV1>("plans");
  const created: TestPlanV1 = await plans.create({ name: "n", steps: [], priority: 1, active: true });
  await plans.create({ id: "own-id", name: "n", steps: [], priority: 1, active: true });
  // @ts-expect-error a required field is missing
  await plans.create({ name: "n", steps: [] });
  const found: TestPlanV1 | null = await plans.findById(created.id);
  void found;
  await plans.update(created.id, { priority: 2 });
  // @ts-expect-error the id cannot be updated
  await plans.update(created.id, { id: "x" });
  // @ts-expect-error wrong value type
  await plans.update(created.id, { priority: "high" });

  const filter: Filter<TestPlanV1> = {
    name: "n",
    priority: { $gte: 1, $lt: 10 },
    active: true,
    steps: { $contains: "a" },
    "owner.team": { $in: ["a", "b"] },
    $or: [{ name: { $startsWith: "x" } }, { priority: { $in: [1, 2] } }],
    $not: { active: false },
  };
  // @ts-expect-error $gt on a number field takes a number
  const badOperand: Filter<TestPlanV1> = { priority: { $gt: "1" } };
  // @ts-expect-error equality on a string field takes a string
  const badEquality: Filter<TestPlanV1> = { name: 5 };
  // @ts-expect-error $startsWith applies to strings only
  const badPrefix: Filter<TestPlanV1> = { priority: { $startsWith: "1" } };
  void badOperand, badEquality, badPrefix;
  const sort: Sort<TestPlanV1> = { priority: "desc", "owner.team": "asc" };
  // @ts-expect-error directions are asc or desc
  const badSort: Sort<TestPlanV1> = { priority: "down" };
  void badSort;
  const opts: QueryOptions<TestPlanV1> = { filter, sort, limit: 10, offset: 0 };
  const many: TestPlanV1[] = await plans.findMany(opts);
  const n: number = await plans.count({ active: true });
  void many, n;

  // The typed query builder: fields and operand types are checked.
  const top: TestPlanV1[] = await plans.query().where("active", "=", true).where("priority", ">", 3).orderBy("name", "desc").limit(10).find();
  const n2: number = await plans.query().where("steps", "contains", "build").where("owner.team", "in", ["a", "b"]).count();
  void top, n2;
  // @ts-expect-error no such field
  plans.query().where("nope", "=", 1);
  // @ts-expect-error priority is a number
  plans.query().where("priority", ">", "3");
  // @ts-expect-error startsWith needs a string field
  plans.query().where("priority", "startsWith", "1");
  // @ts-expect-error contains needs an array field and its element type
  plans.query().where("steps", "contains", 5);
  // @ts-expect-error not an operator
  plans.query().where("name", "like", "x");
  // @ts-expect-error orderBy takes fields of T
  plans.query().orderBy("nope");

  const result: number = await app.repository.transaction(async (tx: RepositoryBackend) => {
    await tx.repository<TestPlanV1>("plans").delete(created.id);
    return 1;
  });
  void result;

  interface ExecutePlanJob {
    planId: string;
    executionId: string;
  }
  const queue: JobQueue<ExecutePlanJob> = app.jobQueue.queue<ExecutePlanJob>();
  await queue.enqueue({ planId: "plan-123", executionId: "exec-456" }, { runAt: new Date(Date.now() + 60000) });
  // @ts-expect-error job data is typed
  await queue.enqueue({ planId: 123 });
  const job: Job<ExecutePlanJob> | null = await queue.dequeue({ waitMs: 1000 });
  if (job) {
    const when: Date = job.runAt;
    const planId: string = job.data.planId;
    void when, planId;
    await queue.acknowledge(job.id);
    // The claim-bound forms: the Job carries its own lease.
    await queue.heartbeat(job, 60_000);
    await queue.acknowledge(job);
    await queue.fail(job, new Error("x"), false);
    const other: Job<{ n: number }> = { ...job, data: { n: 1 } };
    // @ts-expect-error a job of another queue type
    await queue.acknowledge(other);
    // @ts-expect-error a number is neither an id nor a Job
    await queue.fail(42, new Error("x"));
  }
  // Jobs in the records' transaction, from the plugin's decorator alone.
  const orderId: string = await app.repository.transaction(
    async (tx) => {
      const plan = await tx.repository<TestPlanV1>("plans").create({ name: "n", steps: [], priority: 1, active: true });
      const jobId: string = await tx.queue<ExecutePlanJob>().enqueue({ planId: plan.id, executionId: "e" }, { key: plan.id });
      // @ts-expect-error transactional job data is typed too
      await tx.queue<ExecutePlanJob>("exec").enqueue({ planId: 1 });
      const ids: string[] = await tx.queue<ExecutePlanJob>("exec").enqueueMany([{ data: { planId: "p", executionId: "e" } }]);
      if (job) {
        await tx.queue<ExecutePlanJob>().acknowledge(job);
        await tx.queue<ExecutePlanJob>().fail(job.id, new Error("x"), false);
      }
      void ids;
      return jobId;
    },
    { retries: 3 },
  );
  void orderId;
  // @ts-expect-error retries is a number
  await app.repository.transaction(async () => 1, { retries: "3" });
  const status: JobStatus | null = await queue.getStatus("x");
  void status;
  const worker = queue.work(async (j) => {
    const id: string = j.data.executionId;
    void id;
  }, { concurrency: 4 });
  await worker.stop();

  const jobsWithTimeouts = new SocketJobQueueBackend({ socketPath: "/x.sock", connectTimeoutMs: 1000, requestTimeoutMs: 10_000 });
  await jobsWithTimeouts.connect();
  // @ts-expect-error timeouts are numbers of milliseconds
  new SocketRepositoryBackend({ requestTimeoutMs: "10s" });
  await Fastify().register(storaged, { connectTimeoutMs: 2000, requestTimeoutMs: 5000 });
  const mem = new MemoryRepositoryBackend({ requestTimeoutMs: 5000 });
  await mem.connect();
  await mem.disconnect();
}

// Issue 18: update operators, versions, pages, projections, watch.
export async function usageV2(plans: Repository<TestPlanV1>): Promise<void> {
  await plans.update("p", { $inc: { priority: 1 } });
  await plans.update("p", { $inc: { "owner.count": 1 } });
  // @ts-expect-error $inc takes numeric fields only
  await plans.update("p", { $inc: { name: 1 } });
  // @ts-expect-error $inc takes numbers
  await plans.update("p", { $inc: { priority: "1" } });
  await plans.update("p", { $push: { steps: "s" }, $set: { name: "x" }, $unset: { owner: true } });
  await plans.update("p", { $addToSet: { steps: { $each: ["a", "b"] } }, $pull: { steps: "c" } });
  // @ts-expect-error $push takes array fields only
  await plans.update("p", { $push: { name: "s" } });
  // @ts-expect-error the element type of steps is string
  await plans.update("p", { $push: { steps: 1 } });
  await plans.update("p", { priority: 3 }, { ifVersion: 2, ttlMs: 60_000 });
  const v = await plans.getWithVersion("p");
  if (v) await plans.delete("p", { ifVersion: v.version });
  const up: TestPlanV1 = await plans.upsert("p", { name: "n", steps: [], priority: 1, active: true }, { ifAbsent: true });
  void up;
  // @ts-expect-error upsert takes a whole record
  await plans.upsert("p", { name: "n" });

  const narrowed = await plans.findMany({ filter: { active: true }, fields: ["name"] });
  const n: string = narrowed[0]!.name;
  const i: string = narrowed[0]!.id;
  void n, i;
  // @ts-expect-error priority was not asked for
  void narrowed[0]!.priority;
  const one = await plans.findById("p", { fields: ["priority"] });
  const pr: number | undefined = one?.priority;
  void pr;
  const many: (TestPlanV1 | null)[] = await plans.getMany(["a", "b"]);
  void many;
  let page = await plans.findPage({ sort: { priority: "desc" }, limit: 10 });
  while (page.next) page = await plans.findPage({ sort: { priority: "desc" }, limit: 10, after: page.next });
  const qpage = await plans.query().where("active", "=", true).limit(5).findPage();
  const items: TestPlanV1[] = qpage.items;
  void items;
  const res: { matched: number; modified: number } = await plans.updateMany({ active: false }, { $set: { priority: 0 } });
  void res;
  const deleted: number = await plans.query().where("priority", "<", 0).deleteMany();
  void deleted;
  await plans.batch([
    { op: "create", data: { name: "n", steps: [], priority: 1, active: true } },
    { op: "update", id: "x", data: { $inc: { priority: 1 } }, ifVersion: 1 },
    { op: "delete", id: "y" },
  ]);
  const ac = new AbortController();
  for await (const change of plans.watch({ signal: ac.signal })) {
    const op: "create" | "update" | "delete" = change.op;
    void op;
    ac.abort();
  }

  // Queue events (issue 17): typed by the queue's result.
  const renders = new SocketJobQueueBackend().queue<{ page: string }, { url: string }>("render");
  await renders.enqueue({ page: "home" }, { timeoutMs: 10_000, traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" });
  // @ts-expect-error timeoutMs is a number
  await renders.enqueue({ page: "home" }, { timeoutMs: "10s" });
  for await (const e of renders.events({ signal: ac.signal })) {
    const url: string | undefined = e.result?.url;
    const at: Date = e.at;
    const cursor: string = e.cursor;
    // @ts-expect-error not an event type
    const bad: typeof e.type = "deleted";
    void [url, at, cursor, bad];
  }
}
