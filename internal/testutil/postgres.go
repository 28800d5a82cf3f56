package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is the local server as user postgres (trust auth), as
// on the development machines and in CI.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresAdminURL is STORAGED_TEST_POSTGRES_URL or the default.
func PostgresAdminURL() string {
	if u := os.Getenv("STORAGED_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// PostgresDB creates a fresh database for the test (or the package, when
// called from TestMain through a testing.TB of its own) and drops it at
// cleanup. An unreachable server fails the test, never skips it.
func PostgresDB(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s: %v\n"+
			"Start it (Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, or .ci/run does it)\n"+
			"or point STORAGED_TEST_POSTGRES_URL at a server where the user may CREATE DATABASE.", admin, err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "storaged_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("dropping %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// A keyword/value connection string.
		return strings.TrimSpace(raw) + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

// PostgresDBBehindProxy is a fresh test database (PostgresDB) reached
// through a FaultProxy, with a pool of one connection, so that the
// request a test makes is the one on the connection the proxy cuts.
func PostgresDBBehindProxy(t testing.TB) (string, *FaultProxy) {
	t.Helper()
	u, err := url.Parse(PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := StartFaultProxy(t, u.Host)
	u.Host = proxy.Addr
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	return u.String(), proxy
}
