package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"

	"github.com/storaged/storaged/internal/backend/postgres"
	"github.com/storaged/storaged/internal/backend/sqlite"
	"github.com/storaged/storaged/internal/migrate"
)

// migrateCmd runs `storaged migrate up|status [flags]` on every SQL
// database the configuration names (each once).
func migrateCmd(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer) error {
	action := "up"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		action, args = args[0], args[1:]
	}
	if action != "up" && action != "status" {
		return fmt.Errorf("migrate: unknown action %q (use up or status)", action)
	}
	cfg, err := LoadConfig(args, lookup)
	if err != nil {
		return err
	}
	type target struct{ kind, conn string }
	var targets []target
	seen := map[target]bool{}
	for _, t := range []target{{cfg.RepositoryBackend, cfg.RepositoryConnection}, {cfg.JobQueueBackend, cfg.JobQueueConnection}} {
		if t.kind == "redis" {
			fmt.Fprintln(out, "redis: no schema to migrate (keys are made as jobs arrive)")
			continue
		}
		if t.kind == "sqs" {
			fmt.Fprintln(out, "sqs: no schema to migrate (queues are created with their first job)")
			continue
		}
		if t.kind == "memory" || seen[t] {
			continue
		}
		seen[t] = true
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		fmt.Fprintln(out, "nothing to migrate: no SQL backend is configured")
		return nil
	}
	for _, t := range targets {
		db, migs, err := openForMigrate(t.kind, t.conn)
		if err != nil {
			return err
		}
		err = runMigrate(ctx, action, t.kind, redactURL(t.conn), db, migs, out)
		db.Close()
		if err != nil {
			return fmt.Errorf("migrate %s database %s: %w", t.kind, redactURL(t.conn), err)
		}
	}
	return nil
}

// redactURL hides a password in a connection URL before it is printed.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func openForMigrate(kind, conn string) (*sql.DB, []migrate.Migration, error) {
	switch kind {
	case "sqlite":
		db, err := sqlite.OpenRaw(conn)
		if err != nil {
			return nil, nil, err
		}
		migs, err := sqlite.Migrations()
		return db, migs, err
	case "postgres":
		db, err := postgres.OpenRaw(conn)
		if err != nil {
			return nil, nil, err
		}
		migs, err := postgres.Migrations()
		return db, migs, err
	}
	return nil, nil, fmt.Errorf("migrate: %s is not available in this build yet", kind)
}

func runMigrate(ctx context.Context, action, kind, conn string, db *sql.DB, migs []migrate.Migration, out io.Writer) error {
	if action == "status" {
		list, err := migrate.List(ctx, db, migs)
		for _, s := range list {
			state := "pending"
			if s.Applied {
				state = "applied " + s.AppliedAt
			}
			fmt.Fprintf(out, "%s %s  %04d_%s  %s\n", kind, conn, s.Version, s.Name, state)
		}
		return err
	}
	var done []int
	var err error
	switch kind {
	case "sqlite":
		done, err = sqlite.Migrate(ctx, db)
	case "postgres":
		done, err = postgres.MigrateDB(ctx, db)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s: applied %d migration(s) %v\n", kind, conn, len(done), done)
	return nil
}
