package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/cache"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/postgres"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/backend/redis"
	"github.com/storaged/storaged/internal/backend/sqlite"
	sqsstore "github.com/storaged/storaged/internal/backend/sqs"
	"github.com/storaged/storaged/internal/handlers"
	"github.com/storaged/storaged/internal/ui"
)

// Main is the running daemon: Run opens the backends and starts serving,
// Close shuts down in order (stop accepting, drain, close backends, remove
// the socket).
type Main struct {
	cfg  Config
	log  *slog.Logger
	repo backend.RepositoryBackend
	jobs *queue.Service
	api  *handlers.Server
	http *fasthttp.Server
	ln   net.Listener
	ui   *fasthttp.Server // the dashboard, when STORAGED_UI_LISTEN is set

	ownsSocket bool   // false under socket activation: systemd owns the path
	dialPath   string // where clients (and the watchdog's probe) connect
	traces     *sdktrace.TracerProvider
	stop       context.CancelFunc
	wg         sync.WaitGroup
	closing    atomic.Bool
	serveErr   chan error
}

// NewMain returns a daemon for cfg; nothing is opened yet.
func NewMain(cfg Config) *Main {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return &Main{cfg: cfg, log: log, serveErr: make(chan error, 1)}
}

// Run opens the backends, listens and serves in the background.
func (m *Main) Run(ctx context.Context) error {
	var err error
	if m.repo, err = openRepository(ctx, m.cfg, m.log); err != nil {
		return err
	}
	store, err := openJobStore(ctx, shareSQLiteFile(m.cfg), m.log)
	if err != nil {
		return err
	}
	metrics := handlers.NewMetrics()
	tracer, err := m.tracing(ctx)
	if err != nil {
		store.Close()
		return err
	}
	m.jobs = queue.New(queue.Config{Store: store, Logger: m.log, Observer: metrics.QueueObserver(), Tracer: tracer,
		MaxResultBytes: m.cfg.MaxResultBytes, DropCompleted: m.cfg.RetentionCompleted == 0})
	m.api = handlers.New(handlers.Config{
		Repository: m.repo, Jobs: m.jobs, Logger: m.log, Metrics: metrics, Tracer: tracer,
		TxIdleTimeout: m.cfg.TxIdleTimeout, MaxBodyBytes: m.cfg.MaxBodyBytes,
		MetricsQueues: m.cfg.MetricsQueues,
		Info: handlers.Info{
			Version: Version, RepositoryBackend: m.cfg.RepositoryBackend, JobQueueBackend: m.cfg.JobQueueBackend,
			StartedAt: time.Now().UTC().Format(time.RFC3339),
		},
	})
	m.api.RegisterMetrics(metrics)
	if m.ln, m.dialPath, err = m.listen(); err != nil {
		return err
	}
	m.http = handlers.NewFastHTTP(m.api.Handler(), handlers.Limits{
		MaxBodyBytes: m.cfg.MaxBodyBytes, MaxConnections: m.cfg.MaxConnections,
		ReadTimeout: m.cfg.ReadTimeout, WriteTimeout: m.cfg.WriteTimeout, IdleTimeout: m.cfg.IdleTimeout,
	}, m.log)
	m.checkDescriptorLimit()
	var ln net.Listener = &retryListener{Listener: m.ln, log: m.log}
	if len(m.cfg.AllowedUIDs) > 0 || len(m.cfg.AllowedGIDs) > 0 {
		ln = &peerCredListener{Listener: ln, uids: m.cfg.AllowedUIDs, gids: m.cfg.AllowedGIDs, log: m.log}
	}
	go func() {
		err := m.http.Serve(ln)
		if m.closing.Load() {
			return // Close stopped it
		}
		if err == nil {
			err = errors.New("the listener was closed")
		}
		m.serveErr <- fmt.Errorf("stopped accepting connections on %s: %w", m.dialPath, err)
	}()

	if err := m.serveUI(); err != nil {
		return err
	}

	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	m.stop = stop
	m.wg.Add(1)
	go m.pruneLoop(bg)
	m.wg.Add(1)
	go m.expiryLoop(bg)
	// Recurring schedules: every daemon looks for due slots four times a second;
	// the store makes each slot fire once however many do (issue 16).
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.jobs.RunSchedules(bg, 250*time.Millisecond)
	}()
	if every, err := daemon.SdWatchdogEnabled(false); err == nil && every > 0 {
		m.wg.Add(1)
		go m.watchdogLoop(bg, every/2)
	}

	m.log.Info("storaged serving", "socket", m.cfg.Socket, "version", Version,
		"repository", m.cfg.RepositoryBackend, "jobqueue", m.cfg.JobQueueBackend)
	fmt.Fprintf(os.Stdout, "storaged: serving on %s (repository=%s, jobqueue=%s)\n", m.cfg.Socket, m.cfg.RepositoryBackend, m.cfg.JobQueueBackend)
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	return nil
}

