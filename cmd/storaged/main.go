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
	code := run(ctx, os.Args[1:], os.Getenv)
	stop()
	os.Exit(code)
}

// run dispatches the subcommand; it returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv)
	case "migrate":
		if err := migrateCmd(ctx, args, getenv, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "storaged:", err)
			return 1
		}
		return 0
	case "jobs":
		if err := jobsCmd(ctx, args, getenv, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "storaged:", err)
			return 1
		}
		return 0
	case "version":
		fmt.Println("storaged", Version)
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
  version   print the version

Run "storaged serve -h" for the flags; each mirrors an environment variable.
`)
}

func serve(ctx context.Context, args []string, getenv func(string) string) int {
	cfg, err := LoadConfig(args, getenv)
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
	cfg.applyMemoryLimit(getenv, m.log)
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		m.Close()
		return 1
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		return 1
	}
	return 0
}
