package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// env is a lookup over m: a key in m is set, even to "".
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"REPOSITORY_BACKEND": "mongo"}, nil, "REPOSITORY_BACKEND"},
		{map[string]string{"JOBQUEUE_BACKEND": "kafka"}, nil, "JOBQUEUE_BACKEND"},
		{map[string]string{"JOBQUEUE_BACKEND": "sqs", "SQS_QUEUE_PREFIX": "bad.prefix"}, nil, "SQS_QUEUE_PREFIX"},
		{map[string]string{"SQS_QUEUE_PREFIX": strings.Repeat("p", 41)}, nil, "SQS_QUEUE_PREFIX"},
		{map[string]string{"SQS_ENDPOINT": "ftp://sqs.local"}, nil, "SQS_ENDPOINT"},
		{map[string]string{"SQS_ENDPOINT": "localhost:4566"}, nil, "SQS_ENDPOINT"},
		{map[string]string{"SQS_REGION": "EU West"}, nil, "SQS_REGION"},
		{map[string]string{"SQS_POLL_INTERVAL": "0s"}, nil, "SQS_POLL_INTERVAL"},
		{map[string]string{"STORAGED_SOCKET_MODE": "rw"}, nil, "STORAGED_SOCKET_MODE"},
		{map[string]string{"STORAGED_SOCKET_MODE": "01777"}, nil, "STORAGED_SOCKET_MODE"},
		{map[string]string{"STORAGED_LOG_LEVEL": "loud"}, nil, "STORAGED_LOG_LEVEL"},
		{map[string]string{"STORAGED_MAX_BODY_BYTES": "-1"}, nil, "STORAGED_MAX_BODY_BYTES"},
		{map[string]string{"STORAGED_TX_IDLE_TIMEOUT": "soon"}, nil, "STORAGED_TX_IDLE_TIMEOUT"},
		{map[string]string{"STORAGED_RETENTION_FAILED": "0s"}, nil, "STORAGED_RETENTION_FAILED"},
		{map[string]string{"STORAGED_RETENTION_COMPLETED": "-1s"}, nil, "STORAGED_RETENTION_COMPLETED"},
		{map[string]string{"STORAGED_RETENTION_COMPLETED": "a day"}, nil, "STORAGED_RETENTION_COMPLETED"},
		{map[string]string{"STORAGED_SOCKET": strings.Repeat("x", 200)}, nil, "STORAGED_SOCKET"},
		{map[string]string{"REPOSITORY_BACKEND": "sqlite"}, nil, "REPOSITORY_CONNECTION_STRING"},
		{map[string]string{"JOBQUEUE_BACKEND": "postgres"}, nil, "JOBQUEUE_CONNECTION_STRING"},
		{map[string]string{"JOBQUEUE_BACKEND": "redis"}, nil, "REDIS_URL"},
		{map[string]string{"REPOSITORY_CACHE_SIZE": "-1"}, nil, "REPOSITORY_CACHE_SIZE"},
		{map[string]string{"STORAGED_REDIS_PREFIX": "a b"}, nil, "STORAGED_REDIS_PREFIX"},
		{map[string]string{"STORAGED_SOCKET_MODE": ""}, nil, "STORAGED_SOCKET_MODE"},
		{map[string]string{"STORAGED_REDIS_PREFIX": ""}, nil, "STORAGED_REDIS_PREFIX"},
		{map[string]string{"STORAGED_LOG_LEVEL": ""}, nil, "STORAGED_LOG_LEVEL"},
		{nil, []string{"--socket-mode", ""}, "STORAGED_SOCKET_MODE (--socket-mode)"},
		{map[string]string{"STORAGED_MAX_CONNECTIONS": "0"}, nil, "STORAGED_MAX_CONNECTIONS"},
		{map[string]string{"STORAGED_MAX_CONNECTIONS": "many"}, nil, "STORAGED_MAX_CONNECTIONS"},
		{map[string]string{"STORAGED_READ_TIMEOUT": "0s"}, nil, "STORAGED_READ_TIMEOUT"},
		{map[string]string{"STORAGED_IDLE_TIMEOUT": "forever"}, nil, "STORAGED_IDLE_TIMEOUT"},
		{map[string]string{"STORAGED_WRITE_TIMEOUT": "-1s"}, nil, "STORAGED_WRITE_TIMEOUT"},
		{nil, []string{"--repository-backend", "nope"}, "REPOSITORY_BACKEND (--repository-backend)"},
		{nil, []string{"--no-such-flag"}, "no-such-flag"},
		{map[string]string{"STORAGED_UI_LISTEN": "0.0.0.0:8080"}, nil, "STORAGED_UI_LISTEN"},
		{map[string]string{"STORAGED_UI_LISTEN": ":8080"}, nil, "STORAGED_UI_LISTEN"},
		{map[string]string{"STORAGED_UI_LISTEN": "10.1.2.3:8080"}, nil, "STORAGED_UI_TOKEN"},
		{map[string]string{"STORAGED_UI_LISTEN": "dashboard.example:8080"}, nil, "STORAGED_UI_LISTEN"},
		{map[string]string{"STORAGED_UI_LISTEN": "127.0.0.1"}, nil, "STORAGED_UI_LISTEN"},
		{map[string]string{"STORAGED_UI_LISTEN": "127.0.0.1:8080", "STORAGED_UI_TOKEN": "short"}, nil, "STORAGED_UI_TOKEN"},
		{map[string]string{"STORAGED_UI_LISTEN": "127.0.0.1:8080", "STORAGED_UI_READONLY": "maybe"}, nil, "STORAGED_UI_READONLY"},
		{map[string]string{"STORAGED_UI_TOKEN": "0123456789abcdef0123"}, nil, "STORAGED_UI_LISTEN"},
	}
	for _, c := range cases {
		_, err := LoadConfig(c.args, env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v args %v: error %v, want one naming %s", c.env, c.args, err, c.want)
		}
	}
}