// serveUI starts the dashboard's listener (issue 20): the same API
// handler behind ui.Handler's token, read-only mode and route allowlist.
func (m *Main) serveUI() error {
	if m.cfg.UIListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.cfg.UIListen)
	if err != nil {
		return fmt.Errorf("STORAGED_UI_LISTEN: %w", err)
	}
	m.ui = handlers.NewFastHTTP(ui.Handler(ui.Options{API: m.api.Handler(), Token: m.cfg.UIToken, ReadOnly: m.cfg.UIReadOnly}), handlers.Limits{
		MaxBodyBytes: m.cfg.MaxBodyBytes, MaxConnections: 256,
		ReadTimeout: m.cfg.ReadTimeout, WriteTimeout: m.cfg.WriteTimeout, IdleTimeout: m.cfg.IdleTimeout,
	}, m.log)
	go func() {
		err := m.ui.Serve(ln)
		if m.closing.Load() {
			return
		}
		if err == nil {
			err = errors.New("the listener was closed")
		}
		m.serveErr <- fmt.Errorf("stopped accepting connections on the dashboard's %s: %w", ln.Addr(), err)
	}()
	m.log.Info("dashboard serving", "url", "http://"+ln.Addr().String()+"/", "token", m.cfg.UIToken != "", "readonly", m.cfg.UIReadOnly)
	fmt.Fprintf(os.Stdout, "storaged: dashboard on http://%s/\n", ln.Addr())
	return nil
}

// Failed receives an error if serving stops while the daemon is not
// shutting down: the process must then exit non-zero, so that systemd
// restarts it, rather than live on with a socket nobody answers.
func (m *Main) Failed() <-chan error { return m.serveErr }

// checkDescriptorLimit warns when the connection cap does not fit in the
// file-descriptor limit: connections past what fits would wait in the
// backlog (accept failing with EMFILE, retried) rather than get a 503.
func (m *Main) checkDescriptorLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	// Descriptors the daemon needs besides connections: database pools,
	// files, the runtime's own.
	const reserve = 256
	if uint64(m.cfg.MaxConnections)+reserve > lim.Cur { //nolint:gosec // G115: the config refuses a MaxConnections below 1
		m.log.Warn("STORAGED_MAX_CONNECTIONS does not fit in the file-descriptor limit; raise LimitNOFILE or lower STORAGED_MAX_CONNECTIONS",
			"max_connections", m.cfg.MaxConnections, "nofile", lim.Cur, "reserved", reserve)
	}
}

// tracing exports spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT
// (or its traces variant) is set; the exporter reads the standard OTEL_*
// variables itself.
func (m *Main) tracing(ctx context.Context) (trace.Tracer, error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "storaged"), attribute.String("service.version", Version))
	m.traces = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	m.log.Info("exporting traces over OTLP")
	return m.traces.Tracer("storaged"), nil
}

