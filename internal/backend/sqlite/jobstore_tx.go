package sqlite

import (
	"context"
	"database/sql"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.TxJobStore = (*JobStore)(nil)

// SharesDatabase implements backend.TxJobStore: records and jobs share a
// database when they share the handle, which the daemon arranges for two
// spellings of one file (one handle, one writer).
func (b *JobStore) SharesDatabase(records backend.RepositoryBackend) bool {
	r, ok := backend.UnwrapRepository(records).(*RepositoryBackend)
	return ok && r.db == b.db
}

// InTx implements backend.TxJobStore. The transaction holds the writer,
// so its job changes are invisible to every reader, and every other
// writer waits for it, until it ends.
func (b *JobStore) InTx(t backend.Tx) (backend.JobWriter, error) {
	rt, ok := backend.UnwrapTx(t).(*tx)
	if !ok || rt.db != b.db {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "the transaction is not of this job queue's SQLite file")
	}
	return &txJobs{b: b, t: rt}, nil
}

type txJobs struct {
	b *JobStore
	t *tx
}

// in runs fn in the transaction under a savepoint, so that a call that
// fails halfway leaves none of its changes behind while the rest of the
// transaction stands.
func (w *txJobs) in(ctx context.Context, fn func(tx *sql.Tx) error) error {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	if w.t.done {
		return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	tx := w.t.tx
	if _, err := tx.ExecContext(ctx, "SAVEPOINT storaged_jobs"); err != nil {
		return translate(err)
	}
	if err := fn(tx); err != nil {
		_, _ = tx.ExecContext(context.WithoutCancel(ctx), "ROLLBACK TO storaged_jobs")
		_, _ = tx.ExecContext(context.WithoutCancel(ctx), "RELEASE storaged_jobs")
		return translate(err)
	}
	_, err := tx.ExecContext(ctx, "RELEASE storaged_jobs")
	return translate(err)
}

func (w *txJobs) Insert(ctx context.Context, p backend.InsertParams) (out []backend.Inserted, err error) {
	err = w.in(ctx, func(tx *sql.Tx) error {
		out, err = w.b.insertTx(ctx, tx, p)
		return err
	})
	return out, err
}

func (w *txJobs) Settle(ctx context.Context, p backend.SettleParams) (out []backend.Settled, err error) {
	err = w.in(ctx, func(tx *sql.Tx) error {
		out, err = w.b.settleTx(ctx, tx, p)
		return err
	})
	return out, err
}
