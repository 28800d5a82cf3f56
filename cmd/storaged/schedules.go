package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	json "github.com/goccy/go-json"
)

const schedulesUsage = `usage: storaged schedules <command> [--socket PATH]

recurring schedules of a running daemon ($STORAGED_SOCKET):
  list <queue>            the queue's schedules, one JSON object a line
  delete <queue> <name>   delete a schedule (its jobs already enqueued stay)
`

// schedulesCmd runs `storaged schedules ...` against a running daemon.
func schedulesCmd(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer) error {
	if len(args) == 0 {
		return errors.New(schedulesUsage) //nolint:staticcheck // ST1005: the usage text is the error, printed as it is
	}
	cmd, args := args[0], args[1:]
	fs, socket := commandFlags("storaged schedules "+cmd, lookup)
	pos, err := parseCommand(fs, socket, args, schedulesUsage)
	if err != nil {
		return err
	}
	do := socketCaller(ctx, *socket)
	switch cmd {
	case "list":
		if len(pos) != 1 {
			return fmt.Errorf("storaged schedules list takes one queue\n%s", schedulesUsage)
		}
		b, err := do("GET", "/v1/queues/"+url.PathEscape(pos[0])+"/schedules", nil)
		if err != nil {
			return err
		}
		var list []json.RawMessage
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		for _, s := range list {
			var line bytes.Buffer
			if err := json.Compact(&line, s); err != nil {
				return err
			}
			fmt.Fprintln(out, line.String())
		}
		return nil
	case "delete":
		if len(pos) != 2 {
			return fmt.Errorf("storaged schedules delete takes a queue and a name\n%s", schedulesUsage)
		}
		if _, err := do("DELETE", "/v1/queues/"+url.PathEscape(pos[0])+"/schedules/"+url.PathEscape(pos[1]), nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "schedule %s of queue %s deleted\n", pos[1], pos[0])
		return nil
	}
	return fmt.Errorf("unknown schedules command %q\n%s", cmd, schedulesUsage)
}
