package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/testutil"
	"github.com/storaged/storaged/internal/ui"
)

// The daemon serves the dashboard on STORAGED_UI_LISTEN beside its socket,
// with the token asked for and the pages' headers.
func TestDashboardListener(t *testing.T) {
	const token = "daemon-test-token-0123"
	port := testutil.FreePort(t)
	d := testutil.StartDaemon(t, fmt.Sprintf("STORAGED_UI_LISTEN=127.0.0.1:%d", port), "STORAGED_UI_TOKEN="+token)
	res, err := d.Client.Post("http://storaged/v1/queues/mail/jobs", "application/json", strings.NewReader(`{"data":{}}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("enqueue on the socket: %v %v", res, err)
	}
	res.Body.Close()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string, hdr ...string) (int, http.Header, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	if status, h, body := get("/"); status != 200 || h.Get("Content-Security-Policy") != ui.CSP || !strings.Contains(body, "app.js") {
		t.Errorf("GET /: %d %v", status, h)
	}
	if status, _, _ := get("/v1/queues", "Storaged-UI", "1"); status != 401 {
		t.Errorf("without the token: %d", status)
	}
	if status, _, body := get("/v1/queues", "Storaged-UI", "1", "Authorization", "Bearer "+token); status != 200 || !strings.Contains(body, `"queue":"mail"`) {
		t.Errorf("with the token: %d %s", status, body)
	}
	// The socket is unchanged: no token there, the whole API.
	res, err = d.Client.Get("http://storaged/metrics")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("socket /metrics: %v %v", res, err)
	}
	res.Body.Close()
	if status, _, _ := get("/metrics", "Storaged-UI", "1", "Authorization", "Bearer "+token); status != 404 {
		t.Errorf("dashboard /metrics: %d", status)
	}
}
