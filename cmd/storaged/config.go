package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/user"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/storaged/storaged/internal/backend/queue"
	sqsstore "github.com/storaged/storaged/internal/backend/sqs"
	"github.com/storaged/storaged/internal/handlers"
	"github.com/storaged/storaged/internal/ui"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Config is the daemon's configuration (DESIGN §5), read from the
// environment and overridden by flags.
type Config struct {
	RepositoryBackend    string
	RepositoryConnection string
	// RepositoryConnectionVar names the variable RepositoryConnection
	// came from (REPOSITORY_CONNECTION_STRING, SQLITE_PATH or
	// POSTGRESQL_URL), for messages about it.
	RepositoryConnectionVar string
	RepositoryCacheSize     int
	JobQueueBackend         string
	JobQueueConnection      string
	JobQueueConnectionVar   string
	RedisPrefix             string
	SQSRegion               string
	SQSEndpoint             string
	SQSQueuePrefix          string
	SQSPollInterval         time.Duration
	Socket                  string
	SocketMode              os.FileMode
	LogLevel                slog.Level
	MaxBodyBytes            int
	MaxResultBytes          int
	MaxConnections          int
	ReadTimeout             time.Duration
	WriteTimeout            time.Duration
	IdleTimeout             time.Duration
	TxIdleTimeout           time.Duration
	RetentionCompleted      time.Duration
	RetentionFailed         time.Duration
	ShutdownTimeout         time.Duration
	StdinLifeline           bool
	SQLiteSynchronous       string
	AutoMigrate             bool
	PostgresNotify          bool
	SocketGroup             int // -1: leave the group as created
	AllowedUIDs             []int
	AllowedGIDs             []int
	MemoryLimit             int64 // bytes; memoryLimitAuto or 0 (off)
	MetricsQueues           int
	UIListen                string // host:port of the dashboard; empty: off
	UIToken                 string
	UIReadOnly              bool
}

// setting is one configuration variable: its environment name, the flag
// that mirrors it, its default and how to check it.
type setting struct {
	env, flag, def, help string
	apply                func(c *Config, v string) error
}

