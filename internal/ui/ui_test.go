package ui_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/handlers"
	"github.com/storaged/storaged/internal/ui"
)

const token = "0123456789abcdef0123"

// dashboard serves ui.Handler over the real API on memory backends, and
// returns a client for it and the API handler itself (the socket's view,
// to check what a refused call left unchanged).
func dashboard(t *testing.T, o ui.Options) (func(method, path, body string, hdr ...string) (int, http.Header, string), fasthttp.RequestHandler) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := handlers.New(handlers.Config{Repository: memory.NewRepositoryBackend(), Jobs: queue.New(queue.Config{Store: memory.NewJobStore()}), Logger: log})
	t.Cleanup(api.Close)
	o.API = api.Handler()
	ln := fasthttputil.NewInmemoryListener()
	srv := handlers.NewFastHTTP(ui.Handler(o), handlers.Limits{}, log)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	c := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}}
	do := func(method, path, body string, hdr ...string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://127.0.0.1:8080"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			if hdr[i] == "Host" {
				req.Host = hdr[i+1]
				continue
			}
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	return do, api.Handler()
}

// socketCall runs one request on the API handler directly, as a client of
// the Unix socket would.
func socketCall(t *testing.T, api fasthttp.RequestHandler, method, path, body string) string {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	ctx.Request.SetBodyString(body)
	api(&ctx)
	if ctx.Response.StatusCode() >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, ctx.Response.StatusCode(), ctx.Response.Body())
	}
	return string(ctx.Response.Body())
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not an error body: %q", body)
	}
	return e.Error.Code
}

func TestAssetsAndHeaders(t *testing.T) {
	do, _ := dashboard(t, ui.Options{Token: token})
	cases := []struct {
		path, contentType, contains string
		status                      int
	}{
		{"/", "text/html", `<script type="module" src="./app.js">`, 200},
		{"/index.html", "text/html", "storaged dashboard", 200},
		{"/app.js", "javascript", "./vendor/preact.js", 200},
		{"/vendor/preact-hooks.js", "javascript", `from"./preact.js"`, 200},
		{"/style.css", "text/css", ":root", 200},
		{"/vendor/LICENSE-preact", "", "MIT", 200},
		{"/../ui.go", "application/json", "not_found", 404},
		{"/nope.js", "application/json", "not_found", 404},
	}
	for _, c := range cases {
		status, h, body := do("GET", c.path, "")
		if status != c.status || !strings.Contains(h.Get("Content-Type"), c.contentType) || !strings.Contains(body, c.contains) {
			t.Errorf("GET %s: %d %q %.80q", c.path, status, h.Get("Content-Type"), body)
		}
		// Every answer, asset or error, forbids loading from elsewhere.
		if h.Get("Content-Security-Policy") != ui.CSP || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", c.path, h)
		}
	}
	if !strings.Contains(ui.CSP, "default-src 'none'") || !strings.Contains(ui.CSP, "script-src 'self'") || strings.Contains(ui.CSP, "unsafe") {
		t.Errorf("CSP allows more than the dashboard's own files: %s", ui.CSP)
	}
	// No asset names a host: everything is loaded from the listener itself.
	for _, p := range []string{"/", "/app.js", "/api.js", "/style.css"} {
		if _, _, body := do("GET", p, ""); strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s refers to another host", p)
		}
	}
	if status, _, _ := do("POST", "/", ""); status != 405 {
		t.Errorf("POST /: %d", status)
	}
}