// watchdogLoop tells systemd the daemon is alive while its backends
// answer a ping and a request through its socket is answered; if either
// stops, systemd's watchdog restarts it. The request goes where clients
// connect, so a daemon that no longer accepts (or whose socket file is
// gone or taken) counts as dead, not only one whose backends are.
func (m *Main) watchdogLoop(ctx context.Context, every time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	probe := &http.Client{Timeout: every, Transport: &http.Transport{
		DisableKeepAlives: true, // hold no connection (nor a slot under the cap) between probes
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", m.dialPath)
		},
	}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c, cancel := context.WithTimeout(ctx, every)
			err := errors.Join(m.repo.Ping(c), m.jobs.Ping(c))
			cancel()
			if err != nil {
				m.log.Warn("backends not answering; withholding the watchdog ping", "err", err)
				continue
			}
			if err := m.probeSocket(ctx, probe); err != nil {
				m.log.Warn("socket not answering; withholding the watchdog ping", "socket", m.dialPath, "err", err)
				continue
			}
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}

// probeSocket sends GET /healthz through the socket. Any HTTP answer will
// do: even the 503 of a full connection cap proves the accept loop runs.
func (m *Main) probeSocket(ctx context.Context, c *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://storaged/healthz", nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return res.Body.Close()
}

func (m *Main) pruneLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		now := time.Now()
		n, err := m.jobs.Prune(ctx, backend.PruneParams{
			CompletedBefore: now.Add(-m.cfg.RetentionCompleted),
			FailedBefore:    now.Add(-m.cfg.RetentionFailed),
		})
		if err != nil && ctx.Err() == nil {
			m.log.Warn("pruning finished jobs failed", "err", err)
		} else if n > 0 {
			m.log.Info("pruned finished jobs", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close rolls back open transactions and answers waiting long polls,
// stops accepting, lets requests in flight finish (bounded by
// STORAGED_SHUTDOWN_TIMEOUT), closes the backends and removes the socket
// it created. Jobs claimed by workers stay claimed; their leases expire
// and they are delivered again.
func (m *Main) Close() error {
	m.closing.Store(true)
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	var errs []error
	if m.stop != nil {
		m.stop()
	}
	if m.http != nil {
		done := make(chan error, 1)
		go func() {
			// Transactions first (and no new ones), so that a write waiting
			// behind one is answered instead of holding the drain until its
			// request timeout; long polls answer 204 instead of holding it
			// for their wait.
			m.api.Close()
			var uiErr error
			if m.ui != nil {
				uiErr = m.ui.Shutdown()
			}
			done <- errors.Join(uiErr, m.http.Shutdown())
		}()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, err)
			}
		case <-time.After(m.cfg.ShutdownTimeout):
			m.log.Warn("requests still in flight after the shutdown timeout; closing anyway")
		}
	} else {
		if m.api != nil {
			m.api.Close()
		}
		if m.ln != nil {
			m.ln.Close()
		}
	}
	m.wg.Wait()
	if m.jobs != nil {
		errs = append(errs, m.jobs.Close())
	}
	if m.repo != nil {
		errs = append(errs, m.repo.Close())
	}
	if m.traces != nil {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, m.traces.Shutdown(c))
		cancel()
	}
	if m.ownsSocket {
		if err := os.Remove(m.cfg.Socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	m.log.Info("storaged stopped")
	return errors.Join(errs...)
}

// shareSQLiteFile points the job queue at the repository's SQLite file,
// spelled as the repository spells it, when both name the same file in
// different ways (dir/x.db and dir/./x.db, a symlink): sqlite.Open shares
// one handle per spelling, and two handles on one file would be two
// writers contending through SQLite's lock instead of one queue of
// writes. Call it once the repository has opened (and so created) it.
func shareSQLiteFile(cfg Config) Config {
	if cfg.RepositoryBackend != "sqlite" || cfg.JobQueueBackend != "sqlite" ||
		cfg.RepositoryConnection == cfg.JobQueueConnection || cfg.RepositoryConnection == ":memory:" {
		return cfg
	}
	a, errA := os.Stat(cfg.RepositoryConnection)
	b, errB := os.Stat(cfg.JobQueueConnection)
	if errA == nil && errB == nil && os.SameFile(a, b) {
		cfg.JobQueueConnection = cfg.RepositoryConnection
	}
	return cfg
}

func openSQLite(ctx context.Context, cfg Config, path, env string, log *slog.Logger) (*sqlite.DB, error) {
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("%s: %w", env, err)
		}
	}
	db, err := sqlite.Open(ctx, sqlite.Config{Path: path, Synchronous: cfg.SQLiteSynchronous, NoMigrate: !cfg.AutoMigrate, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", env, path, err)
	}
	return db, nil
}

