// Package sqlite is the SQLite adapter of both ports, on modernc.org/sqlite
// (pure Go). storaged owns the file, so it serializes writes itself: one
// writer connection (every transaction BEGIN IMMEDIATE) and a pool of
// read-only connections that read the last committed state through WAL.
// That single writer is also what makes a durable job queue possible on
// SQLite: claims are UPDATE … RETURNING statements in the writer.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/migrate"
	"github.com/storaged/storaged/migrations"
)

// Config opens a database file.
type Config struct {
	// Path is a file path, or ":memory:" for a private in-memory database.
	Path string
	// Synchronous is NORMAL (default: durable against a crash of the
	// daemon, not of the machine) or FULL (also against power loss).
	Synchronous string
	// NoMigrate skips applying migrations at open (storaged migrate does
	// it instead).
	NoMigrate bool
	// CheckpointEvery runs a TRUNCATE checkpoint this often, so that the
	// WAL cannot grow without bound under steady reads; default 30s.
	CheckpointEvery time.Duration
	Logger          *slog.Logger
}

// DB is one database file shared by the repository and the job queue
// that use it, so that both go through the one writer.
type DB struct {
	path   string
	writer *sql.DB
	reader *sql.DB
	log    *slog.Logger
	stop   chan struct{}
	wg     sync.WaitGroup
	refs   int
	stmts  sync.Map // stmtKey → *sql.Stmt
	// file is the identity of the file opened, which checkFile compares
	// the path with; zero for ":memory:".
	file fileID
	lost atomic.Bool // the path no longer names file; logged once
}

type stmtKey struct {
	pool *sql.DB
	sql  string
}

// stmt returns a prepared statement of pool for q, preparing it once:
// parsing is a third of a claim's cost otherwise. Only fixed SQL goes
// through here; generated filter SQL is prepared per call.
func (db *DB) stmt(ctx context.Context, pool *sql.DB, q string) (*sql.Stmt, error) {
	k := stmtKey{pool, q}
	if s, ok := db.stmts.Load(k); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := pool.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(k, s); loaded {
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// prepare readies fixed statements of the writer up front: inside a
// transaction the writer's only connection is taken, so preparing there
// through the pool would wait for itself.
func (db *DB) prepare(qs ...string) {
	for _, q := range qs {
		if _, err := db.stmt(context.Background(), db.writer, q); err != nil {
			db.log.Warn("sqlite: preparing a statement failed; it will be parsed per call", "err", err)
		}
	}
}

// cached returns the prepared statement of pool for q, if there is one.
func (db *DB) cached(pool *sql.DB, q string) *sql.Stmt {
	if s, ok := db.stmts.Load(stmtKey{pool, q}); ok {
		return s.(*sql.Stmt)
	}
	return nil
}

// exec runs fixed SQL on the writer, in tx when it is not nil.
func (db *DB) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if tx != nil {
		if s := db.cached(db.writer, q); s != nil {
			return tx.StmtContext(ctx, s).ExecContext(ctx, args...)
		}
		return tx.ExecContext(ctx, q, args...)
	}
	s, err := db.stmt(ctx, db.writer, q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

// queryRow runs fixed SQL returning one row: in tx when it is not nil,
// else on pool.
func (db *DB) queryRow(ctx context.Context, pool *sql.DB, tx *sql.Tx, q string, args ...any) *sql.Row {
	if tx != nil {
		if s := db.cached(db.writer, q); s != nil {
			return tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
		}
		return tx.QueryRowContext(ctx, q, args...)
	}
	s, err := db.stmt(ctx, pool, q)
	if err != nil {
		// Let Scan report it, as QueryRowContext does.
		return pool.QueryRowContext(ctx, q, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// queryTx runs fixed SQL returning rows in a writer transaction.
func (db *DB) queryTx(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if s := db.cached(db.writer, q); s != nil {
		return tx.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, q, args...)
}

var (
	openMu sync.Mutex
	open   = map[string]*DB{}
)

func dsn(path string, sync string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if path != ":memory:" {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		// A reader never creates the file: were it gone, an empty one
		// would appear in its place.
		q.Set("mode", "rw")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (or shares) the database at cfg.Path and migrates it.
// Close releases it; the last Close closes the file.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	if cfg.Synchronous == "" {
		cfg.Synchronous = "NORMAL"
	}
	cfg.Synchronous = strings.ToUpper(cfg.Synchronous)
	if cfg.Synchronous != "NORMAL" && cfg.Synchronous != "FULL" {
		return nil, fmt.Errorf("sqlite: synchronous must be NORMAL or FULL, got %q", cfg.Synchronous)
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	openMu.Lock()
	defer openMu.Unlock()
	if cfg.Path != ":memory:" {
		if db := open[cfg.Path]; db != nil {
			db.refs++
			return db, nil
		}
	}
	db := &DB{path: cfg.Path, log: cfg.Logger, stop: make(chan struct{}), refs: 1}
	wc, err := msqlite.NewConnector(dsn(cfg.Path, cfg.Synchronous, false))
	if err != nil {
		return nil, err
	}
	writer := sql.OpenDB(writerConnector{wc, db})
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	db.writer, db.reader = writer, writer
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", cfg.Path, err)
	}
	if cfg.Path != ":memory:" {
		if db.file, err = identify(cfg.Path); err != nil {
			writer.Close()
			return nil, fmt.Errorf("sqlite: opening %s: %w", cfg.Path, err)
		}
	}
	if !cfg.NoMigrate {
		if _, err := Migrate(ctx, writer); err != nil {
			writer.Close()
			return nil, err
		}
	}
	// A private in-memory database exists only on its one connection.
	if cfg.Path != ":memory:" {
		rc, err := msqlite.NewConnector(dsn(cfg.Path, cfg.Synchronous, true))
		if err != nil {
			writer.Close()
			return nil, err
		}
		reader := sql.OpenDB(readerConnector{rc, db})
		n := max(4, runtime.GOMAXPROCS(0)*2)
		reader.SetMaxOpenConns(n)
		reader.SetMaxIdleConns(n)
		db.reader = reader
		open[cfg.Path] = db
	}
	db.wg.Add(1)
	go db.checkpointLoop(cfg.CheckpointEvery) //nolint:gosec // G118: the loop lives as long as the database, not the Open call; Close stops it
	return db, nil
}

// Migrate applies the embedded SQLite migrations.
func Migrate(ctx context.Context, db *sql.DB) ([]int, error) {
	migs, err := Migrations()
	if err != nil {
		return nil, err
	}
	done, err := migrate.Up(ctx, db, dialect, migs)
	if err != nil {
		return done, fmt.Errorf("sqlite: %w", err)
	}
	return done, nil
}

// Migrations lists the embedded SQLite migrations, with the steps in Go
// of those that need one (collections.go).
func Migrations() ([]migrate.Migration, error) {
	migs, err := migrate.Load(migrations.FS, "sqlite")
	if err != nil {
		return nil, err
	}
	return withSteps(migs)
}

var dialect = migrate.Dialect{Placeholder: func(int) string { return "?" }}

// OpenRaw opens a plain handle for `storaged migrate` (no migration).
func OpenRaw(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, "NORMAL", false))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func (db *DB) checkpointLoop(every time.Duration) {
	defer db.wg.Done()
	if db.path == ":memory:" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var busy, logPages, done int
			err := db.writer.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done)
			cancel()
			if err != nil {
				db.log.Warn("sqlite checkpoint failed", "path", db.path, "err", err)
			} else if busy != 0 {
				db.log.Debug("sqlite checkpoint blocked by readers", "path", db.path, "pages", logPages, "done", done)
			}
		}
	}
}

// Ping checks the file and both pools.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.checkFile(); err != nil {
		return err
	}
	if err := db.reader.PingContext(ctx); err != nil {
		return translate(err)
	}
	var one int
	if err := db.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return translate(err)
	}
	return nil
}