var settings = []setting{
	{"REPOSITORY_BACKEND", "repository-backend", "memory", "records backend: memory|sqlite|postgres", func(c *Config, v string) error {
		c.RepositoryBackend = v
		return oneOf(v, "memory", "sqlite", "postgres")
	}},
	{"REPOSITORY_CONNECTION_STRING", "repository-connection-string", "", "records database: a SQLite path or a PostgreSQL URL", func(c *Config, v string) error {
		c.RepositoryConnection = v
		return nil
	}},
	{"REPOSITORY_CACHE_SIZE", "repository-cache-size", "0", "records kept in the findById read cache; 0 turns it off", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100_000_000 {
			return fmt.Errorf("%q is not a record count between 0 and 100000000", v)
		}
		c.RepositoryCacheSize = n
		return nil
	}},
	{"SQLITE_PATH", "sqlite-path", "", "SQLite file, used when no connection string is set", nil},
	{"POSTGRESQL_URL", "postgresql-url", "", "PostgreSQL URL, used when no connection string is set", nil},
	{"JOBQUEUE_BACKEND", "jobqueue-backend", "memory", "jobs backend: memory|sqlite|postgres|redis|sqs", func(c *Config, v string) error {
		c.JobQueueBackend = v
		return oneOf(v, "memory", "sqlite", "postgres", "redis", "sqs")
	}},
	{"JOBQUEUE_CONNECTION_STRING", "jobqueue-connection-string", "", "jobs database: a SQLite path, a PostgreSQL URL or a Redis URL", func(c *Config, v string) error {
		c.JobQueueConnection = v
		return nil
	}},
	{"REDIS_URL", "redis-url", "", "Redis URL (redis://host:6379/0), used when no connection string is set", nil},
	{"STORAGED_REDIS_PREFIX", "redis-prefix", "storaged", "prefix of every Redis key, to share one Redis between deployments", func(c *Config, v string) error {
		if v == "" || strings.ContainsAny(v, " \t\n{}") {
			return fmt.Errorf("%q must be non-empty, without spaces or braces", v)
		}
		c.RedisPrefix = v
		return nil
	}},
	{"SQS_REGION", "sqs-region", "", "AWS region of the SQS job queue; empty: the SDK's (AWS_REGION, the profile)", func(c *Config, v string) error {
		for _, r := range v {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not an AWS region name such as eu-west-1", v)
			}
		}
		c.SQSRegion = v
		return nil
	}},
	{"SQS_ENDPOINT", "sqs-endpoint", "", "SQS endpoint URL replacing AWS's (an emulator, a VPC endpoint); empty: the region's", func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%q is not an http(s) URL", v)
			}
		}
		c.SQSEndpoint = v
		return nil
	}},
	{"SQS_QUEUE_PREFIX", "sqs-queue-prefix", "storaged-", "start of the name of every SQS queue storaged uses (queue <prefix><name>, dead letters <prefix><name>-dlq)", func(c *Config, v string) error {
		c.SQSQueuePrefix = v
		return sqsstore.ValidatePrefix(v)
	}},
	{"SQS_POLL_INTERVAL", "sqs-poll-interval", "1s", "longest sleep of a long poll's last part below a second, and how often one looks again for an SQS queue not created yet (long polls wait in SQS itself otherwise)", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Millisecond || d > 20*time.Second {
			return fmt.Errorf("%q is not a duration between 10ms and 20s", v)
		}
		c.SQSPollInterval = d
		return nil
	}},
	{"STORAGED_SOCKET", "socket", "/run/storaged/storaged.sock", "Unix socket path to serve on", func(c *Config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		if len(v) > 107 {
			return fmt.Errorf("%q is longer than a Unix socket path may be (107 bytes)", v)
		}
		c.Socket = v
		return nil
	}},
	{"STORAGED_SOCKET_MODE", "socket-mode", "0660", "file mode of the socket, octal", func(c *Config, v string) error {
		n, err := strconv.ParseUint(v, 8, 32)
		if err != nil || n > 0o777 {
			return fmt.Errorf("%q is not an octal file mode such as 0660", v)
		}
		c.SocketMode = os.FileMode(n)
		return nil
	}},
	{"STORAGED_SOCKET_GROUP", "socket-group", "", "group (name or gid) of the socket file storaged creates", func(c *Config, v string) error {
		c.SocketGroup = -1
		if v == "" {
			return nil
		}
		if gid, err := strconv.Atoi(v); err == nil && gid >= 0 {
			c.SocketGroup = gid
			return nil
		}
		g, err := user.LookupGroup(v)
		if err != nil {
			return fmt.Errorf("no group %q", v)
		}
		c.SocketGroup, _ = strconv.Atoi(g.Gid)
		return nil
	}},
	{"STORAGED_ALLOWED_UIDS", "allowed-uids", "", "comma-separated peer uids allowed to connect (SO_PEERCRED); empty: any", func(c *Config, v string) (err error) {
		c.AllowedUIDs, err = idList(v)
		return err
	}},
	{"STORAGED_ALLOWED_GIDS", "allowed-gids", "", "comma-separated peer gids allowed to connect (SO_PEERCRED); empty: any", func(c *Config, v string) (err error) {
		c.AllowedGIDs, err = idList(v)
		return err
	}},
	{"STORAGED_LOG_LEVEL", "log-level", "info", "debug|info|warn|error", func(c *Config, v string) error {
		return c.LogLevel.UnmarshalText([]byte(v))
	}},
	{"STORAGED_MAX_BODY_BYTES", "max-body-bytes", strconv.Itoa(handlers.DefaultLimits.MaxBodyBytes), "largest request body; larger ones get 413", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1024 || n > 1<<30 {
			return fmt.Errorf("%q is not a byte count between 1024 and 1073741824", v)
		}
		c.MaxBodyBytes = n
		return nil
	}},
	{"STORAGED_MAX_RESULT_BYTES", "max-result-bytes", strconv.Itoa(queue.DefaultMaxResultBytes), "largest job result (ack) or progress report; larger ones get 413", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 16 || n > 16<<20 {
			return fmt.Errorf("%q is not a byte count between 16 and 16777216", v)
		}
		c.MaxResultBytes = n
		return nil
	}},
	{"STORAGED_MAX_CONNECTIONS", "max-connections", strconv.Itoa(handlers.DefaultLimits.MaxConnections), "connections served at once; past it a connection gets 503 and is closed", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return fmt.Errorf("%q is not a connection count between 1 and 1000000", v)
		}
		c.MaxConnections = n
		return nil
	}},
	{"STORAGED_READ_TIMEOUT", "read-timeout", handlers.DefaultLimits.ReadTimeout.String(), "close a connection whose request (head and body) takes longer than this to arrive", durationIn(func(c *Config) *time.Duration { return &c.ReadTimeout })},
	{"STORAGED_WRITE_TIMEOUT", "write-timeout", handlers.DefaultLimits.WriteTimeout.String(), "close a connection whose peer takes longer than this to read a response", durationIn(func(c *Config) *time.Duration { return &c.WriteTimeout })},
	{"STORAGED_IDLE_TIMEOUT", "idle-timeout", handlers.DefaultLimits.IdleTimeout.String(), "close a keep-alive connection idle this long", durationIn(func(c *Config) *time.Duration { return &c.IdleTimeout })},
	{"STORAGED_TX_IDLE_TIMEOUT", "tx-idle-timeout", "30s", "roll back transactions idle this long", durationIn(func(c *Config) *time.Duration { return &c.TxIdleTimeout })},
	{"STORAGED_RETENTION_COMPLETED", "retention-completed", "24h", "keep completed and cancelled jobs this long; 0 deletes a job in the ack that completes it", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration such as 0, 30s or 24h", v)
		}
		c.RetentionCompleted = d
		return nil
	}},
	{"STORAGED_RETENTION_FAILED", "retention-failed", "168h", "keep failed jobs (dead letters) this long", durationIn(func(c *Config) *time.Duration { return &c.RetentionFailed })},
	{"STORAGED_STDIN_LIFELINE", "stdin-lifeline", "false", "exit when stdin closes (for a parent that runs a private daemon)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.StdinLifeline = b
		return nil
	}},
	{"STORAGED_SQLITE_SYNCHRONOUS", "sqlite-synchronous", "NORMAL", "NORMAL (survives a daemon crash) or FULL (also power loss)", func(c *Config, v string) error {
		c.SQLiteSynchronous = strings.ToUpper(v)
		return oneOf(c.SQLiteSynchronous, "NORMAL", "FULL")
	}},
	{"STORAGED_AUTO_MIGRATE", "auto-migrate", "true", "apply pending migrations at start", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.AutoMigrate = b
		return nil
	}},
	{"STORAGED_PG_NOTIFY", "pg-notify", "true", "wake long polls with LISTEN/NOTIFY (false behind a transaction-mode pooler: poll instead)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.PostgresNotify = b
		return nil
	}},
	{"STORAGED_MEMORY_LIMIT", "memory-limit", "auto", "soft limit of the Go heap: a size (512MiB, 2GiB), auto (90% of the cgroup limit, else 3/4 of the RAM) or off; GOMEMLIMIT, if set, wins", func(c *Config, v string) error {
		switch v {
		case "auto":
			c.MemoryLimit = memoryLimitAuto
			return nil
		case "off":
			c.MemoryLimit = 0
			return nil
		}
		n, err := parseSize(v)
		if err != nil || n < minMemoryLimit {
			return fmt.Errorf("%q is not auto, off or a size of at least 32MiB such as 512MiB or 2GiB", v)
		}
		c.MemoryLimit = n
		return nil
	}},
	{"STORAGED_METRICS_QUEUES", "metrics-queues", "1000", "queues /metrics shows at most: those used in the last 15 minutes, the most recent first", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100_000 {
			return fmt.Errorf("%q is not a queue count between 1 and 100000", v)
		}
		c.MetricsQueues = n
		return nil
	}},
	{"STORAGED_UI_LISTEN", "ui-listen", "", "host:port of the dashboard (issue 20); empty: off. A non-loopback address needs STORAGED_UI_TOKEN", func(c *Config, v string) error {
		c.UIListen = v
		return nil // checked with the token, after every variable is read
	}},
	{"STORAGED_UI_TOKEN", "ui-token", "", "token the dashboard asks for (Authorization: Bearer); at least 16 characters; empty: none, loopback only", func(c *Config, v string) error {
		if v != "" && (len(v) < 16 || strings.ContainsAny(v, " \t\r\n")) {
			return errors.New("must be at least 16 characters, without spaces (e.g. openssl rand -hex 24)")
		}
		c.UIToken = v
		return nil
	}},
	{"STORAGED_UI_READONLY", "ui-readonly", "false", "dashboard that looks only: pause, retry, cancel, delete and edits are refused with 403", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.UIReadOnly = b
		return nil
	}},
	{"STORAGED_SHUTDOWN_TIMEOUT", "shutdown-timeout", "10s", "on SIGTERM, wait this long for requests in flight", durationIn(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
}

func idList(v string) ([]int, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a comma-separated list of numeric ids", v)
		}
		out = append(out, n)
	}
	return out, nil
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func durationIn(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration such as 30s or 24h", v)
		}
		*field(c) = d
		return nil
	}
}