func openRepository(ctx context.Context, cfg Config, log *slog.Logger) (backend.RepositoryBackend, error) {
	b, err := openRepositoryBackend(ctx, cfg, log)
	if err != nil || cfg.RepositoryCacheSize == 0 {
		return b, err
	}
	c, err := cache.Wrap(b, cache.Config{Size: cfg.RepositoryCacheSize, Logger: log})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("REPOSITORY_CACHE_SIZE: %w", err)
	}
	return c, nil
}

func openRepositoryBackend(ctx context.Context, cfg Config, log *slog.Logger) (backend.RepositoryBackend, error) {
	switch cfg.RepositoryBackend {
	case "memory":
		return memory.NewRepositoryBackend(), nil
	case "sqlite":
		db, err := openSQLite(ctx, cfg, cfg.RepositoryConnection, cfg.RepositoryConnectionVar, log)
		if err != nil {
			return nil, err
		}
		return sqlite.NewRepositoryBackend(db), nil
	case "postgres":
		b, err := postgres.OpenRepository(ctx, postgres.Config{URL: cfg.RepositoryConnection, NoMigrate: !cfg.AutoMigrate, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.RepositoryConnectionVar, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("REPOSITORY_BACKEND=%s is not available in this build", cfg.RepositoryBackend)
}

func openJobStore(ctx context.Context, cfg Config, log *slog.Logger) (backend.JobStore, error) {
	switch cfg.JobQueueBackend {
	case "memory":
		return memory.NewJobStore(), nil
	case "sqlite":
		// Opening the repository's file again (same spelling: see
		// shareSQLiteFile) shares its one writer.
		db, err := openSQLite(ctx, cfg, cfg.JobQueueConnection, cfg.JobQueueConnectionVar, log)
		if err != nil {
			return nil, err
		}
		return sqlite.NewJobStore(db), nil
	case "postgres":
		b, err := postgres.OpenJobStore(ctx, postgres.JobStoreConfig{
			Config:   postgres.Config{URL: cfg.JobQueueConnection, NoMigrate: !cfg.AutoMigrate, Logger: log},
			NoNotify: !cfg.PostgresNotify,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.JobQueueConnectionVar, err)
		}
		return b, nil
	case "redis":
		b, err := redis.Open(ctx, redis.Config{URL: cfg.JobQueueConnection, Prefix: cfg.RedisPrefix, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.JobQueueConnectionVar, err)
		}
		return b, nil
	case "sqs":
		// Credentials come by the SDK's default chain (environment, shared
		// files, the instance's or task's role) and are never logged.
		b, err := sqsstore.Open(ctx, sqsstore.Config{Region: cfg.SQSRegion, Endpoint: cfg.SQSEndpoint, Prefix: cfg.SQSQueuePrefix,
			PollInterval: cfg.SQSPollInterval, DeadLetterRetention: cfg.RetentionFailed, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("JOBQUEUE_BACKEND=sqs (SQS_REGION, SQS_ENDPOINT, AWS credentials): %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("JOBQUEUE_BACKEND=%s is not available in this build", cfg.JobQueueBackend)
}