// Close releases one reference; the last one closes the file.
func (db *DB) Close() error {
	openMu.Lock()
	db.refs--
	last := db.refs == 0
	if last && open[db.path] == db {
		delete(open, db.path)
	}
	openMu.Unlock()
	if !last {
		return nil
	}
	close(db.stop)
	db.wg.Wait()
	var errs []error
	db.stmts.Range(func(_, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		return true
	})
	if db.reader != db.writer {
		errs = append(errs, db.reader.Close())
	}
	errs = append(errs, db.writer.Close())
	return errors.Join(errs...)
}

// translate turns a driver error into a *backend.Error at the edge.
// Constraint violations are conflicts; a busy or locked database, a
// context that ran out while waiting, a full disk or a read-only file are
// unavailable, with a message that says which.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var be *backend.Error
	if errors.As(err, &be) {
		return be
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return backend.Wrap(err, backend.CodeUnavailable, "timed out waiting for the database (a transaction may hold the writer)")
	}
	if errors.Is(err, sql.ErrTxDone) {
		return backend.Wrap(err, backend.CodeTxNotFound, "transaction already ended")
	}
	var se *msqlite.Error
	if errors.As(err, &se) {
		if se.Code() == sqlite3.SQLITE_CONSTRAINT_COMMITHOOK {
			return errFileGone // the only reason the commit hook refuses
		}
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			if se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
				return backend.Wrap(err, backend.CodeConflict, "a record with this id already exists")
			}
			return backend.Wrap(err, backend.CodeConflict, "a unique index already holds this value")
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return backend.Wrap(err, backend.CodeUnavailable, "the database is busy")
		case sqlite3.SQLITE_FULL:
			return backend.Wrap(err, backend.CodeUnavailable, "the disk holding the database is full")
		case sqlite3.SQLITE_READONLY:
			return backend.Wrap(err, backend.CodeUnavailable, "the database file is read-only")
		case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
			return backend.Wrap(err, backend.CodeUnavailable, "the database file cannot be read or written")
		}
	}
	return backend.Wrap(err, backend.CodeInternal, "sqlite: unexpected error")
}