// LoadConfig reads the environment (through lookup, os.LookupEnv in
// production), then the flags, and validates every value. An error names
// the variable (and its flag) at fault.
func LoadConfig(args []string, lookup func(string) (string, bool)) (Config, error) {
	fs := flag.NewFlagSet("storaged serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	values := make([]*string, len(settings))
	for i, s := range settings {
		values[i] = fs.String(s.flag, envOr(lookup, s.env, s.def), s.help+" ($"+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
		}
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	byFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { byFlag[f.Name] = true })
	var c Config
	raw := map[string]string{}
	for i, s := range settings {
		v := *values[i]
		// A variable set to "" is a mistake (an unfinished line in an
		// environment file) wherever empty is not a meaningful value:
		// refuse it rather than quietly use the default.
		if s.def != "" {
			envV, envSet := lookup(s.env)
			if (byFlag[s.flag] && v == "") || (!byFlag[s.flag] && envSet && envV == "") {
				return Config{}, fmt.Errorf("%s (--%s): is set but empty; leave it unset for the default (%s) or give a value", s.env, s.flag, s.def)
			}
		}
		raw[s.env] = v
		if s.apply == nil {
			continue
		}
		if err := s.apply(&c, v); err != nil {
			return Config{}, fmt.Errorf("%s (--%s): %w", s.env, s.flag, err)
		}
	}
	// The seed's fallbacks: a backend's own connection string first, then
	// the database-specific variable. connVar remembers which one was used,
	// so that later messages name the variable the user actually set.
	resolve := func(backend string, conn, connVar *string, env string) error {
		*connVar = env
		if *conn != "" {
			return nil
		}
		alt := map[string]string{"sqlite": "SQLITE_PATH", "postgres": "POSTGRESQL_URL", "redis": "REDIS_URL"}[backend]
		if alt == "" {
			return nil
		}
		*conn, *connVar = raw[alt], alt
		if *conn == "" {
			return fmt.Errorf("%s=%s needs %s or %s", strings.TrimSuffix(env, "_CONNECTION_STRING")+"_BACKEND", backend, env, alt)
		}
		return nil
	}
	if c.UIListen != "" {
		if err := ui.CheckListen(c.UIListen, c.UIToken != ""); err != nil {
			return Config{}, fmt.Errorf("STORAGED_UI_LISTEN (--ui-listen): %w", err)
		}
	} else if c.UIToken != "" || c.UIReadOnly {
		return Config{}, errors.New("STORAGED_UI_TOKEN and STORAGED_UI_READONLY configure the dashboard, which is off: set STORAGED_UI_LISTEN too")
	}
	if err := resolve(c.RepositoryBackend, &c.RepositoryConnection, &c.RepositoryConnectionVar, "REPOSITORY_CONNECTION_STRING"); err != nil {
		return Config{}, err
	}
	if c.JobQueueBackend == "sqlite" && c.JobQueueConnection == "" && c.RepositoryBackend == "sqlite" {
		// One file for both, as the issue asks.
		c.JobQueueConnection, c.JobQueueConnectionVar = c.RepositoryConnection, c.RepositoryConnectionVar
	} else if err := resolve(c.JobQueueBackend, &c.JobQueueConnection, &c.JobQueueConnectionVar, "JOBQUEUE_CONNECTION_STRING"); err != nil {
		return Config{}, err
	}
	return c, nil
}

// envOr is the value of the variable key, or def when it is unset or empty.
func envOr(lookup func(string) (string, bool), key, def string) string {
	if v, _ := lookup(key); v != "" {
		return v
	}
	return def
}

const (
	memoryLimitAuto = -1
	minMemoryLimit  = 32 << 20
)

// parseSize reads a byte count, with an optional binary unit: 1073741824,
// 1024MiB, 1GiB.
func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}, {"B", 0}, {"", 0}}
	for _, u := range units {
		num, ok := strings.CutSuffix(v, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64>>u.shift {
			return 0, fmt.Errorf("%q is not a size", v)
		}
		return n << u.shift, nil
	}
	return 0, fmt.Errorf("%q is not a size", v)
}

