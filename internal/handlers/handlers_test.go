package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/handlers"
)

type daemon struct {
	sock   string
	client *http.Client
	repo   *memory.RepositoryBackend
}

// start serves the API with memory backends on a real Unix socket.
func start(t *testing.T, txIdle time.Duration) *daemon {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := handlers.NewMetrics()
	repo, jobs := memory.NewRepositoryBackend(), queue.New(queue.Config{Store: memory.NewJobStore(), Observer: metrics.QueueObserver()})
	api := handlers.New(handlers.Config{Repository: repo, Jobs: jobs, Logger: log, TxIdleTimeout: txIdle, Metrics: metrics,
		Info: handlers.Info{Version: "test", RepositoryBackend: "memory", JobQueueBackend: "memory"}})
	api.RegisterMetrics(metrics)
	srv := handlers.NewFastHTTP(api.Handler(), handlers.Limits{MaxBodyBytes: 1 << 20}, log)
	go func() { _ = srv.Serve(ln) }() // it returns when Shutdown closes ln
	t.Cleanup(func() {
		api.StopPolls()
		_ = srv.Shutdown() // its error would be a listener already closed
		api.Close()
	})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	return &daemon{sock: sock, client: &http.Client{Transport: tr}, repo: repo}
}

type resp struct {
	status int
	body   []byte
}

