// Package backend holds the two ports of storaged — RepositoryBackend for
// records and JobStore for jobs (driven by the queue service in
// backend/queue; TxJobStore where jobs can join a records transaction;
// FlowStore and ScheduleStore, which every job store implements, for a
// queue's flow control and its recurring schedules; EventStore, which
// every store but SQS implements, for a queue's event feed; and two
// that only SQS implements: WaitingClaimer, a claim that waits in the
// server for a job, used by long polls instead of sleeping between claims,
// and LeaseGetter, a claim's job read from its lease token, used by fail's
// retry decision where Get by id cannot see another daemon's claims) —
// and the domain types they share:
// the Error type and its codes, the filter/sort AST, job states and the
// validation rules of DESIGN §2–§3.
//
// Adapters live in sub-packages, one per package: memory, sqlite and
// postgres implement both ports, redis the job queue only, and cache is a
// RepositoryBackend in front of another. Every adapter runs the
// conformance suite in backendtest unchanged.
// The rules every adapter keeps:
//
//   - Contexts per call. Every method takes the caller's context and stops
//     waiting (for a lock, a connection, a long poll) when it is done. A
//     method never keeps the context after it returns.
//
//   - Errors. A method returns nil or an *Error whose Code is one of the
//     codes below; driver errors are translated at the adapter edge (Wrap)
//     and never leak: the message is the adapter's own words, the driver's
//     error stays as the unexported cause, which the HTTP layer logs and
//     never sends. Each method's comment lists the codes it may return;
//     CodeUnavailable (database unreachable, a connection lost mid-request
//     — see IsConnectionLost —, context expired while waiting) and
//     CodeInternal may come from any method and are not repeated there.
//
//   - Validation. Names, ids, filters and job options are validated by the
//     rules of this package (ValidateName, ParseFilter, EnqueueParams.Validate
//     ...); the HTTP layer applies them before a call, and the job adapters
//     call the params' Validate again, since it also fills in defaults.
//     Adapters still bind every value as a parameter.
//
//   - Thread safety. Backends and the Repository/Tx values they return are
//     safe for concurrent use by many goroutines, except that one Tx is used
//     by one goroutine at a time (the HTTP layer serializes calls per
//     transaction).
//
//   - Semantics are identical on every backend: what the conformance suite
//     and the shared filter vectors (testdata/filter-vectors.json) check is
//     the definition, not any one adapter's behaviour.
package backend