// PoolStats reports the writer and reader connections together.
func (db *DB) PoolStats() (inUse, idle, maxOpen int) {
	w := db.writer.Stats()
	inUse, idle, maxOpen = w.InUse, w.Idle, w.MaxOpenConnections
	if db.reader != db.writer {
		r := db.reader.Stats()
		inUse, idle, maxOpen = inUse+r.InUse, idle+r.Idle, maxOpen+r.MaxOpenConnections
	}
	return
}

// PoolStats implements handlers.PoolStater.
func (b *RepositoryBackend) PoolStats() (inUse, idle, maxOpen int) { return b.db.PoolStats() }

// PoolStats implements handlers.PoolStater.
func (b *JobStore) PoolStats() (inUse, idle, maxOpen int) { return b.db.PoolStats() }

// The database file can be deleted, moved or replaced under a running
// daemon (a cleanup script, a restore done wrong). SQLite keeps writing to
// the file it has open, now unlinked, so writes were acknowledged and then
// lost at the next start, while new readers opened an empty file at the
// path. Every commit, every reader taken from the pool and every ping now
// checks that the path still names the file opened (one stat, about a
// microsecond) and refuses with unavailable when it does not.

var errFileGone = backend.Errorf(backend.CodeUnavailable,
	"the database file was deleted or replaced under storaged; nothing is read or written until it is back (see the daemon's log)")

// fileID is what makes a file the same file: its device and inode, as
// os.SameFile compares them.
type fileID struct{ dev, ino uint64 }

// identify stats path, without the allocations of os.Stat: this runs at
// every commit.
func identify(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, nil //nolint:unconvert // Stat_t's field types differ per platform (Dev is an int32 on darwin)
}

// checkFile returns errFileGone unless the path names the file opened. It
// logs the loss once, with where the open file can still be copied from,
// and the return of the file.
func (db *DB) checkFile() error {
	if db.file == (fileID{}) {
		return nil
	}
	id, err := identify(db.path)
	if err == nil && id == db.file {
		if db.lost.CompareAndSwap(true, false) {
			db.log.Warn("sqlite: the database file is back; serving again", "path", db.path)
		}
		return nil
	}
	if db.lost.CompareAndSwap(false, true) {
		db.log.Error("sqlite: the database file was deleted or replaced; refusing reads and writes (503) until it is back, "+
			"restarting would lose every write since it was opened: copy the open file back to the path first",
			"path", db.path, "open_file", db.openFileCopy(), "stat", errString(err))
	}
	return errFileGone
}

// openFileCopy is where the file this process still holds open can be
// copied from (/proc/<pid>/fd/<n>), when it can be found.
func (db *DB) openFileCopy() string {
	dir := "/proc/self/fd"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, fd := range fds {
		if id, err := identify(filepath.Join(dir, fd.Name())); err == nil && id == db.file {
			return filepath.Join("/proc", strconv.Itoa(os.Getpid()), "fd", fd.Name())
		}
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "another file is at the path"
	}
	return err.Error()
}

// writerConnector opens the writer's connection with a commit hook that
// turns the commit of any transaction into a rollback when the file is
// gone: nothing is acknowledged that the next start would not find.
type writerConnector struct {
	driver.Connector
	db *DB
}

func (c writerConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	hooks, ok := conn.(msqlite.HookRegisterer)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite: the driver offers no commit hook")
	}
	hooks.RegisterCommitHook(func() int32 {
		if c.db.checkFile() != nil {
			return 1
		}
		return 0
	})
	return conn, nil
}

// readerConnector opens read connections only while the file is there,
// and drops a pooled one when it is gone (it would read the unlinked
// file).
type readerConnector struct {
	driver.Connector
	db *DB
}

func (c readerConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := c.db.checkFile(); err != nil {
		return nil, err
	}
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	full, ok := conn.(fullConn)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite: the driver's connection lacks an interface database/sql uses")
	}
	return readerConn{full, c.db}, nil
}

// fullConn is every interface the driver's connections implement, so that
// a wrapper hides none of them from database/sql.
type fullConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type readerConn struct {
	fullConn
	db *DB
}

// ResetSession runs each time database/sql takes the connection from the
// pool again: a bad connection is closed, and the retry's Connect answers
// errFileGone.
func (c readerConn) ResetSession(ctx context.Context) error {
	if c.db.checkFile() != nil {
		return driver.ErrBadConn
	}
	return c.fullConn.ResetSession(ctx)
}

// Unwrap gives the driver's connection to code that looks for it.
func (c readerConn) Unwrap() driver.Conn { return c.fullConn }
