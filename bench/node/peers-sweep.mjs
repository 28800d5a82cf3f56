// How the peers' settings in queues.mjs (PEERS) were chosen: the drain of
// make bench, run for each documented throughput knob setting tried,
// interleaved over ROUNDS rounds (the machine is shared), medians printed.
// Usage: node peers-sweep.mjs [graphile|pgboss|bullmq ...]   (QUICK=1: 5 000 jobs)
import { cleanups, tmp, median, N } from "./harness.mjs";
import { runGraphileWorker, runPgBoss, runBullMQ } from "./queues.mjs";
import { rmSync } from "node:fs";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const base = { concurrentJobs: 16, maxPoolSize: 18 };
const poll = { pollingIntervalSeconds: 0.5 };
const SWEEPS = {
  graphile: [
    ["localQueue 500, batch delay 0 (performance page)", () => runGraphileWorker({ ...base, localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 })],
    ["localQueue 500, batch delay 250 (option docs)", () => runGraphileWorker({ ...base, localQueue: { size: 500 }, completeJobBatchDelay: 250, failJobBatchDelay: 250 })],
    ["localQueue 17 (concurrency + 1), batch delay 0", () => runGraphileWorker({ ...base, localQueue: { size: 17 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 })],
    ["localQueue 1000, batch delay 0", () => runGraphileWorker({ ...base, localQueue: { size: 1000 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 })],
    ["no localQueue, no batching (defaults)", () => runGraphileWorker({ ...base })],
  ],
  pgboss: [
    ["batchSize 100, localConcurrency 4, no burst", () => runPgBoss({ batchSize: 100, localConcurrency: 4, ...poll })],
    ["batchSize 100, localConcurrency 4", () => runPgBoss({ batchSize: 100, localConcurrency: 4, burstWhenBatchFull: true, ...poll })],
    ["batchSize 500, localConcurrency 4", () => runPgBoss({ batchSize: 500, localConcurrency: 4, burstWhenBatchFull: true, ...poll })],
    ["batchSize 1000, localConcurrency 2", () => runPgBoss({ batchSize: 1000, localConcurrency: 2, burstWhenBatchFull: true, ...poll })],
    ["batchSize 1000, localConcurrency 4", () => runPgBoss({ batchSize: 1000, localConcurrency: 4, burstWhenBatchFull: true, ...poll })],
    ["batchSize 2000, localConcurrency 2", () => runPgBoss({ batchSize: 2000, localConcurrency: 2, burstWhenBatchFull: true, ...poll })],
  ],
  bullmq: [
    ["concurrency 16, completed jobs kept (default)", () => runBullMQ({})],
    ["concurrency 16, removeOnComplete { count: 1000 }", () => runBullMQ({ removeOnComplete: { count: 1000 } })],
    ["concurrency 16, removeOnComplete { count: 0 }", () => runBullMQ({ removeOnComplete: { count: 0 } })],
  ],
};

const which = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(SWEEPS);
try {
  for (const peer of which) {
    const rates = new Map(SWEEPS[peer].map(([name]) => [name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, run] of SWEEPS[peer]) rates.get(name).push(N.drain / (await run()).drain.secs);
    }
    console.log(`${peer} (${N.drain} jobs, median of ${ROUNDS}):`);
    for (const [name, xs] of rates) console.log(`  ${Math.round(median(xs)).toString().padStart(6)}/s  ${name}  [${xs.map(Math.round).join(", ")}]`);
  }
} finally {
  for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
}
