import { Claims, type ClaimTarget, type Resolved } from "./claims.js";
import { errorBody, wireOptions } from "./jobqueue.js";
import { seg, type Transport } from "./transport.js";
import type { EnqueueOptions, TxQueue } from "./types.js";

/**
 * Claims a transaction has settled, applied to the job queue's claim book
 * only at commit: a rolled-back ack leaves the job processing under its
 * lease, so the claim is still held and the lease still needed.
 */
export class TxClaims {
  private readonly settled: Resolved[] = [];
  constructor(readonly book: Claims) {}

  settle(claim: Resolved): void {
    this.settled.push(claim);
  }

  /** The transaction committed: its acks and fails happened. */
  committed(): void {
    for (const s of this.settled) this.book.done(s, true);
    this.settled.length = 0;
  }
}

/** A queue whose calls carry the transaction's id (Storaged-Tx). */
export class SocketTxQueue<T, R = unknown> implements TxQueue<T, R> {
  private readonly base: string;
  constructor(
    private readonly transport: () => Transport,
    private readonly tx: string,
    name: string,
    private readonly claims: TxClaims,
  ) {
    this.base = `/v1/queues/${seg(name)}`;
  }

  async enqueue(data: T, options?: EnqueueOptions): Promise<string> {
    const body = { data: data ?? null, ...wireOptions(options) };
    const res = await this.transport().request("POST", `${this.base}/jobs`, body, { tx: this.tx });
    return (JSON.parse(res.body) as { id: string }).id;
  }

  async enqueueMany(jobs: ReadonlyArray<{ data: T } & EnqueueOptions>): Promise<string[]> {
    if (jobs.length === 0) return [];
    const body = jobs.map((j, i) => ({ data: j.data ?? null, ...wireOptions(j, `jobs[${i}].`) }));
    const res = await this.transport().request("POST", `${this.base}/jobs/batch`, body, { tx: this.tx });
    return (JSON.parse(res.body) as { ids: string[] }).ids;
  }

  acknowledge(job: ClaimTarget<T>, result?: R): Promise<void> {
    return this.settle(job, "acknowledge", "ack", result === undefined ? {} : { result });
  }

  fail(job: ClaimTarget<T>, error: Error, retry = true): Promise<void> {
    return this.settle(job, "fail", "fail", { retry, error: errorBody(error) });
  }

  private async settle(job: ClaimTarget<T>, call: string, route: string, body: Record<string, unknown>): Promise<void> {
    const claim = this.claims.book.resolve(job, call);
    try {
      await this.transport().request("POST", `/v1/jobs/${seg(claim.jobId)}/${route}`, { lease: claim.lease, ...body }, { tx: this.tx });
    } catch (err) {
      // A stale lease or a vanished job ends the claim whatever the
      // transaction does; anything else leaves it as it was.
      this.claims.book.done(claim, false, err);
      throw err;
    }
    this.claims.settle(claim);
  }
}
