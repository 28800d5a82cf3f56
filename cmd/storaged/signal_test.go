package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/testutil"
)

// TestSIGTERM: the real binary finishes a request in flight (a long poll
// is answered at once), exits 0 and removes its socket.
func TestSIGTERM(t *testing.T) {
	d := testutil.StartDaemon(t)
	res, err := d.Client.Post("http://storaged/v1/repos/plans", "application/json", strings.NewReader(`{"name":"x"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("create: %v %v", res, err)
	}
	res.Body.Close()
	poll := make(chan *http.Response, 1)
	go func() {
		r, err := d.Client.Post("http://storaged/v1/queues/q/dequeue", "application/json", strings.NewReader(`{"waitMs":30000}`))
		if err != nil {
			t.Error(err)
		}
		poll <- r
	}()
	time.Sleep(200 * time.Millisecond)
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-poll:
		if r != nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode != 204 {
				t.Fatalf("long poll answered %d on shutdown", r.StatusCode)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll held the shutdown")
	}
	if err := d.Wait(10 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after SIGTERM: %v", err)
	}
}
