package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"

	"github.com/storaged/storaged/internal/migrate"
	"github.com/storaged/storaged/migrations"
)

var dialect = migrate.Dialect{Placeholder: func(int) string { return "?" }}

func open(t *testing.T) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func load(t *testing.T, files map[string]string) []migrate.Migration {
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys["m/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	migs, err := migrate.Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	return migs
}

func TestUpInOrderOnceAndStatus(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	migs := load(t, map[string]string{
		"0002_add.sql":  "ALTER TABLE a ADD COLUMN y INTEGER;",
		"0001_init.sql": "CREATE TABLE a (x INTEGER); INSERT INTO a (x) VALUES (1);",
	})
	if migs[0].Version != 1 || migs[1].Version != 2 {
		t.Fatalf("not in version order: %+v", migs)
	}
	st, err := migrate.List(ctx, db, migs)
	if err != nil || st[0].Applied || st[1].Applied {
		t.Fatalf("fresh database status %+v %v", st, err)
	}
	done, err := migrate.Up(ctx, db, dialect, migs)
	if err != nil || len(done) != 2 {
		t.Fatalf("up: %v %v", done, err)
	}
	done, err = migrate.Up(ctx, db, dialect, migs)
	if err != nil || len(done) != 0 {
		t.Fatalf("second up applied %v, %v", done, err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM a WHERE y IS NULL").Scan(&n); err != nil || n != 1 {
		t.Fatalf("migrations not applied in order: %v %d", err, n)
	}
	st, _ = migrate.List(ctx, db, migs)
	if !st[0].Applied || !st[1].Applied || st[0].AppliedAt == "" {
		t.Fatalf("status %+v", st)
	}
}

func TestEditedMigrationIsRefused(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if _, err := migrate.Up(ctx, db, dialect, load(t, map[string]string{"0001_init.sql": "CREATE TABLE a (x INTEGER);"})); err != nil {
		t.Fatal(err)
	}
	edited := load(t, map[string]string{"0001_init.sql": "CREATE TABLE a (x TEXT);", "0002_more.sql": "CREATE TABLE b (x INTEGER);"})
	_, err := migrate.Up(ctx, db, dialect, edited)
	if err == nil || !strings.Contains(err.Error(), "0001_init was edited after it was applied") {
		t.Fatalf("edited migration: %v", err)
	}
	if _, err := db.Exec("SELECT * FROM b"); err == nil {
		t.Fatal("a later migration ran after an edited one was found")
	}
	if _, err := migrate.List(ctx, db, edited); err == nil {
		t.Fatal("status does not report the edited migration")
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	migs := load(t, map[string]string{"0001_ok.sql": "CREATE TABLE a (x INTEGER);", "0002_bad.sql": "CREATE TABLE b (x INTEGER); INSERT INTO nope VALUES (1);"})
	done, err := migrate.Up(ctx, db, dialect, migs)
	if err == nil || len(done) != 1 || !strings.Contains(err.Error(), "0002_bad") {
		t.Fatalf("up: %v %v", done, err)
	}
	if _, err := db.Exec("SELECT * FROM b"); err == nil {
		t.Fatal("the failed migration's first statement was kept")
	}
}

func TestUnknownAppliedVersionIsRefused(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if _, err := migrate.Up(ctx, db, dialect, load(t, map[string]string{"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 1;"})); err != nil {
		t.Fatal(err)
	}
	_, err := migrate.Up(ctx, db, dialect, load(t, map[string]string{"0001_a.sql": "SELECT 1;"}))
	if err == nil || !strings.Contains(err.Error(), "does not know") {
		t.Fatalf("older binary on newer database: %v", err)
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	migs, err := migrate.Load(migrations.FS, "sqlite")
	if err != nil || len(migs) == 0 || migs[0].Version != 1 {
		t.Fatalf("embedded sqlite migrations: %v %v", migs, err)
	}
	for _, bad := range []map[string]string{{"1.sql": ""}, {"x_a.sql": ""}, {"0001_a.sql": "", "1_b.sql": ""}} {
		fsys := fstest.MapFS{}
		for k, v := range bad {
			fsys["m/"+k] = &fstest.MapFile{Data: []byte(v)}
		}
		if _, err := migrate.Load(fsys, "m"); err == nil {
			t.Errorf("bad names %v accepted", bad)
		}
	}
}

func TestStepRunsInTheMigrationsTransaction(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	migs := load(t, map[string]string{"0001_a.sql": "CREATE TABLE a (x INTEGER);", "0002_b.sql": "CREATE TABLE b (x INTEGER);"})
	migs[1].Step = func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO b VALUES (1)"); err != nil {
			return err
		}
		return errors.New("step failed")
	}
	done, err := migrate.Up(ctx, db, dialect, migs)
	if err == nil || len(done) != 1 || !strings.Contains(err.Error(), "0002_b: step failed") {
		t.Fatalf("up: %v %v", done, err)
	}
	if _, err := db.Exec("SELECT * FROM b"); err == nil {
		t.Fatal("a failed step left its migration's SQL applied")
	}
	ran := 0
	migs[1].Step = func(ctx context.Context, tx *sql.Tx) error {
		ran++
		_, err := tx.ExecContext(ctx, "INSERT INTO b VALUES (2)")
		return err
	}
	for range 2 {
		if _, err := migrate.Up(ctx, db, dialect, migs); err != nil {
			t.Fatal(err)
		}
	}
	var x int
	if err := db.QueryRow("SELECT x FROM b").Scan(&x); err != nil || x != 2 || ran != 1 {
		t.Fatalf("step: x=%d ran %d times, %v", x, ran, err)
	}
}