// applyMemoryLimit sets the Go runtime's soft memory limit, so that the
// collector works harder before the process grows past it rather than
// letting garbage from large requests pile up to twice the live heap.
// GOMEMLIMIT, read by the runtime itself, wins over STORAGED_MEMORY_LIMIT.
// The limit is soft: past it the collector takes more CPU (at most about
// half), nothing fails.
func (c Config) applyMemoryLimit(lookup func(string) (string, bool), log *slog.Logger) {
	source, limit := "STORAGED_MEMORY_LIMIT", c.MemoryLimit
	switch {
	case envOr(lookup, "GOMEMLIMIT", "") != "":
		source, limit = "GOMEMLIMIT", debug.SetMemoryLimit(-1)
	case limit == 0:
		log.Info("no memory limit (STORAGED_MEMORY_LIMIT=off)")
		return
	case limit == memoryLimitAuto:
		if n := cgroupMemoryLimit(); n > 0 {
			source, limit = "90% of the cgroup memory limit", n/10*9
		} else if n := physicalMemory(); n > 0 {
			source, limit = "3/4 of the RAM", n/4*3
		} else {
			log.Warn("no memory limit: neither a cgroup limit nor the RAM size could be read; set STORAGED_MEMORY_LIMIT")
			return
		}
		limit = max(limit, minMemoryLimit)
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit, "from", source)
}