func TestTokenRequired(t *testing.T) {
	do, _ := dashboard(t, ui.Options{Token: token})
	cases := []struct {
		name   string
		hdr    []string
		status int
		code   string
	}{
		{"no token", []string{"Storaged-UI", "1"}, 401, "unauthenticated"},
		{"wrong token", []string{"Storaged-UI", "1", "Authorization", "Bearer " + strings.Repeat("x", len(token))}, 401, "unauthenticated"},
		{"token as basic", []string{"Storaged-UI", "1", "Authorization", "Basic " + token}, 401, "unauthenticated"},
		{"token prefix", []string{"Storaged-UI", "1", "Authorization", "Bearer " + token[:10]}, 401, "unauthenticated"},
		{"no UI header", []string{"Authorization", "Bearer " + token}, 403, "forbidden"},
		{"right token", []string{"Storaged-UI", "1", "Authorization", "Bearer " + token}, 200, ""},
		// With a token any Host is served: the token is the guard.
		{"right token, other host", []string{"Storaged-UI", "1", "Authorization", "Bearer " + token, "Host", "dash.example:8080"}, 200, ""},
	}
	for _, c := range cases {
		status, h, body := do("GET", "/v1/queues", "", c.hdr...)
		if status != c.status || (c.code != "" && errorCode(t, body) != c.code) {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
		if status == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
}

func TestLoopbackOnlyWithoutToken(t *testing.T) {
	do, _ := dashboard(t, ui.Options{})
	cases := []struct {
		host   string
		status int
	}{
		{"127.0.0.1:8080", 200},
		{"localhost:8080", 200},
		{"[::1]:8080", 200},
		{"127.0.0.2", 200},
		// A page of another site whose name was rebound to 127.0.0.1.
		{"evil.example:8080", 403},
		{"10.0.0.1:8080", 403},
	}
	for _, c := range cases {
		for _, path := range []string{"/", "/v1/queues"} {
			status, _, body := do("GET", path, "", "Storaged-UI", "1", "Host", c.host)
			if status != c.status {
				t.Errorf("Host %s, %s: %d %s", c.host, path, status, body)
			}
		}
	}
}

func TestReadOnlyRefusesEveryAction(t *testing.T) {
	do, api := dashboard(t, ui.Options{ReadOnly: true})
	var job struct{ ID string }
	if err := json.Unmarshal([]byte(socketCall(t, api, "POST", "/v1/queues/mail/jobs", `{"data":{"n":1}}`)), &job); err != nil {
		t.Fatal(err)
	}
	before := socketCall(t, api, "GET", "/v1/jobs/"+job.ID, "")
	ui1 := []string{"Storaged-UI", "1"}
	writes := []struct{ method, path, body string }{
		{"POST", "/v1/queues/mail/pause", ""},
		{"POST", "/v1/queues/mail/resume", ""},
		{"POST", "/v1/queues/mail/jobs/cancel", `{"ids":["` + job.ID + `"]}`},
		{"POST", "/v1/queues/mail/jobs/delete", `{"status":["pending"]}`},
		{"POST", "/v1/queues/mail/jobs/retry", `{"status":["failed"]}`},
		{"POST", "/v1/jobs/" + job.ID + "/cancel", ""},
		{"POST", "/v1/jobs/" + job.ID + "/retry", ""},
		{"PATCH", "/v1/jobs/" + job.ID, `{"priority":5}`},
	}
	for _, w := range writes {
		status, h, body := do(w.method, w.path, w.body, ui1...)
		if status != 403 || errorCode(t, body) != "forbidden" || !strings.Contains(body, "read-only") || h.Get(ui.ModeHeader) != "read-only" {
			t.Errorf("%s %s: %d %s", w.method, w.path, status, body)
		}
	}
	if after := socketCall(t, api, "GET", "/v1/jobs/"+job.ID, ""); after != before {
		t.Errorf("a refused action changed the job:\n%s\n%s", before, after)
	}
	if stats := socketCall(t, api, "GET", "/v1/queues/mail/stats", ""); !strings.Contains(stats, `"paused":false`) {
		t.Errorf("a refused pause paused the queue: %s", stats)
	}
	// Reads, POST .../find included, still work.
	reads := []struct{ method, path, body, want string }{
		{"GET", "/v1/queues", "", `"queue":"mail"`},
		{"POST", "/v1/queues/mail/jobs/find", `{"status":["pending"]}`, job.ID},
		{"GET", "/v1/jobs/" + job.ID, "", job.ID},
		{"GET", "/v1/repos", "", "["},
		{"GET", "/v1/info", "", "jobCapabilities"},
	}
	for _, r := range reads {
		status, _, body := do(r.method, r.path, r.body, ui1...)
		if status != 200 || !strings.Contains(body, r.want) {
			t.Errorf("%s %s: %d %s", r.method, r.path, status, body)
		}
	}
}

func TestActionsWhenWritable(t *testing.T) {
	do, api := dashboard(t, ui.Options{})
	socketCall(t, api, "POST", "/v1/queues/mail/jobs", `{"data":{}}`)
	ui1 := []string{"Storaged-UI", "1"}
	if status, h, body := do("POST", "/v1/queues/mail/pause", "", ui1...); status != 204 || h.Get(ui.ModeHeader) != "" {
		t.Fatalf("pause: %d %s", status, body)
	}
	if stats := socketCall(t, api, "GET", "/v1/queues/mail/stats", ""); !strings.Contains(stats, `"paused":true`) {
		t.Errorf("pause through the dashboard did not pause: %s", stats)
	}
	if status, _, body := do("POST", "/v1/queues/mail/jobs/cancel", `{"status":["pending"]}`, ui1...); status != 200 || !strings.Contains(body, `"affected":1`) {
		t.Errorf("bulk cancel: %d %s", status, body)
	}
}

// Only the routes the pages call are served; the rest of the API stays on
// the socket.
func TestOnlyTheDashboardsRoutes(t *testing.T) {
	do, _ := dashboard(t, ui.Options{})
	ui1 := []string{"Storaged-UI", "1"}
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/queues/mail/jobs"},
		{"POST", "/v1/queues/mail/dequeue"},
		{"POST", "/v1/jobs/x/ack"},
		{"POST", "/v1/tx"},
		{"POST", "/v1/repos/users"},
		{"DELETE", "/v1/repos/users/x"},
		{"DELETE", "/v1/queues/mail/failed"},
		{"PUT", "/v1/queues/mail/settings"},
		{"GET", "/metrics"},
		{"GET", "/debug/pprof/heap"},
		{"GET", "/v1/queues/a/b/stats"},
	} {
		status, _, body := do(c.method, c.path, "{}", ui1...)
		if status == 200 || (strings.HasPrefix(c.path, "/v1/") && errorCode(t, body) != "not_found") {
			t.Errorf("%s %s: %d %s", c.method, c.path, status, body)
		}
	}
}

func TestCheckListen(t *testing.T) {
	cases := []struct {
		addr  string
		token bool
		ok    bool
	}{
		{"127.0.0.1:8080", false, true},
		{"localhost:8080", false, true},
		{"[::1]:0", false, true},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"192.168.1.5:8080", false, false},
		{"dash.internal:8080", false, false},
		{"0.0.0.0:8080", true, true},
		{":8080", true, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1:", true, false},
	}
	for _, c := range cases {
		if err := ui.CheckListen(c.addr, c.token); (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, token %v): %v", c.addr, c.token, err)
		}
	}
}
