package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	json "github.com/goccy/go-json"
)

const queuesUsage = `usage: storaged queues <command> <queue> [--socket PATH]

flow control of a queue, through the daemon's socket ($STORAGED_SOCKET):
  pause <queue>                  stop handing out the queue's jobs (enqueues go on)
  resume <queue>                 hand them out again
  settings <queue>               show the queue's settings (JSON)
  settings <queue> --set JSON    replace them, e.g. --set '{"concurrency":4,"rateLimit":{"max":100,"durationMs":60000}}'
                                 (what JSON leaves out is "no limit" and not paused)
`

// queuesCmd runs `storaged queues ...` against a running daemon.
func queuesCmd(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer) error {
	if len(args) == 0 {
		return errors.New(queuesUsage) //nolint:staticcheck // ST1005: the usage text is the error, printed as it is
	}
	cmd, args := args[0], args[1:]
	fs, socket := commandFlags("storaged queues "+cmd, lookup)
	set := fs.String("set", "", "settings to put (JSON)")
	pos, err := parseCommand(fs, socket, args, queuesUsage)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("storaged queues %s takes one queue\n%s", cmd, queuesUsage)
	}
	if *set != "" && cmd != "settings" {
		return fmt.Errorf("--set goes with settings\n%s", queuesUsage)
	}
	do := socketCaller(ctx, *socket)
	path := "/v1/queues/" + url.PathEscape(pos[0])
	switch cmd {
	case "pause", "resume":
		if _, err := do("POST", path+"/"+cmd, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "queue %s %sd\n", pos[0], cmd)
		return nil
	case "settings":
		method, body := "GET", []byte(nil)
		if *set != "" {
			method, body = "PUT", []byte(*set)
		}
		b, err := do(method, path+"/settings", body)
		if err != nil {
			return err
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, b, "", "  "); err != nil {
			return err
		}
		fmt.Fprintln(out, pretty.String())
		return nil
	}
	return fmt.Errorf("unknown queues command %q\n%s", cmd, queuesUsage)
}

// socketCaller returns a function that sends one request to the daemon on
// socket and returns the answer's body, or the daemon's error as code:
// message.
// commandFlags is the flag set of `storaged <group> <cmd>`, with the
// --socket every such command takes.
func commandFlags(name string, lookup func(string) (string, bool)) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, fs.String("socket", envOr(lookup, "STORAGED_SOCKET", ""), "the daemon's socket ($STORAGED_SOCKET)")
}

// parseCommand parses flags wherever they stand among the positional
// arguments, and returns those; an empty --socket becomes the systemd
// unit's path.
func parseCommand(fs *flag.FlagSet, socket *string, args []string, usage string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, usage)
		}
		args = fs.Args()
		if len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	if *socket == "" {
		*socket = "/run/storaged/storaged.sock"
	}
	return pos, nil
}

func socketCaller(ctx context.Context, socket string) func(method, path string, body []byte) ([]byte, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	return func(method, path string, body []byte) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, "http://storaged"+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("STORAGED_SOCKET: no daemon answers on %s: %w", socket, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			var e struct {
				Error struct{ Code, Message string }
			}
			if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
				return nil, fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
			}
			return nil, fmt.Errorf("storaged answered %d", res.StatusCode)
		}
		return b, nil
	}
}