func (d *daemon) do(t *testing.T, method, path, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, "http://storaged"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, b}
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (r resp) want(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// wantError checks the DESIGN error body.
func (r resp) wantError(t *testing.T, status int, code backend.Code) {
	t.Helper()
	r.want(t, status)
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error.Code != string(code) || body.Error.Message == "" {
		t.Fatalf("error body %q, want code %s", r.body, code)
	}
}

func TestRepositoryFlow(t *testing.T) {
	d := start(t, 0)
	created := d.do(t, "POST", "/v1/repos/plans", `{"name":"Test Plan","steps":[1,2],"n":3}`).want(t, 201).json(t)
	id := created["id"].(string)
	d.do(t, "POST", "/v1/repos/plans", `{"name":"Other","n":5}`).want(t, 201)
	got := d.do(t, "GET", "/v1/repos/plans/"+id, "").want(t, 200).json(t)
	if got["name"] != "Test Plan" {
		t.Fatalf("findById %v", got)
	}
	var list []map[string]any
	r := d.do(t, "POST", "/v1/repos/plans/find", `{"filter":{"n":{"$gte":4}},"sort":{"name":"asc"},"limit":10}`).want(t, 200)
	if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 1 || list[0]["name"] != "Other" {
		t.Fatalf("find: %s", r.body)
	}
	if c := d.do(t, "POST", "/v1/repos/plans/count", `{"filter":{"n":{"$lt":10}}}`).want(t, 200).json(t); c["count"] != 2.0 {
		t.Fatalf("count %v", c)
	}
	if c := d.do(t, "POST", "/v1/repos/plans/count", ``).want(t, 200).json(t); c["count"] != 2.0 {
		t.Fatalf("count without body %v", c)
	}
	upd := d.do(t, "PATCH", "/v1/repos/plans/"+id, `{"name":"Renamed"}`).want(t, 200).json(t)
	if upd["name"] != "Renamed" || upd["n"] != 3.0 {
		t.Fatalf("update %v", upd)
	}
	d.do(t, "PUT", "/v1/repos/plans/indexes/by_name", `{"fields":["name"],"unique":true}`).want(t, 204)
	d.do(t, "POST", "/v1/repos/plans", `{"name":"Renamed"}`).wantError(t, 409, backend.CodeConflict)
	d.do(t, "DELETE", "/v1/repos/plans/"+id, "").want(t, 204)
	d.do(t, "DELETE", "/v1/repos/plans/"+id, "").want(t, 204)
	d.do(t, "GET", "/v1/repos/plans/"+id, "").wantError(t, 404, backend.CodeNotFound)
	d.do(t, "PATCH", "/v1/repos/plans/"+id, `{"a":1}`).wantError(t, 404, backend.CodeNotFound)
}

func TestEncodedIDs(t *testing.T) {
	d := start(t, 0)
	for _, id := range []string{"a/b", "with space", "100%", "ü?#&"} {
		body := fmt.Sprintf(`{"id":%q}`, id)
		d.do(t, "POST", "/v1/repos/c", body).want(t, 201)
		esc := strings.NewReplacer("%", "%25", "/", "%2F", " ", "%20", "?", "%3F", "#", "%23", "&", "%26").Replace(id)
		got := d.do(t, "GET", "/v1/repos/c/"+esc, "").want(t, 200).json(t)
		if got["id"] != id {
			t.Fatalf("id %q came back as %v", id, got["id"])
		}
	}
}

func TestJobFlow(t *testing.T) {
	d := start(t, 0)
	id := d.do(t, "POST", "/v1/queues/default/jobs", `{"data":{"planId":"p1"},"priority":1,"maxAttempts":2,"backoff":{"type":"fixed","delayMs":0}}`).want(t, 201).json(t)["id"].(string)
	job := d.do(t, "POST", "/v1/queues/default/dequeue", `{"leaseMs":60000}`).want(t, 200).json(t)
	if job["id"] != id || job["lease"] == nil || job["status"] != "processing" {
		t.Fatalf("dequeue %v", job)
	}
	lease := job["lease"].(string)
	d.do(t, "POST", "/v1/queues/default/dequeue", ``).want(t, 204)
	d.do(t, "POST", "/v1/jobs/"+id+"/heartbeat", `{"lease":"`+lease+`","leaseMs":1000}`).want(t, 204)
	d.do(t, "POST", "/v1/jobs/"+id+"/fail", `{"lease":"`+lease+`","error":{"name":"Error","message":"boom","stack":"s"}}`).want(t, 204)
	job = d.do(t, "POST", "/v1/queues/default/dequeue", ``).want(t, 200).json(t)
	d.do(t, "POST", "/v1/jobs/"+id+"/ack", `{"lease":"`+lease+`"}`).wantError(t, 409, backend.CodeConflict)
	d.do(t, "POST", "/v1/jobs/"+id+"/ack", `{}`).wantError(t, 400, backend.CodeInvalidArgument)
	d.do(t, "POST", "/v1/jobs/"+id+"/ack", `{"lease":"`+job["lease"].(string)+`"}`).want(t, 204)
	got := d.do(t, "GET", "/v1/jobs/"+id, "").want(t, 200).json(t)
	if got["status"] != "completed" || got["attempts"] != 2.0 || got["lease"] != nil {
		t.Fatalf("getJob %v", got)
	}
	if le := got["lastError"].(map[string]any); le["message"] != "boom" {
		t.Fatalf("lastError %v", le)
	}
	d.do(t, "GET", "/v1/jobs/nope", "").wantError(t, 404, backend.CodeNotFound)

	ids := d.do(t, "POST", "/v1/queues/batch/jobs/batch", `[{"data":1},{"data":2,"key":"k"},{"data":3,"key":"k"}]`).want(t, 201).json(t)["ids"].([]any)
	if len(ids) != 3 || ids[1] != ids[2] {
		t.Fatalf("batch ids %v", ids)
	}
	d.do(t, "POST", "/v1/jobs/"+ids[0].(string)+"/cancel", "").want(t, 204)
	j := d.do(t, "POST", "/v1/queues/batch/dequeue", ``).want(t, 200).json(t)
	d.do(t, "POST", "/v1/jobs/"+j["id"].(string)+"/fail", `{"lease":"`+j["lease"].(string)+`","retry":false}`).want(t, 204)
	st := d.do(t, "GET", "/v1/queues/batch/stats", "").want(t, 200).json(t)
	if st["failed"] != 1.0 || st["cancelled"] != 1.0 {
		t.Fatalf("stats %v", st)
	}
	var failed []map[string]any
	if err := json.Unmarshal(d.do(t, "GET", "/v1/queues/batch/failed?limit=10", "").want(t, 200).body, &failed); err != nil || len(failed) != 1 {
		t.Fatalf("failed %v %v", failed, err)
	}
	d.do(t, "POST", "/v1/jobs/"+j["id"].(string)+"/retry", "").want(t, 204)
	d.do(t, "POST", "/v1/jobs/"+j["id"].(string)+"/retry", "").wantError(t, 409, backend.CodeConflict)
	j = d.do(t, "POST", "/v1/queues/batch/dequeue", ``).want(t, 200).json(t)
	d.do(t, "POST", "/v1/jobs/"+j["id"].(string)+"/fail", `{"lease":"`+j["lease"].(string)+`","retry":false}`).want(t, 204)
	if p := d.do(t, "DELETE", "/v1/queues/batch/failed", "").want(t, 200).json(t); p["purged"] != 1.0 {
		t.Fatalf("purge %v", p)
	}
	d.do(t, "GET", "/v1/jobs/"+j["id"].(string), "").wantError(t, 404, backend.CodeNotFound)
}

func TestLongPollOverSocket(t *testing.T) {
	d := start(t, 0)
	done := make(chan resp, 1)
	go func() { done <- d.do(t, "POST", "/v1/queues/lp/dequeue", `{"waitMs":30000}`) }()
	time.Sleep(100 * time.Millisecond)
	d.do(t, "POST", "/v1/queues/lp/jobs", `{"data":"x"}`).want(t, 201)
	select {
	case r := <-done:
		if r.status != 200 {
			t.Fatalf("long poll: %d %s", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll not woken by the enqueue")
	}
}

func TestTransactions(t *testing.T) {
	d := start(t, 300*time.Millisecond)
	tx := d.do(t, "POST", "/v1/tx", "").want(t, 201).json(t)["id"].(string)
	d.do(t, "POST", "/v1/repos/acc", `{"id":"a","v":1}`, handlers.TxHeader, tx).want(t, 201)
	d.do(t, "GET", "/v1/repos/acc/a", "", handlers.TxHeader, tx).want(t, 200)
	d.do(t, "POST", "/v1/tx/"+tx+"/commit", "").want(t, 204)
	d.do(t, "GET", "/v1/repos/acc/a", "").want(t, 200)
	d.do(t, "POST", "/v1/tx/"+tx+"/commit", "").wantError(t, 410, backend.CodeTxNotFound)
	d.do(t, "GET", "/v1/repos/acc/a", "", handlers.TxHeader, tx).wantError(t, 410, backend.CodeTxNotFound)

	tx = d.do(t, "POST", "/v1/tx", "").want(t, 201).json(t)["id"].(string)
	d.do(t, "PATCH", "/v1/repos/acc/a", `{"v":2}`, handlers.TxHeader, tx).want(t, 200)
	d.do(t, "DELETE", "/v1/repos/acc/a", ``, handlers.TxHeader, tx).want(t, 204)
	d.do(t, "POST", "/v1/tx/"+tx+"/rollback", "").want(t, 204)
	if v := d.do(t, "GET", "/v1/repos/acc/a", "").want(t, 200).json(t)["v"]; v != 1.0 {
		t.Fatalf("rollback left v=%v", v)
	}

	// An idle transaction is rolled back and its writer freed.
	tx = d.do(t, "POST", "/v1/tx", "").want(t, 201).json(t)["id"].(string)
	d.do(t, "POST", "/v1/repos/acc", `{"id":"idle"}`, handlers.TxHeader, tx).want(t, 201)
	time.Sleep(600 * time.Millisecond)
	d.do(t, "GET", "/v1/repos/acc/idle", "", handlers.TxHeader, tx).wantError(t, 410, backend.CodeTxNotFound)
	d.do(t, "GET", "/v1/repos/acc/idle", "").wantError(t, 404, backend.CodeNotFound)
	d.do(t, "POST", "/v1/repos/acc", `{"id":"after"}`).want(t, 201)
	d.do(t, "GET", "/v1/repos/acc/a", "", handlers.TxHeader, "no-such-tx").wantError(t, 410, backend.CodeTxNotFound)
}

func TestOperations(t *testing.T) {
	d := start(t, 0)
	d.do(t, "GET", "/healthz", "").want(t, 200)
	d.do(t, "GET", "/readyz", "").want(t, 200)
	if info := d.do(t, "GET", "/v1/info", "").want(t, 200).json(t); info["repositoryBackend"] != "memory" || info["version"] != "test" {
		t.Fatalf("info %v", info)
	}
	d.do(t, "GET", "/v1/repos/x/y", "").want(t, 404)
	d.do(t, "POST", "/v1/queues/mq/jobs", `{"data":1}`).want(t, 201)
	d.do(t, "POST", "/v1/queues/mq/jobs", `{"data":2}`).want(t, 201)
	tx := d.do(t, "POST", "/v1/tx", "").want(t, 201).json(t)["id"].(string)
	m := d.do(t, "GET", "/metrics", "").want(t, 200)
	for _, series := range []string{
		`storaged_http_request_duration_seconds_count{route="findById",status="404"} 1`,
		`storaged_backend_operation_duration_seconds_count{op="findById",port="repository"} 1`,
		`storaged_backend_operation_duration_seconds_count{op="enqueue",port="jobqueue"} 2`,
		`storaged_jobs_enqueued_total{queue="mq"} 2`,
		`storaged_queue_jobs{queue="mq",status="pending"} 2`,
		`storaged_open_transactions 1`,
		`go_goroutines`,
	} {
		if !bytes.Contains(m.body, []byte(series)) {
			t.Fatalf("metrics lack %s:\n%.3000s", series, m.body)
		}
	}
	d.do(t, "POST", "/v1/tx/"+tx+"/rollback", "").want(t, 204)
	d.repo.Close()
	d.do(t, "GET", "/readyz", "").wantError(t, 503, backend.CodeUnavailable)
}

// TestReliabilityHostileInput: every malformed or hostile request gets a 4xx with
// the DESIGN error body, and nothing is stored.
func TestReliabilityHostileInput(t *testing.T) {
	d := start(t, 0)
	d.do(t, "POST", "/v1/repos/c", `{"id":"keep","v":1}`).want(t, 201)
	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	cases := []struct {
		method, path, body string
		status             int
		code               backend.Code
	}{
		{"POST", "/v1/repos/c", `{"a":`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c", `[1,2]`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c", `"str"`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c", ``, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c", "{\"a\":\"\xff\xfe\"}", 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c", deep, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c", `{"id":"keep"}`, 409, backend.CodeConflict},
		{"POST", "/v1/repos/c", `{"id":5}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c", `{"a":1} trailing`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/..%2F..%2Fetc", `{}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/a'b", `{}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/a;drop%20table%20x", `{}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/a%00b", `{}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/" + strings.Repeat("x", 129), `{}`, 400, backend.CodeInvalidArgument},
		{"GET", "/v1/repos/c/a%00b", ``, 400, backend.CodeInvalidArgument},
		{"PATCH", "/v1/repos/c/keep", `{"id":"other"}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/find", `{"filter":{"a') OR 1=1 --":1}}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/find", `{"filter":{"v":{"$where":"1"}}}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/find", `{"sort":{"v;drop":"asc"}}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/find", `{"limit":-1}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/find", `{"limit":1e300}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/find", `{"offset":-5}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/find", `{"bogus":1}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/find", `nonsense`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/repos/c/count", `{"filter":[]}`, 400, backend.CodeInvalidArgument},
		{"PUT", "/v1/repos/c/indexes/bad%20name", `{"fields":["a"]}`, 400, backend.CodeInvalidArgument},
		{"PUT", "/v1/repos/c/indexes/ix", `{"fields":["a b"]}`, 400, backend.CodeInvalidArgument},
		{"PUT", "/v1/repos/c/indexes/ix", `{"fields":[]}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"maxAttempts":0}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"maxAttempts":1.5}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"priority":"high"}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"delayMs":-1}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"runAt":"tomorrow"}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"maxAttemps":3}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs", `{"data":1,"backoff":{"type":"linear"}}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs/batch", `[]`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/jobs/batch", `[{"data":1},{"maxAttempts":-1}]`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/dequeue", `{"waitMs":600000}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/dequeue", `{"leaseMs":0}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/q/dequeue", `{"leaseMs":-5}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/queues/bad%20q/dequeue", ``, 400, backend.CodeInvalidArgument},
		{"GET", "/v1/queues/q/failed?limit=-1", ``, 400, backend.CodeInvalidArgument},
		{"GET", "/v1/queues/q/failed?limit=abc", ``, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/jobs/x/ack", `{"lease":"l","extra":1}`, 400, backend.CodeInvalidArgument},
		{"POST", "/v1/jobs/x/ack", `{"lease":"l"}`, 404, backend.CodeNotFound},
		{"POST", "/v1/jobs/x/cancel", `{"force":true}`, 400, backend.CodeInvalidArgument},
		{"DELETE", "/v1/queues/q/failed", `{"all":true}`, 400, backend.CodeInvalidArgument},
		{"DELETE", "/v1/queues/bad%20q/failed", ``, 400, backend.CodeInvalidArgument},
		{"DELETE", "/v1/queues/q", ``, 404, backend.CodeNotFound},
		{"GET", "/nope", ``, 404, backend.CodeNotFound},
		{"BREW", "/v1/repos/c", ``, 404, backend.CodeNotFound},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			d.do(t, c.method, c.path, c.body).wantError(t, c.status, c.code)
		})
	}
	if n := d.do(t, "POST", "/v1/repos/c/count", `{}`).json(t)["count"]; n != 1.0 {
		t.Fatalf("hostile requests changed the data: count %v", n)
	}
	if v := d.do(t, "GET", "/v1/repos/c/keep", ``).json(t)["v"]; v != 1.0 {
		t.Fatalf("record changed: %v", v)
	}
	if st := d.do(t, "GET", "/v1/queues/q/stats", ``).json(t); st["pending"] != 0.0 {
		t.Fatalf("hostile enqueues added jobs: %v", st)
	}
}

func TestReliabilityBodyTooLarge(t *testing.T) {
	d := start(t, 0)
	big := `{"a":"` + strings.Repeat("x", 2<<20) + `"}`
	// The server answers as soon as it has read the headers and closes, so
	// write the body in the background and read the answer meanwhile.
	c, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go fmt.Fprintf(c, "POST /v1/repos/c HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	resp{res.StatusCode, body}.wantError(t, 413, backend.CodePayloadTooLarge)
	if n := d.do(t, "POST", "/v1/repos/c/count", `{}`).want(t, 200).json(t)["count"]; n != 0.0 {
		t.Fatalf("oversized create stored something: %v", n)
	}
}

// TestReliabilityRawBytes writes malformed HTTP straight to the socket.
func TestReliabilityRawBytes(t *testing.T) {
	d := start(t, 0)
	for _, raw := range []string{
		"\x00\x01\x02garbage\r\n\r\n",
		"GET /v1/repos/c/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
		"POST /v1/repos/c HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\":",
		"GET /v1/repos/c/x HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 10000) + "\r\n",
	} {
		c, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		// The daemon may close on the first bad bytes, before the rest is
		// written: what it answered is what the test checks.
		_, _ = c.Write([]byte(raw))
		if cw, ok := c.(*net.UnixConn); ok {
			_ = cw.CloseWrite()
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "HTTP/1.1 5") || strings.HasPrefix(line, "HTTP/1.1 2") {
			t.Fatalf("raw %q got %q", raw[:min(len(raw), 40)], line)
		}
	}
	d.do(t, "GET", "/healthz", "").want(t, 200)
}
