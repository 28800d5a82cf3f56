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
	"strconv"
	"time"

	json "github.com/goccy/go-json"
)

const jobsUsage = `usage: storaged jobs <command> [--socket PATH]

dead-letter tooling, through the daemon's socket ($STORAGED_SOCKET):
  failed <queue> [--limit N] [--offset N]   list the queue's failed jobs, newest first (JSON lines)
  inspect <job-id>                          show one job (JSON)
  retry <job-id>                            move a failed or cancelled job back to pending
  purge <queue>                             delete the queue's failed jobs
`

// jobsCmd runs `storaged jobs ...` against a running daemon.
func jobsCmd(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer) error {
	if len(args) == 0 {
		return errors.New(jobsUsage) //nolint:staticcheck // ST1005: the usage text is the error, printed as it is
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("storaged jobs "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", envOr(lookup, "STORAGED_SOCKET", ""), "the daemon's socket ($STORAGED_SOCKET)")
	limit := fs.Int("limit", 100, "jobs per page")
	offset := fs.Int("offset", 0, "jobs to skip")
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%w\n%s", err, jobsUsage)
		}
		args = fs.Args()
		if len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	if *socket == "" {
		*socket = "/run/storaged/storaged.sock"
	}
	if len(pos) != 1 {
		return fmt.Errorf("storaged jobs %s takes one argument\n%s", cmd, jobsUsage)
	}
	arg := url.PathEscape(pos[0])
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", *socket)
	}}}
	do := func(method, path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, "http://storaged"+path, nil)
		if err != nil {
			return nil, err
		}
		res, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("STORAGED_SOCKET: no daemon answers on %s: %w", *socket, err)
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
	switch cmd {
	case "failed":
		b, err := do("GET", "/v1/queues/"+arg+"/failed?limit="+strconv.Itoa(*limit)+"&offset="+strconv.Itoa(*offset))
		if err != nil {
			return err
		}
		var jobs []json.RawMessage
		if err := json.Unmarshal(b, &jobs); err != nil {
			return err
		}
		for _, j := range jobs {
			var line bytes.Buffer
			if err := json.Compact(&line, j); err != nil {
				return err
			}
			fmt.Fprintln(out, line.String())
		}
		return nil
	case "inspect":
		b, err := do("GET", "/v1/jobs/"+arg)
		if err != nil {
			return err
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, b, "", "  "); err != nil {
			return err
		}
		fmt.Fprintln(out, pretty.String())
		return nil
	case "retry":
		if _, err := do("POST", "/v1/jobs/"+arg+"/retry"); err != nil {
			return err
		}
		fmt.Fprintf(out, "job %s is pending again\n", pos[0])
		return nil
	case "purge":
		b, err := do("DELETE", "/v1/queues/"+arg+"/failed")
		if err != nil {
			return err
		}
		var r struct{ Purged int }
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("purge: the daemon's answer is not JSON: %w", err)
		}
		fmt.Fprintf(out, "purged %d failed job(s) from %s\n", r.Purged, pos[0])
		return nil
	}
	return fmt.Errorf("unknown jobs command %q\n%s", cmd, jobsUsage)
}