// The dashboard listens on loopback without a token, anywhere with one.
func TestConfigDashboardListen(t *testing.T) {
	cases := []struct {
		env      map[string]string
		listen   string
		readOnly bool
	}{
		{map[string]string{}, "", false},
		{map[string]string{"STORAGED_UI_LISTEN": "127.0.0.1:8080"}, "127.0.0.1:8080", false},
		{map[string]string{"STORAGED_UI_LISTEN": "[::1]:8080", "STORAGED_UI_READONLY": "1"}, "[::1]:8080", true},
		{map[string]string{"STORAGED_UI_LISTEN": "localhost:0"}, "localhost:0", false},
		{map[string]string{"STORAGED_UI_LISTEN": "0.0.0.0:8080", "STORAGED_UI_TOKEN": "0123456789abcdef0123"}, "0.0.0.0:8080", false},
	}
	for _, c := range cases {
		cfg, err := LoadConfig(nil, env(c.env))
		if err != nil {
			t.Fatalf("%v: %v", c.env, err)
		}
		if cfg.UIListen != c.listen || cfg.UIReadOnly != c.readOnly || cfg.UIToken != c.env["STORAGED_UI_TOKEN"] {
			t.Errorf("%v: listen %q readOnly %v token %q", c.env, cfg.UIListen, cfg.UIReadOnly, cfg.UIToken)
		}
	}
}

