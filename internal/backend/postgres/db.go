// Package postgres is the PostgreSQL adapter of both ports, on
// jackc/pgx/v5. Records are JSONB; jobs are claimed with FOR UPDATE SKIP
// LOCKED and long polls are woken by LISTEN/NOTIFY, so several daemons
// can share one database. The repository and the queue open pools of
// their own, so any mix of backends works.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/migrate"
	"github.com/storaged/storaged/migrations"
)

// Config opens a pool.
type Config struct {
	URL string
	// MaxConns bounds the pool; 0 means the URL's pool_max_conns, else
	// pgxpool's default (one per core, at least 4) raised to 8.
	MaxConns int32
	// NoMigrate skips applying migrations at open.
	NoMigrate bool
	Logger    *slog.Logger

	// runtimeParams are session settings of the pool's connections.
	runtimeParams map[string]string
}

// openPool connects, migrates (under an advisory lock) and returns the pool.
func openPool(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad connection string: %v", redact(err))
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	} else if pc.MaxConns < 8 && !strings.Contains(cfg.URL, "pool_max_conns") {
		pc.MaxConns = 8
	}
	for k, v := range cfg.runtimeParams {
		if _, set := pc.ConnConfig.RuntimeParams[k]; !set { // the URL's own settings win
			pc.ConnConfig.RuntimeParams[k] = v
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %v", redact(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot connect to %s:%d: %v", pc.ConnConfig.Host, pc.ConnConfig.Port, redact(err))
	}
	if !cfg.NoMigrate {
		if _, err := Migrate(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return pool, nil
}

// migrationLock is the advisory lock key under which daemons migrate, so
// that several starting together migrate exactly once.
const migrationLock = 0x73746f7261676564 // "storaged"

var dialect = migrate.Dialect{
	Placeholder: func(n int) string { return fmt.Sprintf("$%d", n) },
	Lock: func(ctx context.Context, conn *sql.Conn) (func(), error) {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
			return nil, err
		}
		return func() {
			_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
		}, nil
	},
}

// Migrations lists the embedded PostgreSQL migrations, with the steps in
// Go of those that need one (collections.go).
func Migrations() ([]migrate.Migration, error) {
	migs, err := migrate.Load(migrations.FS, "postgres")
	if err != nil {
		return nil, err
	}
	return withSteps(migs)
}

// Migrate applies the embedded migrations through pool.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return MigrateDB(ctx, db)
}

// MigrateDB applies the embedded migrations through a database/sql handle.
func MigrateDB(ctx context.Context, db *sql.DB) ([]int, error) {
	migs, err := Migrations()
	if err != nil {
		return nil, err
	}
	done, err := migrate.Up(ctx, db, dialect, migs)
	if err != nil {
		return done, fmt.Errorf("postgres: %w", err)
	}
	return done, nil
}

// Dialect is the migration dialect (for storaged migrate).
func Dialect() migrate.Dialect { return dialect }

// OpenRaw opens a database/sql handle for `storaged migrate`.
func OpenRaw(url string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad connection string: %v", redact(err))
	}
	return stdlib.OpenDB(*cfg), nil
}

// redact keeps passwords out of messages: pgx errors may quote the
// connection string.
func redact(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return "cannot parse the connection string"
	}
	return err.Error()
}

// translate turns a driver error into a *backend.Error at the edge. The
// driver's text stays in the cause, for the log; messages are our own.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var be *backend.Error
	if errors.As(err, &be) {
		return be
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return backend.Wrap(err, backend.CodeUnavailable, "timed out waiting for PostgreSQL")
	}
	if errors.Is(err, pgx.ErrTxClosed) {
		return backend.Wrap(err, backend.CodeTxNotFound, "transaction already ended")
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			if pe.ConstraintName == "storaged_records_pkey" {
				return backend.Wrap(err, backend.CodeConflict, "a record with this id already exists")
			}
			return backend.Wrap(err, backend.CodeConflict, "a unique index already holds this value")
		case pe.Code == "40001" || pe.Code == "40P01":
			e := backend.Wrap(err, backend.CodeConflict, "the transaction could not be serialized with a concurrent one; retry it")
			e.Retryable = true
			return e
		case pe.Code == "22P05":
			return backend.Wrap(err, backend.CodeInvalidArgument, "PostgreSQL cannot store the character U+0000 in a string")
		case pe.Code == "22021":
			return backend.Wrap(err, backend.CodeInvalidArgument, "PostgreSQL cannot store this text: it is not valid in the database's encoding")
		case pe.Code == "54000":
			return backend.Wrap(err, backend.CodeInvalidArgument, "the value is larger than a PostgreSQL limit allows (an indexed value is limited to about 2 700 bytes)")
		case pe.Code == "22003":
			return backend.Wrap(err, backend.CodeInvalidArgument, "a number is outside the range PostgreSQL can store")
		case pe.Code == "25P02":
			return backend.Wrap(err, backend.CodeConflict, "the transaction failed earlier and must be rolled back")
		case len(pe.Code) == 2+3 && (pe.Code[:2] == "08" || pe.Code[:2] == "57" || pe.Code[:2] == "53"):
			return backend.Wrap(err, backend.CodeUnavailable, "PostgreSQL is unavailable (it is shutting down, out of resources or refused the connection)")
		}
		return backend.Wrap(err, backend.CodeInternal, "postgres: unexpected error %s", pe.Code)
	}
	if backend.IsConnectionLost(err) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnErr(err) {
		return backend.Wrap(err, backend.CodeUnavailable, "PostgreSQL is unreachable (the connection failed)")
	}
	return backend.Wrap(err, backend.CodeInternal, "postgres: unexpected error")
}

func isConnErr(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.Is(err, net.ErrClosed)
}

func poolStats(p *pgxpool.Pool) (inUse, idle, maxOpen int) {
	st := p.Stat()
	return int(st.AcquiredConns()), int(st.IdleConns()), int(st.MaxConns())
}

// PoolStats reports the repository pool's connections (for /metrics).
func (b *RepositoryBackend) PoolStats() (inUse, idle, maxOpen int) { return poolStats(b.pool) }

// PoolStats reports the queue pool's connections (for /metrics); the
// LISTEN connection is outside it.
func (b *JobStore) PoolStats() (inUse, idle, maxOpen int) { return poolStats(b.pool) }
