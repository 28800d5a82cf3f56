import { ConflictError, NotFoundError, ValidationError } from "./errors.js";
import type { Job } from "./types.js";

/**
 * One claim of a job: what one dequeue handed out. Its lease token is what
 * the daemon checks on ack, fail and heartbeat, so the claim, not the job
 * id, is what those calls settle.
 */
export interface Claim {
  readonly jobId: string;
  readonly lease: string;
}

/** A settle call's target: the Job that dequeue returned, or its id. */
export type ClaimTarget<T> = Job<T> | string;

/**
 * The claim a call means, and whether it came with its Job (bound), whose
 * caller holds the lease itself and needs no entry here to retry.
 */
export interface Resolved extends Claim {
  readonly bound: boolean;
}

/**
 * The claims this client holds, by job id, so that the seed's
 * `acknowledge(job.id)` can find the lease to send.
 *
 * One process can hold two claims of one job: when a claim's lease runs out,
 * the daemon hands the job to the next dequeue, which may come from another
 * loop of the same process. The daemon fences the old token; here, an id
 * alone cannot say which of the two its caller holds, so:
 * - a Job settles exactly its own claim (its lease travels with it);
 * - an id settles the one claim held for it, and is refused with
 *   ConflictError while more than one is held.
 */
export class Claims {
  private readonly byJob = new Map<string, string[]>();

  /** Records the claim a dequeue returned. */
  add(jobId: string, lease: string): Claim {
    const leases = this.byJob.get(jobId);
    if (leases) leases.push(lease);
    else this.byJob.set(jobId, [lease]);
    return { jobId, lease };
  }

  /** The claim a call on target means (one object: a batch resolves one per item). */
  resolve<T>(target: ClaimTarget<T>, call: string): Resolved {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- JavaScript callers may pass null
    if (typeof target === "object" && target !== null) {
      if (typeof target.id !== "string" || typeof target.lease !== "string" || !target.lease) {
        throw new ValidationError(`${call} takes a Job returned by dequeue (it carries the claim's lease) or a job id; this one has no lease`);
      }
      return { jobId: target.id, lease: target.lease, bound: true };
    }
    if (typeof target !== "string") {
      throw new ValidationError(`${call} takes a Job returned by dequeue or a job id, got ${typeof target}`);
    }
    const leases = this.byJob.get(target);
    const lease = leases?.[0];
    if (!leases || lease === undefined) {
      throw new ValidationError(`job ${target} was not dequeued by this client (or was already acknowledged or failed): no lease to send`);
    }
    if (leases.length > 1) {
      throw new ConflictError(
        `job ${target} is claimed ${leases.length} times by this client (a lease ran out and the job was claimed again): ` +
          `an id cannot say which claim is yours; pass the Job returned by dequeue to ${call}`,
      );
    }
    return { jobId: target, lease, bound: false };
  }

  /**
   * Records the outcome of a call on claim. A settle (ack, fail) that came
   * with its Job ends the claim here whatever the answer. Otherwise the
   * claim ends when the call succeeded and settles, or when the daemon says
   * the claim is over (stale lease, job gone); after a lost answer or an
   * unavailable daemon it is kept, so that the same call can be retried.
   */
  done(claim: Resolved, settles: boolean, err?: unknown): void {
    const over = err instanceof ConflictError || err instanceof NotFoundError;
    if (over || (settles && (claim.bound || err === undefined))) this.delete(claim);
  }

  private delete(claim: Claim): void {
    const leases = this.byJob.get(claim.jobId);
    if (!leases) return;
    const i = leases.indexOf(claim.lease);
    if (i < 0) return;
    leases.splice(i, 1);
    if (leases.length === 0) this.byJob.delete(claim.jobId);
  }

  /** Forgets every claim of a job (it was cancelled). */
  deleteJob(jobId: string): void {
    this.byJob.delete(jobId);
  }

  /** How many claims are held: for tests, which check that none leak. */
  get size(): number {
    let n = 0;
    for (const leases of this.byJob.values()) n += leases.length;
    return n;
  }
}
