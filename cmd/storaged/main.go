// Command storaged is the storage sidecar: records and jobs for Node apps
// over HTTP on a Unix socket. See README.md and docs/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv)
	stop()
	os.Exit(code)
}

// run dispatches the subcommand; it returns the process exit code.
func run(ctx context.Context, args []string, lookup func(string) (string, bool)) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, lookup)
	case "migrate":
		if err := migrateCmd(ctx, args, lookup, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "storaged:", err)
			return 1
		}
		return 0
	case "jobs":
		if err := jobsCmd(ctx, args, lookup, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "storaged:", err)
			return 1
		}
		return 0
	case "queues":
		if err := queuesCmd(ctx, args, lookup, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "storaged:", err)
			return 1
		}
		return 0
	case "schedules":
		if err := schedulesCmd(ctx, args, lookup, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "storaged:", err)
			return 1
		}
		return 0
	case "version":
		writeVersion(os.Stdout)
		return 0
	case "help":
		usage()
		return 0
	}
	fmt.Fprintf(os.Stderr, "storaged: unknown command %q\n", cmd)
	usage()
	return 2
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: storaged [command] [flags]

commands:
  serve     serve the API on the Unix socket (the default)
  migrate   apply (up, the default) or list (status) the database migrations
  jobs      dead letters of a running daemon: failed, inspect, retry, purge
  queues    flow control of a running daemon's queues: pause, resume, settings
  schedules recurring schedules of a running daemon: list, delete
  version   print the version, the commit and the Go version it was built with

Run "storaged serve -h" for the flags; each mirrors an environment variable.
`)
}

func serve(ctx context.Context, args []string, lookup func(string) (string, bool)) int {
	// SIGHUP is a service's "reload" (nginx, PostgreSQL), not a reason to
	// die mid-request: storaged reads its configuration once and logs to
	// stderr, so there is nothing to reload or reopen; it says so and goes
	// on serving. Registered first, so that no SIGHUP finds the default
	// action (exit) in place.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := LoadConfig(args, lookup)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		return 2
	}
	if cfg.StdinLifeline {
		// The parent holds the other end of our stdin; when it dies, even
		// by SIGKILL, the pipe closes and we shut down: no orphans.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	m := NewMain(cfg)
	cfg.applyMemoryLimit(lookup, m.log)
	applyGCPercent(lookup, m.log)
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		m.Close()
		return 1
	}
serving:
	for {
		select {
		case <-hup:
			m.log.Warn("SIGHUP: nothing to reload (the configuration is read at start, logs go to stderr); still serving. Restart storaged to apply a new configuration.")
		case err := <-m.Failed():
			// Exit non-zero so that the service manager restarts us.
			m.log.Error("serving stopped; shutting down", "err", err)
			m.Close()
			fmt.Fprintln(os.Stderr, "storaged:", err)
			return 1
		case <-ctx.Done():
			break serving
		}
	}
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		return 1
	}
	return 0
}
