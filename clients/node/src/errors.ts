import type { WireErrorCode } from "./wire.js";

/** Error codes of the daemon's error body (DESIGN §4), as schema/wire.schema.json lists them. */
export type ErrorCode = WireErrorCode;

/** Base class of every error the client raises. */
export class StorageError extends Error {
  readonly code: ErrorCode;
  readonly status: number | undefined;
  constructor(code: ErrorCode, message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StorageError";
    this.code = code;
    this.status = status;
  }
}

/** Bad input: invalid_argument (400) and payload_too_large (413). */
export class ValidationError extends StorageError {
  constructor(message: string, status?: number, code: ErrorCode = "invalid_argument", options?: { cause?: unknown }) {
    super(code, message, status, options);
    this.name = "ValidationError";
  }
}

/** A record or job does not exist (404). */
export class NotFoundError extends StorageError {
  constructor(message: string, status?: number) {
    super("not_found", message, status);
    this.name = "NotFoundError";
  }
}

/** A taken id, a unique index, a stale lease, a job in the wrong state (409). */
export class ConflictError extends StorageError {
  /**
   * True when the conflict is about timing only (a serialization failure
   * or a deadlock between transactions): running the same transaction
   * again may succeed. `transaction(fn)` does so by itself (see its
   * `retries` option).
   */
  readonly retryable: boolean;
  constructor(message: string, status?: number, retryable = false) {
    super("conflict", message, status);
    this.name = "ConflictError";
    this.retryable = retryable;
  }
}

/** The transaction ended or was rolled back after being idle (410). */
export class TransactionExpiredError extends StorageError {
  constructor(message: string, status?: number) {
    super("tx_not_found", message, status);
    this.name = "TransactionExpiredError";
  }
}

/** No daemon answers, or its database is unreachable (503). */
export class StorageUnavailableError extends StorageError {
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super("unavailable", message, status, options);
    this.name = "StorageUnavailableError";
  }
}

/**
 * A handler ran past its timeout (`work(handler, { timeoutMs })`): its
 * signal aborts with this reason, and the job fails with it (name
 * "TimeoutError"), retried per its policy.
 */
export class JobTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/** Builds the error for a daemon error body. */
export function errorFromResponse(status: number, code: string | undefined, message: string, retryable = false): StorageError {
  switch (code) {
    case "invalid_argument":
      return new ValidationError(message, status);
    case "payload_too_large":
      return new ValidationError(message, status, "payload_too_large");
    case "not_found":
      return new NotFoundError(message, status);
    case "conflict":
      return new ConflictError(message, status, retryable);
    case "tx_not_found":
      return new TransactionExpiredError(message, status);
    case "unavailable":
      return new StorageUnavailableError(message, status);
    default:
      return new StorageError("internal", message || `storaged answered ${status}`, status);
  }
}
