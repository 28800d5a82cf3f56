// The client's types against the wire types generated from
// schema/wire.schema.json (src/wire.ts): tsc refuses this file, and so
// `npm test` fails, when they say different things. Nothing runs it.
import type { ErrorCode } from "../../src/errors.js";
import type { Backoff, BatchResult, Change, Job, JobError, JobStatus, QueueSettings, QueueStats, RateLimit } from "../../src/types.js";
import type * as W from "../../src/wire.js";

/** True when A and B are the same type (not merely assignable). */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- each G is the probe of the usual exact-equality test
type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

type Times = "runAt" | "createdAt" | "updatedAt";
type OptionalTimes = "startedAt" | "finishedAt" | "leaseExpiresAt";
/** Members whose client type is richer than JSON: Dates, the enum, the caller's T and R, the progress union. */
type Converted = Times | OptionalTimes | "status" | "data" | "result" | "progress";

export type WireChecks = [
  Assert<Equal<ErrorCode, W.WireErrorCode>>,
  Assert<Equal<`${JobStatus}`, W.WireJobStatus>>,
  Assert<Equal<QueueStats, W.WireQueueStats>>,
  Assert<Equal<RateLimit, W.WireRateLimit>>,
  Assert<Equal<QueueSettings, W.WireQueueSettings>>,
  Assert<Equal<JobError, W.WireJobError>>,
  Assert<Equal<Required<Backoff>, W.WireBackoff>>,
  Assert<Equal<Change, W.WireChange>>,
  Assert<Equal<BatchResult<W.WireRecord>, W.WireBatchResult>>,
  // A Job has the wire job's members, no more and no fewer, ...
  Assert<Equal<keyof Job<unknown>, keyof W.WireJob>>,
  // ... the same where it does not convert them ...
  Assert<Equal<Omit<Job<unknown>, Converted>, Omit<W.WireJob, Converted>>>,
  // ... and Dates for the wire's times, required where the wire's are.
  Assert<Equal<Pick<W.WireJob, Times>, Record<Times, string>>>,
  Assert<Equal<Pick<Job<unknown>, Times>, Record<Times, Date>>>,
  Assert<Equal<Pick<W.WireJob, OptionalTimes>, Partial<Record<OptionalTimes, string>>>>,
  Assert<Equal<Pick<Job<unknown>, OptionalTimes>, Partial<Record<OptionalTimes, Date>>>>,
];