func TestConfigDefaultsAndFallbacks(t *testing.T) {
	c, err := LoadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.RepositoryBackend != "memory" || c.JobQueueBackend != "memory" || c.SocketMode != 0o660 || c.MaxBodyBytes != 16<<20 || c.TxIdleTimeout != 30*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	c, err = LoadConfig([]string{"--socket", "/tmp/x.sock"}, env(map[string]string{
		"REPOSITORY_BACKEND": "sqlite", "SQLITE_PATH": "/data/a.db", "JOBQUEUE_BACKEND": "postgres",
		"POSTGRESQL_URL": "postgres://x/y", "STORAGED_SOCKET": "/ignored"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RepositoryConnection != "/data/a.db" || c.JobQueueConnection != "postgres://x/y" || c.Socket != "/tmp/x.sock" {
		t.Fatalf("fallbacks %+v", c)
	}
	c, err = LoadConfig(nil, env(map[string]string{"REPOSITORY_BACKEND": "sqlite", "REPOSITORY_CONNECTION_STRING": "r.db", "JOBQUEUE_BACKEND": "sqlite"}))
	if err != nil || c.JobQueueConnection != "r.db" {
		t.Fatalf("sqlite queue defaults to the repository file: %+v %v", c, err)
	}
	c, err = LoadConfig(nil, env(map[string]string{"JOBQUEUE_BACKEND": "redis", "REDIS_URL": "redis://r:6379/2"}))
	if err != nil || c.JobQueueConnection != "redis://r:6379/2" || c.RedisPrefix != "storaged" {
		t.Fatalf("redis queue from REDIS_URL: %+v %v", c, err)
	}
}

func testConfig(t *testing.T) Config {
	c, err := LoadConfig(nil, env(map[string]string{"STORAGED_SOCKET": filepath.Join(t.TempDir(), "d.sock"), "STORAGED_SOCKET_MODE": "0600", "STORAGED_LOG_LEVEL": "error"}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, sock, path string) int {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}
	res, err := c.Get("http://storaged" + path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestMainServesAndCleansUp(t *testing.T) {
	cfg := testConfig(t)
	// A stale socket file from a crashed daemon is replaced.
	ln, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	m := NewMain(cfg)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.Socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if s := get(t, cfg.Socket, "/healthz"); s != 200 {
		t.Fatalf("healthz %d", s)
	}
	// A second daemon on the same path refuses to steal it.
	if err := NewMain(cfg).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second daemon: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestMainRefusesToReplaceAFile(t *testing.T) {
	cfg := testConfig(t)
	if err := os.WriteFile(cfg.Socket, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg)
	err := m.Run(context.Background())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("err %v", err)
	}
	if b, _ := os.ReadFile(cfg.Socket); string(b) != "precious" {
		t.Fatal("a regular file was replaced")
	}
}

func TestRunSubcommands(t *testing.T) {
	if code := run(context.Background(), []string{"version"}, env(nil)); code != 0 {
		t.Fatalf("version exit %d", code)
	}
	if code := run(context.Background(), []string{"frobnicate"}, env(nil)); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	if code := run(context.Background(), []string{"serve"}, env(map[string]string{"REPOSITORY_BACKEND": "x"})); code != 2 {
		t.Fatalf("bad config exit %d", code)
	}
}

// TestMigrateCommand: migrate touches each SQL database once and says
// why it leaves the others alone.
func TestMigrateCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "m.db")
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		want   []string
		errSub string
	}{
		{"memory only", []string{"up"}, nil, []string{"nothing to migrate"}, ""},
		{"sqlite records, redis jobs", []string{"up"},
			map[string]string{"REPOSITORY_BACKEND": "sqlite", "SQLITE_PATH": db, "JOBQUEUE_BACKEND": "redis", "REDIS_URL": "redis://127.0.0.1:6379/0"},
			[]string{"redis: no schema to migrate", "sqlite " + db + ": applied"}, ""},
		{"status after up", []string{"status"},
			map[string]string{"REPOSITORY_BACKEND": "sqlite", "SQLITE_PATH": db},
			[]string{"0001_initial  applied"}, ""},
		{"unknown action", []string{"sideways"}, nil, nil, "unknown action"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			err := migrateCmd(context.Background(), c.args, env(c.env), &out)
			if c.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSub) {
					t.Fatalf("error %v, want one with %q", err, c.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("output %q lacks %q", out.String(), w)
				}
			}
		})
	}
}

const sqsTestSecret = "never-log-this-secret"

// TestOpenErrorsNameTheVariableSet: when a database cannot be opened,
// the message names the variable the user set (SQLITE_PATH,
// POSTGRESQL_URL, REDIS_URL), not the connection string it stood in for.
func TestOpenErrorsNameTheVariableSet(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	badSQLite := filepath.Join(notADir, "x.db") // under a regular file
	const badPG = "postgres://postgres@127.0.0.1:1/none?connect_timeout=5"
	const badRedis = "redis://127.0.0.1:1/0"
	cases := []struct {
		name      string
		env       map[string]string
		want, not string
	}{
		{"records in SQLITE_PATH", map[string]string{"REPOSITORY_BACKEND": "sqlite", "SQLITE_PATH": badSQLite}, "SQLITE_PATH", "CONNECTION_STRING"},
		{"records in REPOSITORY_CONNECTION_STRING", map[string]string{"REPOSITORY_BACKEND": "sqlite", "REPOSITORY_CONNECTION_STRING": badSQLite}, "REPOSITORY_CONNECTION_STRING", "SQLITE_PATH"},
		{"jobs in SQLITE_PATH", map[string]string{"JOBQUEUE_BACKEND": "sqlite", "SQLITE_PATH": badSQLite}, "SQLITE_PATH", "CONNECTION_STRING"},
		{"records in POSTGRESQL_URL", map[string]string{"REPOSITORY_BACKEND": "postgres", "POSTGRESQL_URL": badPG}, "POSTGRESQL_URL", "CONNECTION_STRING"},
		{"jobs in POSTGRESQL_URL", map[string]string{"JOBQUEUE_BACKEND": "postgres", "POSTGRESQL_URL": badPG}, "POSTGRESQL_URL", "CONNECTION_STRING"},
		{"jobs in REDIS_URL", map[string]string{"JOBQUEUE_BACKEND": "redis", "REDIS_URL": badRedis}, "REDIS_URL", "CONNECTION_STRING"},
		{"jobs in JOBQUEUE_CONNECTION_STRING", map[string]string{"JOBQUEUE_BACKEND": "redis", "JOBQUEUE_CONNECTION_STRING": badRedis}, "JOBQUEUE_CONNECTION_STRING", "REDIS_URL"},
		{"jobs on SQS_ENDPOINT", map[string]string{"JOBQUEUE_BACKEND": "sqs", "SQS_ENDPOINT": "http://127.0.0.1:1", "SQS_REGION": "us-east-1"}, "SQS_ENDPOINT", sqsTestSecret},
	}
	// The SDK reads credentials from the process's environment; the
	// secret must appear in no message.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", sqsTestSecret)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.env["STORAGED_SOCKET"] = filepath.Join(t.TempDir(), "s.sock")
			c.env["STORAGED_LOG_LEVEL"] = "error"
			cfg, err := LoadConfig(nil, env(c.env))
			if err != nil {
				t.Fatal(err)
			}
			m := NewMain(cfg)
			err = m.Run(context.Background())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.not) {
				t.Fatalf("error %v: want one naming %s (and not %s)", err, c.want, c.not)
			}
		})
	}
}