// defaultGCPercent is the collector's pace when GOGC is unset. The
// daemon's live heap is small (a few MB) and each batch call allocates
// hundreds of kB that die at once, so at Go's default of 100 it collected
// every few calls: with 400 a drain of 60 000 jobs on PostgreSQL cost the
// daemon 15 µs of CPU per job instead of 22 (GC and the scavenger were a
// third of its profile). The soft memory limit (applyMemoryLimit) still
// bounds the heap: near it the collector runs as often as it must.
const defaultGCPercent = 400

// applyGCPercent sets defaultGCPercent unless GOGC, which the runtime has
// applied already, says otherwise.
func applyGCPercent(lookup func(string) (string, bool), log *slog.Logger) {
	if envOr(lookup, "GOGC", "") != "" {
		return
	}
	debug.SetGCPercent(defaultGCPercent)
	log.Debug("GC percent", "value", defaultGCPercent, "from", "default (GOGC unset)")
}

// cgroupMemoryLimit is the smallest memory limit of this process's cgroup
// and its parents (cgroup v2 memory.max, or v1 memory.limit_in_bytes), or
// 0 when there is none: a systemd MemoryMax= or a container's limit.
func cgroupMemoryLimit() int64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	var best int64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var root, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			root, file = "/sys/fs/cgroup", "memory.max"
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			root, file = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
		default:
			continue
		}
		for dir := parts[2]; ; dir = path.Dir(dir) {
			raw, err := os.ReadFile(path.Join(root, dir, file))
			// v1 writes "no limit" as a huge number, v2 as "max".
			if n, perr := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64); err == nil && perr == nil && n > 0 && n < 1<<60 && (best == 0 || n < best) {
				best = n
			}
			if dir == "/" || dir == "." {
				break
			}
		}
	}
	return best
}

// physicalMemory is MemTotal of /proc/meminfo in bytes, or 0.
func physicalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
