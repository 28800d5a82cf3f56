package backendtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// testKeysetPaging: walking any sort page by page with after returns
// exactly what one unpaged find returns, in order — over values of every
// type, missing ones and ties.
func testKeysetPaging(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	rng := rand.New(rand.NewPCG(7, 7))
	// 60 random records already hold every case a cursor must carry
	// (ties, missing fields, mixed types); pages of one walk each of them.
	for i := 0; i < 60; i++ {
		if _, err := r.Create(ctx(t), randomDoc(rng, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 25; i++ {
		q, err := backend.ParseQuery(randomQuery(rng))
		must(t, err)
		q.Limit, q.Offset = 0, 0
		all, err := r.FindMany(ctx(t), q)
		must(t, err)
		want := ids(t, all)
		for _, size := range []int{1, 7, 50} {
			var got []string
			q.Limit = size
			after := ""
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("sort %v: paging does not end", q.Sort)
				}
				items, next, err := backend.FindPage(ctx(t), r, q, after)
				must(t, err)
				got = append(got, ids(t, backend.Records(items))...)
				if next == "" {
					break
				}
				after = next
			}
			if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("sort %v, pages of %d:\nwant %v\ngot  %v", q.Sort, size, want, got)
			}
		}
	}
}

// testKeysetUnderInserts: records inserted while a reader pages never
// make it skip or repeat a record that was there when it began.
func testKeysetUnderInserts(t *testing.T, b backend.RepositoryBackend) {
	for _, sort := range []string{`{}`, `{"n": "desc"}`, `{"g": "asc", "n": "asc"}`} {
		t.Run(sort, func(t *testing.T) {
			r := b.Repository(testutil.Name(t, "keyset"))
			// 90 records are ten pages of 9, with ties on every sort key
			// (n repeats every 37, g every 3): enough page boundaries for
			// the inserts to land between.
			before := map[string]bool{}
			for i := 0; i < 90; i++ {
				doc := create(t, r, map[string]any{"n": float64(i % 37), "g": fmt.Sprint(i % 3)})
				before[doc["id"].(string)] = true
			}
			q, err := backend.ParseQuery([]byte(`{"sort": ` + sort + `, "limit": 9}`))
			must(t, err)
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Add(1)
			firstPage := make(chan struct{})
			go func() {
				defer wg.Done()
				<-firstPage // the inserts land between pages
				// Bounded, or a reader slower than the writer would chase
				// the end of the collection for good.
				for i := 0; i < 120 && !stop.Load(); i++ {
					if _, err := r.Create(ctx(t), map[string]any{"n": float64(i % 41), "g": fmt.Sprint(i % 4)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			seen := map[string]int{}
			after := ""
			for {
				items, next, err := backend.FindPage(ctx(t), r, q, after)
				if err != nil {
					stop.Store(true)
					if after == "" {
						close(firstPage)
					}
					wg.Wait()
					t.Fatal(err)
				}
				for _, id := range ids(t, backend.Records(items)) {
					seen[id]++
				}
				if after == "" {
					close(firstPage)
				}
				if next == "" {
					break
				}
				after = next
			}
			stop.Store(true)
			wg.Wait()
			for id, n := range seen {
				if n > 1 {
					t.Fatalf("%s came %d times", id, n)
				}
			}
			for id := range before {
				if seen[id] != 1 {
					t.Fatalf("%s, there from the start, was skipped", id)
				}
			}
		})
	}
}

func testCursorErrors(t *testing.T, b backend.RepositoryBackend) {
	r := repo(t, b)
	for i := 0; i < 3; i++ {
		create(t, r, map[string]any{"n": float64(i)})
	}
	q, err := backend.ParseQuery([]byte(`{"sort": {"n": "asc"}, "limit": 1}`))
	must(t, err)
	_, next, err := backend.FindPage(ctx(t), r, q, "")
	must(t, err)
	other, _ := backend.ParseQuery([]byte(`{"sort": {"n": "desc"}, "limit": 1}`))
	_, _, err = backend.FindPage(ctx(t), r, other, next)
	wantCode(t, err, backend.CodeInvalidArgument)
	for _, bad := range []string{"x", "eyJ9", "e30", next[:len(next)-2]} {
		_, _, err = backend.FindPage(ctx(t), r, q, bad)
		wantCode(t, err, backend.CodeInvalidArgument)
	}
	q.Offset = 1
	_, _, err = backend.FindPage(ctx(t), r, q, next)
	wantCode(t, err, backend.CodeInvalidArgument)
}
