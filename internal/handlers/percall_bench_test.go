package handlers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/postgres"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/handlers"
	"github.com/storaged/storaged/internal/testutil"
)

// BenchmarkRepoCall is one repository call through the routed handler,
// without the socket: what the daemon spends on a call besides the hop
// (go test -bench RepoCall -benchmem -cpuprofile). On PostgreSQL the
// database's round trip is in the figure too.
func BenchmarkRepoCall(b *testing.B) {
	for _, name := range []string{"memory", "postgres"} {
		b.Run(name, func(b *testing.B) {
			var repo backend.RepositoryBackend
			if name == "memory" {
				repo = memory.NewRepositoryBackend()
			} else {
				pg, err := postgres.OpenRepository(context.Background(), postgres.Config{URL: testutil.PostgresDB(b)})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { pg.Close() })
				repo = pg
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			api := handlers.New(handlers.Config{Repository: repo, Jobs: queue.New(queue.Config{Store: memory.NewJobStore()}), Logger: log})
			h := api.Handler()
			call := func(method, uri, body string) (int, []byte) {
				var ctx fasthttp.RequestCtx
				ctx.Request.Header.SetMethod(method)
				ctx.Request.SetRequestURI(uri)
				if body != "" {
					ctx.Request.Header.SetContentType("application/json")
					ctx.Request.SetBodyString(body)
				}
				h(&ctx)
				return ctx.Response.StatusCode(), ctx.Response.Body()
			}
			doc := func(i int) string {
				return fmt.Sprintf(`{"name":"plan %d","status":"s%d","n":%d,"steps":["a","b"],"owner":{"team":"t%d"}}`, i, i%100, i, i%10)
			}
			ids := make([]string, 100)
			for i := range ids {
				st, body := call("POST", "/v1/repos/bench", doc(i))
				var rec struct{ ID string }
				if err := json.Unmarshal(body, &rec); st != 201 || err != nil {
					b.Fatalf("create: %d %s", st, body)
				}
				ids[i] = rec.ID
			}
			ops := []struct {
				name string
				fn   func(i int) (int, []byte)
				want int
			}{
				{"findById", func(i int) (int, []byte) { return call("GET", "/v1/repos/bench/"+ids[i%100], "") }, 200},
				{"create", func(i int) (int, []byte) { return call("POST", "/v1/repos/bench", doc(i)) }, 201},
				{"update", func(i int) (int, []byte) {
					return call("PATCH", "/v1/repos/bench/"+ids[i%100], fmt.Sprintf(`{"n":%d}`, i))
				}, 200},
			}
			for _, op := range ops {
				b.Run(op.name, func(b *testing.B) {
					b.ReportAllocs()
					for i := 0; b.Loop(); i++ {
						if st, body := op.fn(i); st != op.want {
							b.Fatalf("%d %s", st, body)
						}
					}
				})
			}
		})
	}
}