// TestSQLiteSameFileOneWriter: records at dir/x.db and jobs at the same
// file spelled another way (dir/./x.db, a symlinked directory) share one
// database handle, hence one writer: a transaction open in records is
// the connection the job queue sees in use. A different file does not.
func TestSQLiteSameFileOneWriter(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	records := filepath.Join(dir, "x.db")
	cases := []struct {
		name, jobs string
		shared     bool
	}{
		{"same spelling", records, true},
		{"dot segment", dir + "/./x.db", true},
		{"symlinked directory", filepath.Join(link, "x.db"), true},
		{"another file", filepath.Join(dir, "y.db"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := LoadConfig(nil, env(map[string]string{
				"STORAGED_SOCKET": filepath.Join(t.TempDir(), "s.sock"), "STORAGED_LOG_LEVEL": "error",
				"REPOSITORY_BACKEND": "sqlite", "REPOSITORY_CONNECTION_STRING": records,
				"JOBQUEUE_BACKEND": "sqlite", "JOBQUEUE_CONNECTION_STRING": c.jobs,
			}))
			if err != nil {
				t.Fatal(err)
			}
			m := NewMain(cfg)
			if err := m.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			tx, err := m.repo.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			type pooled interface {
				PoolStats() (inUse, idle, maxOpen int)
			}
			inUse := func() int { n, _, _ := m.jobs.Store().(pooled).PoolStats(); return n }
			if c.shared {
				// The transaction's connection is the job queue's too.
				if n := inUse(); n == 0 {
					t.Fatalf("jobs at %s: the job queue's handle has no connection in use while records hold a transaction: two handles", c.jobs)
				}
				return
			}
			// Another handle is idle once the queue's own start-up work
			// (pruning) is done.
			waitFor(t, "the job queue's own handle to be idle", func() bool { return inUse() == 0 })
		})
	}
}

// TestServeErrorEndsTheDaemon: when serving stops on its own (here the
// listener is closed under it), Main reports it, so that the process
// exits non-zero and systemd restarts it, instead of living on deaf.
func TestServeErrorEndsTheDaemon(t *testing.T) {
	m := NewMain(testConfig(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.ln.Close()
	select {
	case err := <-m.Failed():
		if err == nil {
			t.Fatal("nil error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serving stopped and nobody noticed")
	}
}

// TestVersionOutput: `storaged version` names the stamped release and
// commit and the toolchain, which make build and make dist set with -ldflags.
func TestVersionOutput(t *testing.T) {
	oldV, oldC := Version, Commit
	t.Cleanup(func() { Version, Commit = oldV, oldC })
	Version, Commit = "1.2.3", "abc1234"
	var b strings.Builder
	writeVersion(&b)
	want := fmt.Sprintf("storaged 1.2.3 (commit abc1234, %s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	// Unstamped (go build, go test), the commit comes from the toolchain's
	// build info or says it is unknown; it is never empty.
	Commit = ""
	if c := buildCommit(); c == "" {
		t.Fatal("empty commit")
	}
}
