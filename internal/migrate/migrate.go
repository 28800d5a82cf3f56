// Package migrate applies the embedded, numbered migrations of one
// database in order, each in its own transaction, and records every one
// with a checksum; an applied migration whose file changed is refused.
package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migration is one numbered SQL file.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
	// Step, when set, runs after SQL in the same transaction: the part
	// of a migration that SQL alone cannot say, such as moving data into
	// tables whose names are data (set by the adapter that owns the
	// schema; the checksum covers the SQL file only).
	Step func(ctx context.Context, tx *sql.Tx) error
}

// Status is a migration and whether (and when) it was applied.
type Status struct {
	Migration
	AppliedAt string
	Applied   bool
}

// Dialect holds what differs between databases.
type Dialect struct {
	// Placeholder returns the n-th (1-based) bind placeholder.
	Placeholder func(n int) string
	// Lock, if set, runs before anything else inside a dedicated
	// connection and returns its release: PostgreSQL takes an advisory
	// lock so that daemons starting together migrate exactly once.
	Lock func(ctx context.Context, conn *sql.Conn) (func(), error)
}

const table = "storaged_migrations"

// Load reads dir/NNNN_name.sql from fsys in version order.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: name, SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Up applies every pending migration and returns the versions it applied.
func Up(ctx context.Context, db *sql.DB, d Dialect, migs []Migration) ([]int, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if d.Lock != nil {
		release, err := d.Lock(ctx, conn)
		if err != nil {
			return nil, fmt.Errorf("taking the migration lock: %w", err)
		}
		defer release()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return nil, err
	}
	applied, err := appliedOn(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := verify(migs, applied); err != nil {
		return nil, err
	}
	var done []int
	for _, m := range migs {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return done, err
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			tx.Rollback()
			return done, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if m.Step != nil {
			if err := m.Step(ctx, tx); err != nil {
				tx.Rollback()
				return done, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		//nolint:gosec // G201: table is a constant of this package; the values are bound
		q := fmt.Sprintf(`INSERT INTO %s (version, name, checksum, applied_at) VALUES (%s, %s, %s, %s)`,
			table, d.Placeholder(1), d.Placeholder(2), d.Placeholder(3), d.Placeholder(4))
		if _, err := tx.ExecContext(ctx, q, m.Version, m.Name, m.Checksum, time.Now().UTC().Format(time.RFC3339)); err != nil {
			tx.Rollback()
			return done, err
		}
		if err := tx.Commit(); err != nil {
			return done, err
		}
		done = append(done, m.Version)
	}
	return done, nil
}

// List reports every known migration and whether it is applied; it fails
// like Up on an edited migration.
func List(ctx context.Context, db *sql.DB, migs []Migration) ([]Status, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	applied := map[int]applied{}
	var exists int
	// A database never migrated has no table yet: everything is pending.
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&exists); err == nil {
		if applied, err = appliedOn(ctx, conn); err != nil {
			return nil, err
		}
	}
	out := make([]Status, len(migs))
	for i, m := range migs {
		a, ok := applied[m.Version]
		out[i] = Status{Migration: m, Applied: ok, AppliedAt: a.at}
	}
	return out, verify(migs, applied)
}

type applied struct{ checksum, at string }

func appliedOn(ctx context.Context, conn *sql.Conn) (map[int]applied, error) {
	rows, err := conn.QueryContext(ctx, `SELECT version, checksum, applied_at FROM `+table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]applied{}
	for rows.Next() {
		var v int
		var a applied
		if err := rows.Scan(&v, &a.checksum, &a.at); err != nil {
			return nil, err
		}
		out[v] = a
	}
	return out, rows.Err()
}

func verify(migs []Migration, done map[int]applied) error {
	known := map[int]bool{}
	for _, m := range migs {
		known[m.Version] = true
		if a, ok := done[m.Version]; ok && a.checksum != m.Checksum {
			return fmt.Errorf("migration %04d_%s was edited after it was applied (checksum %s, applied %s): restore the file and add a new migration instead",
				m.Version, m.Name, short(m.Checksum), short(a.checksum))
		}
	}
	for v := range done {
		if !known[v] {
			return fmt.Errorf("the database has migration %04d, which this storaged does not know: it is older than the database", v)
		}
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
