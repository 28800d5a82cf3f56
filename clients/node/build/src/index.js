export { default, createStorage } from "./plugin.js";
export { SocketRepositoryBackend } from "./repository.js";
export { SocketJobQueueBackend } from "./jobqueue.js";
export { MemoryRepositoryBackend, MemoryJobQueueBackend } from "./memory.js";
export { StorageError, ValidationError, NotFoundError, ConflictError, TransactionExpiredError, StorageUnavailableError, } from "./errors.js";
export { JobStatus } from "./types.js";
//# sourceMappingURL=index.js.map