package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.TxJobStore = (*JobStore)(nil)

// identitySQL names the jobs table a connection reaches: the server (by
// when it started), the database, and the table's oid, which also tells
// two schemas of one database apart (the search_path of a URL).
const identitySQL = `SELECT pg_postmaster_start_time()::text || '/' || current_database() || '/' ||
	coalesce(to_regclass('storaged_jobs')::oid::text, '')`

func identity(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var id string
	err := pool.QueryRow(ctx, identitySQL).Scan(&id)
	return id, err
}

// SharesDatabase implements backend.TxJobStore: records reach the same
// jobs table, whatever URL each was given.
func (b *JobStore) SharesDatabase(records backend.RepositoryBackend) bool {
	r, ok := backend.UnwrapRepository(records).(*RepositoryBackend)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mine, err := identity(ctx, b.pool)
	if err != nil {
		b.log.Warn("postgres: could not tell whether records and jobs share a database; transactional jobs are off", "err", err)
		return false
	}
	theirs, err := identity(ctx, r.pool)
	if err != nil {
		b.log.Warn("postgres: could not tell whether records and jobs share a database; transactional jobs are off", "err", err)
		return false
	}
	return mine == theirs
}

// InTx implements backend.TxJobStore. The statements are the store's own,
// run on the transaction's connection: an insert's NOTIFY is delivered at
// commit, and the rows a settle changes stay locked (claims skip them)
// until the transaction ends.
func (b *JobStore) InTx(t backend.Tx) (backend.JobWriter, error) {
	rt, ok := backend.UnwrapTx(t).(*tx)
	if !ok {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "the transaction is not of a PostgreSQL records backend")
	}
	return &txJobs{b: b, q: &txQuerier{rt}}, nil
}

type txJobs struct {
	b *JobStore
	q *txQuerier
}

// in runs fn under the transaction's lock and a savepoint (see
// txQuerier.savepoint): a failed call leaves the transaction usable.
func (w *txJobs) in(ctx context.Context, fn func(t pgx.Tx) error) error {
	if err := w.q.lock(); err != nil {
		return err
	}
	defer w.q.t.mu.Unlock()
	return translate(w.q.savepoint(ctx, fn))
}

func (w *txJobs) Insert(ctx context.Context, p backend.InsertParams) (out []backend.Inserted, err error) {
	err = w.in(ctx, func(t pgx.Tx) error {
		out, err = w.b.insert(ctx, t, p)
		return err
	})
	return out, err
}

func (w *txJobs) Settle(ctx context.Context, p backend.SettleParams) (out []backend.Settled, err error) {
	err = w.in(ctx, func(t pgx.Tx) error {
		out, err = w.b.settle(ctx, t, p)
		return err
	})
	return out, err
}
