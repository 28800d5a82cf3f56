package handlers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

func TestProfDrain(t *testing.T) {
	d := start(t, 0)
	const total, batch = 20000, 200
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < 1000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"data":{"i":%d}}`, i)
	}
	b.WriteString("]")
	for i := 0; i < total; i += 1000 {
		d.do(t, "POST", "/v1/queues/p/jobs/batch", b.String()).want(t, 201)
	}
	start := time.Now()
	done := 0
	for done < total {
		r := d.do(t, "POST", "/v1/queues/p/dequeue", fmt.Sprintf(`{"max":%d}`, batch))
		var jobs []struct{ ID, Lease string }
		if err := json.Unmarshal(r.body, &jobs); err != nil {
			t.Fatal(err)
		}
		var a strings.Builder
		a.WriteString("[")
		for i, j := range jobs {
			if i > 0 {
				a.WriteString(",")
			}
			fmt.Fprintf(&a, `{"id":%q,"lease":%q}`, j.ID, j.Lease)
		}
		a.WriteString("]")
		d.do(t, "POST", "/v1/jobs/ack", a.String()).want(t, 200)
		done += len(jobs)
	}
	t.Logf("%.0f jobs/s", float64(total)/time.Since(start).Seconds())
}
