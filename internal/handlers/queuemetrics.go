package handlers

import (
	"time"

	"github.com/storaged/storaged/internal/backend/queue"
)

// QueueObserver is the queue service's view of these metrics: one
// observation per operation, and the job counters.
func (m *Metrics) QueueObserver() queue.Observer { return queueObserver{m} }

type queueObserver struct{ m *Metrics }

func (o queueObserver) Op(op string, d time.Duration, _ error) {
	o.m.backend.WithLabelValues("jobqueue", op).Observe(d.Seconds())
}

func (o queueObserver) Jobs(event, queue string, n int) {
	switch event {
	case "enqueued":
		if a := o.m.active.Load(); a != nil {
			a.use(queue).enqueued.Add(uint64(n)) //nolint:gosec // G115: n counts jobs enqueued, never negative
		}
	case "completed":
		o.m.completed.Add(float64(n))
	case "failed", "retried":
		o.m.failed.Add(float64(n))
	}
}

// ScheduleLag implements queue.ScheduleLagObserver.
func (o queueObserver) ScheduleLag(_ string, lag time.Duration) {
	o.m.scheduleLag.Observe(max(lag, 0).Seconds())
}
