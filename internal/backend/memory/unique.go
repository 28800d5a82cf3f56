package memory

import (
	"slices"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// lastHolder is the last job added with nj's key if it holds the key for
// nj (backend.Unique): a finished status nj counts, or younger than its
// period. Active holders are q.keys'.
func (b *JobStore) lastHolder(q *mqueue, nj backend.NewJob, now time.Time) *mjob {
	if nj.Hold == 0 && nj.Period <= 0 {
		return nil
	}
	j := q.last[nj.Key]
	if j == nil || b.jobs[j.ID] != j {
		return nil // none, or pruned since
	}
	if nj.Hold.Holds(j.Status, j.CreatedAt, nj.Period, now) {
		return j
	}
	return nil
}

// duplicate applies nj's mode to the active job j that holds its key:
// replace sets j's data and runAt, debounce its runAt. A holder that is
// not pending (claimed, or changed by an open transaction) stays as it is.
func (q *mqueue) duplicate(j *mjob, nj backend.NewJob, now time.Time) {
	if nj.Mode != backend.UniqueReplace && nj.Mode != backend.UniqueDebounce {
		return
	}
	if j.Status != backend.StatusPending || j.heldBy != nil {
		return
	}
	runAt := nj.RunAt
	if !nj.HasRunAt {
		runAt = now.Add(nj.Delay)
	}
	if nj.Mode == backend.UniqueReplace {
		j.Data = slices.Clone(nj.Data)
	}
	j.RunAt = runAt
	j.UpdatedAt = now
	q.schedule(j, now)
}
