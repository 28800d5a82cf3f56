export { default, createStorage } from "./plugin.js";
export { storagedDashboard } from "./dashboard.js";
export type { StoragedDashboardOptions } from "./dashboard.js";
export type { StoragedPluginOptions, Storage } from "./plugin.js";
export { SocketRepositoryBackend } from "./repository.js";
export { SocketJobQueueBackend } from "./jobqueue.js";
export { MemoryRepositoryBackend, MemoryJobQueueBackend, createMemoryStorage } from "./memory.js";
export {
  StorageError,
  ValidationError,
  NotFoundError,
  ConflictError,
  TransactionExpiredError,
  StorageUnavailableError,
  JobTimeoutError,
} from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { CLIENT_VERSION, IncompatibleDaemonError } from "./version.js";
export { JobStatus } from "./types.js";
export { Query } from "./query.js";
export { DEFAULT_TX_RETRIES } from "./retry.js";
export type { Operator, Operand, QueryTarget } from "./query.js";
export type {
  BatchOp,
  BatchResult,
  BulkResult,
  CollectionOverview,
  FindJobsOptions,
  JobPage,
  JobPatch,
  JobSelection,
  JobSort,
  QueueOverview,
  Change,
  ExpiryOptions,
  FieldPath,
  Page,
  PageOptions,
  Projected,
  Update,
  UpdateOperators,
  UpdateOptions,
  UpsertOptions,
  WatchOptions,
  Backoff,
  DequeueOptions,
  DottedPath,
  EnqueueOptions,
  FieldOperators,
  Filter,
  IndexSpec,
  FailItem,
  ItemResult,
  Job,
  JobContext,
  JobError,
  JobProgress,
  QueueEvent,
  QueueEventType,
  EventsOptions,
  JobQueue,
  JobQueueBackend,
  PathOperators,
  QueryOptions,
  QueueSettings,
  QueueStats,
  RateLimit,
  Schedule,
  ScheduleOptions,
  ScheduleTiming,
  UniqueOptions,
  Repository,
  RepositoryBackend,
  StoragedRepositoryBackend,
  Transaction,
  TransactionOptions,
  TxQueue,
  Scalar,
  Sort,
  SortDirection,
  Worker,
  WorkOptions,
} from "./types.js";
export type { TransportOptions } from "./transport.js";
export type { MemoryBackendOptions } from "./memory.js";
