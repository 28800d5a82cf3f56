package backend

import (
	"context"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// Record is one stored record: a JSON object whose "id" is a string.
// Adapters return the encoded form because that is what both the HTTP layer
// and SQL databases already hold; decoding is left to whoever needs it.
type Record []byte

// Repository is one collection (DESIGN §1, Repository<T>). The collection
// name was validated by ValidateName before the adapter saw it.
type Repository interface {
	// Create stores doc, giving it a UUIDv7 id unless doc carries its own.
	// Errors: invalid_argument (bad id), conflict (id taken, unique index).
	Create(ctx context.Context, doc map[string]any) (Record, error)
	// FindByID returns nil, nil when no record has that id.
	FindByID(ctx context.Context, id string) (Record, error)
	// FindMany filters, sorts (id ascending as the final tie-break) and
	// pages. Errors: none beyond the common ones; q is already validated.
	FindMany(ctx context.Context, q Query) ([]Record, error)
	// Update merges patch into the record's top-level fields. Errors:
	// invalid_argument (id in patch), not_found, conflict (unique index).
	Update(ctx context.Context, id string, patch map[string]any) (Record, error)
	// Delete is idempotent: deleting a missing record is not an error.
	Delete(ctx context.Context, id string) error
	// Count counts the records matching f.
	Count(ctx context.Context, f Filter) (int64, error)
	// EnsureIndex creates the index if it does not exist. Errors:
	// conflict (the name exists with another definition, or existing
	// records violate a new unique index).
	EnsureIndex(ctx context.Context, spec IndexSpec) error
	VersionedRepository
}

// RepositoryBackend is the records port (DESIGN §1). Connecting happens in
// the adapter's constructor; Close disconnects.
type RepositoryBackend interface {
	Repository(collection string) Repository
	// Begin starts a serializable transaction. While it is open it may
	// hold the only writer (memory, SQLite): other writes wait for it, so
	// callers must end every transaction they begin.
	Begin(ctx context.Context) (Tx, error)
	// Ping reports whether the backend answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// ChangeFeed is implemented by repository backends that other processes
// write to (PostgreSQL), so that a read cache can drop what they change.
type ChangeFeed interface {
	// WatchChanges runs until ctx ends or the feed cannot work at all
	// (its error). It calls changed for every record write committed by
	// any process, live(true) once it sees every change from then on, and
	// live(false) as soon as changes may go unseen (a lost connection).
	WatchChanges(ctx context.Context, changed func(collection, id string), live func(bool)) error
}

// Tx is a transaction: the repositories it returns see its own writes,
// nobody else sees them before Commit, and Rollback undoes all of them.
// After Commit or Rollback every call returns tx_not_found.
type Tx interface {
	Repository(collection string) Repository
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// IndexSpec describes ensureIndex (DESIGN §2, beyond the seed). A unique
// index ignores records in which any of its fields is missing or null, as
// SQL unique indexes ignore NULLs.
type IndexSpec struct {
	Name   string
	Fields []Path
	Unique bool
}

// Canonical is the spec as stored by SQL adapters, to tell a repeated
// ensureIndex (a no-op) from another definition under the same name.
func (s IndexSpec) Canonical() string {
	fields := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		fields[i] = strconv.Quote(f.String())
	}
	return `{"fields":[` + strings.Join(fields, ",") + `],"unique":` + strconv.FormatBool(s.Unique) + `}`
}

// Transaction runs fn inside a transaction of b: committed when fn returns
// nil, rolled back when it returns an error or panics.
func Transaction(ctx context.Context, b RepositoryBackend, fn func(tx Tx) error) (err error) {
	tx, err := b.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// DequeueParams are the options of dequeue. Lease 0 means DefaultLease;
// Max 0 means one job.
type DequeueParams struct {
	Wait  time.Duration
	Lease time.Duration
	Max   int
}

// FailParams are the arguments of fail.
type FailParams struct {
	ID    string
	Lease string
	Error JobError
	Retry bool
}

// HeartbeatParams extend a claim to now+Extend (0: the claim's own lease).
type HeartbeatParams struct {
	ID     string
	Lease  string
	Extend time.Duration
}

// ListParams page a listing; Limit 0 means DefaultListLimit.
type ListParams struct {
	Limit  int
	Offset int
}

// PruneParams says which finished jobs go: completed and cancelled jobs
// finished before CompletedBefore, failed jobs finished before FailedBefore.
type PruneParams struct {
	CompletedBefore time.Time
	FailedBefore    time.Time
}

// ProgressParams report a claim's progress (DESIGN §4, issue 17): a
// number from 0 to 100 or a JSON object. Like a heartbeat, it extends the
// lease to now+Extend (0: the claim's own lease length).
type ProgressParams struct {
	ID       string
	Lease    string
	Progress json.RawMessage
	Extend   time.Duration
}
