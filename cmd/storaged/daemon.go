package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
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
	"github.com/storaged/storaged/internal/backend/redis"
	"github.com/storaged/storaged/internal/backend/sqlite"
	"github.com/storaged/storaged/internal/handlers"
)

// Main is the running daemon: Run opens the backends and starts serving,
// Close shuts down in order (stop accepting, drain, close backends, remove
// the socket).
type Main struct {
	cfg  Config
	log  *slog.Logger
	repo backend.RepositoryBackend
	jobs backend.JobQueueBackend
	api  *handlers.Server
	http *fasthttp.Server
	ln   net.Listener

	ownsSocket bool // false under socket activation: systemd owns the path
	traces     *sdktrace.TracerProvider
	stop       context.CancelFunc
	wg         sync.WaitGroup
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
	if m.jobs, err = openJobQueue(ctx, m.cfg, m.log); err != nil {
		return err
	}
	metrics := handlers.NewMetrics()
	tracer, err := m.tracing(ctx)
	if err != nil {
		return err
	}
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
	if m.ln, err = m.listen(); err != nil {
		return err
	}
	m.http = handlers.NewFastHTTP(m.api.Handler(), m.cfg.MaxBodyBytes, m.log)
	ln := m.ln
	if len(m.cfg.AllowedUIDs) > 0 || len(m.cfg.AllowedGIDs) > 0 {
		ln = &peerCredListener{Listener: ln, uids: m.cfg.AllowedUIDs, gids: m.cfg.AllowedGIDs, log: m.log}
	}
	go func() { m.serveErr <- m.http.Serve(ln) }()

	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	m.stop = stop
	m.wg.Add(1)
	go m.pruneLoop(bg)
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

// tracing exports spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT
// (or its traces variant) is set; the exporter reads the standard OTEL_*
// variables itself.
func (m *Main) tracing(ctx context.Context) (trace.Tracer, error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %v", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "storaged"), attribute.String("service.version", Version))
	m.traces = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	m.log.Info("exporting traces over OTLP")
	return m.traces.Tracer("storaged"), nil
}

// listen takes a socket from systemd (LISTEN_FDS) or creates one,
// replacing a stale socket file but never any other kind of file.
func (m *Main) listen() (net.Listener, error) {
	if lns, err := activation.Listeners(); err == nil && len(lns) > 0 {
		if len(lns) != 1 || lns[0] == nil {
			return nil, fmt.Errorf("socket activation passed %d sockets; storaged takes exactly one stream socket", len(lns))
		}
		m.log.Info("using the socket passed by systemd")
		return lns[0], nil
	}
	path := m.cfg.Socket
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("STORAGED_SOCKET: %s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("STORAGED_SOCKET: another daemon is serving on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("STORAGED_SOCKET: removing stale socket %s: %v", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("STORAGED_SOCKET: %v", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("STORAGED_SOCKET: %v", err)
	}
	// We remove the file ourselves on Close, after draining.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	m.ownsSocket = true
	if err := os.Chmod(path, m.cfg.SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("STORAGED_SOCKET_MODE: %v", err)
	}
	if m.cfg.SocketGroup >= 0 {
		if err := os.Chown(path, -1, m.cfg.SocketGroup); err != nil {
			ln.Close()
			return nil, fmt.Errorf("STORAGED_SOCKET_GROUP: %v", err)
		}
	}
	return ln, nil
}

// watchdogLoop tells systemd the daemon is alive while its backends
// answer; if they stop answering, systemd's watchdog restarts it.
func (m *Main) watchdogLoop(ctx context.Context, every time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c, cancel := context.WithTimeout(ctx, every)
			err := errors.Join(m.repo.Ping(c), m.jobs.Ping(c))
			cancel()
			if err == nil {
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			} else {
				m.log.Warn("backends not answering; withholding the watchdog ping", "err", err)
			}
		}
	}
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

// Close stops accepting, lets requests in flight finish (bounded by
// STORAGED_SHUTDOWN_TIMEOUT), rolls back open transactions, closes the
// backends and removes the socket it created. Jobs claimed by workers
// stay claimed; their leases expire and they are delivered again.
func (m *Main) Close() error {
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	var errs []error
	if m.stop != nil {
		m.stop()
	}
	if m.http != nil {
		done := make(chan error, 1)
		// Long polls would hold the drain for up to their wait; they are
		// answered (204) at once instead.
		m.api.StopPolls()
		go func() { done <- m.http.Shutdown() }()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, err)
			}
		case <-time.After(m.cfg.ShutdownTimeout):
			m.log.Warn("requests still in flight after the shutdown timeout; closing anyway")
		}
	} else if m.ln != nil {
		m.ln.Close()
	}
	m.wg.Wait()
	if m.api != nil {
		m.api.Close()
	}
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

func openSQLite(ctx context.Context, cfg Config, path, env string, log *slog.Logger) (*sqlite.DB, error) {
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("%s: %v", env, err)
		}
	}
	db, err := sqlite.Open(ctx, sqlite.Config{Path: path, Synchronous: cfg.SQLiteSynchronous, NoMigrate: !cfg.AutoMigrate, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %v", env, path, err)
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
		return nil, fmt.Errorf("REPOSITORY_CACHE_SIZE: %v", err)
	}
	return c, nil
}

func openRepositoryBackend(ctx context.Context, cfg Config, log *slog.Logger) (backend.RepositoryBackend, error) {
	switch cfg.RepositoryBackend {
	case "memory":
		return memory.NewRepositoryBackend(), nil
	case "sqlite":
		db, err := openSQLite(ctx, cfg, cfg.RepositoryConnection, "REPOSITORY_CONNECTION_STRING", log)
		if err != nil {
			return nil, err
		}
		return sqlite.NewRepositoryBackend(db), nil
	case "postgres":
		b, err := postgres.OpenRepository(ctx, postgres.Config{URL: cfg.RepositoryConnection, NoMigrate: !cfg.AutoMigrate, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("REPOSITORY_CONNECTION_STRING: %v", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("REPOSITORY_BACKEND=%s is not available in this build", cfg.RepositoryBackend)
}

func openJobQueue(ctx context.Context, cfg Config, log *slog.Logger) (backend.JobQueueBackend, error) {
	switch cfg.JobQueueBackend {
	case "memory":
		return memory.NewJobQueueBackend(), nil
	case "sqlite":
		// Opening the repository's file again shares its one writer.
		db, err := openSQLite(ctx, cfg, cfg.JobQueueConnection, "JOBQUEUE_CONNECTION_STRING", log)
		if err != nil {
			return nil, err
		}
		return sqlite.NewJobQueueBackend(db), nil
	case "postgres":
		b, err := postgres.OpenJobQueue(ctx, postgres.JobQueueConfig{
			Config:   postgres.Config{URL: cfg.JobQueueConnection, NoMigrate: !cfg.AutoMigrate, Logger: log},
			NoNotify: !cfg.PostgresNotify,
		})
		if err != nil {
			return nil, fmt.Errorf("JOBQUEUE_CONNECTION_STRING: %v", err)
		}
		return b, nil
	case "redis":
		b, err := redis.Open(ctx, redis.Config{URL: cfg.JobQueueConnection, Prefix: cfg.RedisPrefix, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("JOBQUEUE_CONNECTION_STRING: %v", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("JOBQUEUE_BACKEND=%s is not available in this build", cfg.JobQueueBackend)
}
