import { ConflictError, ValidationError } from "./errors.js";

/**
 * How transaction(fn) retries a transaction that lost a race: exponential
 * from 2 ms, capped at 1 s, with full jitter, so that contenders that
 * collided do not collide again in step. The daemon's Go tests use the
 * same schedule (internal/testutil.RetryDelay).
 */
export const RETRY_BASE_MS = 2;
export const RETRY_CAP_MS = 1000;

/** How many times transaction(fn) runs fn again after a retryable conflict, unless told otherwise. */
export const DEFAULT_TX_RETRIES = 20;

/** The pause before retry attempt+1 (attempt counts from 0). */
export function retryDelayMs(attempt: number): number {
  const ceiling = Math.min(RETRY_BASE_MS * 2 ** Math.min(attempt, 9), RETRY_CAP_MS);
  return Math.random() * ceiling;
}

/** Whether err is a conflict that running the transaction again may resolve. */
export function isRetryable(err: unknown): boolean {
  return err instanceof ConflictError && err.retryable;
}

/** Checks a retries option: a whole number from 0 up. */
export function retriesOption(retries: number | undefined): number {
  if (retries === undefined) return DEFAULT_TX_RETRIES;
  if (!Number.isInteger(retries) || retries < 0) {
    throw new ValidationError(`retries must be a whole number from 0 up, got ${retries}`);
  }
  return retries;
}
