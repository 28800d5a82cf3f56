package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
)

const jobsUsage = `usage: storaged jobs <command> [--socket PATH]

job tooling, through the daemon's socket ($STORAGED_SOCKET):
  failed <queue> [--limit N] [--offset N]   list the queue's failed jobs, newest first (JSON lines)
  inspect <job-id>                          show one job (JSON)
  retry <job-id>                            move a failed or cancelled job back to pending
  purge <queue>                             delete the queue's failed jobs
  find <queue> [--status S,S] [--key K] [--filter JSON] [--sort createdAt|runAt|finishedAt]
       [--order asc|desc] [--limit N] [--after CURSOR]
                                            a page of the queue's jobs (JSON lines); the next
                                            page's cursor goes to stderr
  retry|cancel|delete <queue> --ids ID,ID | --status S,S [--key K] [--filter JSON]
                                            retry (failed, cancelled), cancel (pending,
                                            processing) or delete (all but processing) jobs in
                                            bulk; prints how many
`

// jobsCmd runs `storaged jobs ...` against a running daemon.
func jobsCmd(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer) error {
	if len(args) == 0 {
		return errors.New(jobsUsage) //nolint:staticcheck // ST1005: the usage text is the error, printed as it is
	}
	cmd, args := args[0], args[1:]
	fs, socket := commandFlags("storaged jobs "+cmd, lookup)
	limit := fs.Int("limit", 100, "jobs per page")
	offset := fs.Int("offset", 0, "jobs to skip")
	status := fs.String("status", "", "statuses, comma-separated")
	key := fs.String("key", "", "dedupe key")
	filter := fs.String("filter", "", "filter on the job's data (JSON, the records' filter language)")
	sortBy := fs.String("sort", "", "createdAt, runAt or finishedAt")
	order := fs.String("order", "", "asc or desc")
	after := fs.String("after", "", "the cursor of the page to read")
	idList := fs.String("ids", "", "job ids, comma-separated")
	pos, err := parseCommand(fs, socket, args, jobsUsage)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("storaged jobs %s takes one argument\n%s", cmd, jobsUsage)
	}
	arg := url.PathEscape(pos[0])
	errOut := io.Writer(os.Stderr)
	call := socketCaller(ctx, *socket)
	do := func(method, path string, body ...any) ([]byte, error) {
		var b []byte
		if len(body) > 0 {
			var err error
			if b, err = json.Marshal(body[0]); err != nil {
				return nil, err
			}
		}
		return call(method, path, b)
	}
	// selection is what find and the bulk calls send.
	selection := func() (map[string]any, error) {
		sel := map[string]any{}
		if *status != "" {
			sel["status"] = strings.Split(*status, ",")
		}
		if *key != "" {
			sel["key"] = *key
		}
		if *filter != "" {
			var f json.RawMessage
			if err := json.Unmarshal([]byte(*filter), &f); err != nil {
				return nil, fmt.Errorf("--filter is not JSON: %w", err)
			}
			sel["filter"] = f
		}
		return sel, nil
	}
	bulk := *idList != "" || *status != ""
	switch {
	case cmd == "find":
		sel, err := selection()
		if err != nil {
			return err
		}
		sel["limit"] = *limit
		for k, v := range map[string]string{"sort": *sortBy, "order": *order, "after": *after} {
			if v != "" {
				sel[k] = v
			}
		}
		b, err := do("POST", "/v1/queues/"+arg+"/jobs/find", sel)
		if err != nil {
			return err
		}
		var page struct {
			Jobs []json.RawMessage
			Next *string
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return err
		}
		for _, j := range page.Jobs {
			var line bytes.Buffer
			if err := json.Compact(&line, j); err != nil {
				return err
			}
			fmt.Fprintln(out, line.String())
		}
		if page.Next != nil {
			fmt.Fprintf(errOut, "next page: --after %s\n", *page.Next)
		}
		return nil
	case bulk && (cmd == "retry" || cmd == "cancel" || cmd == "delete"):
		var sel map[string]any
		if *idList != "" {
			if *status != "" || *key != "" || *filter != "" {
				return fmt.Errorf("give --ids, or --status with --key and --filter, not both\n%s", jobsUsage)
			}
			sel = map[string]any{"ids": strings.Split(*idList, ",")}
		} else if sel, err = selection(); err != nil {
			return err
		}
		total := 0
		for {
			b, err := do("POST", "/v1/queues/"+arg+"/jobs/"+cmd, sel)
			if err != nil {
				return err
			}
			var r struct {
				Affected int
				More     bool
			}
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			total += r.Affected
			if !r.More {
				break
			}
		}
		fmt.Fprintf(out, "%s: %d job(s) of %s\n", map[string]string{"retry": "retried", "cancel": "cancelled", "delete": "deleted"}[cmd], total, pos[0])
		return nil
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
