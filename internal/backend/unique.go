package backend

import (
	"slices"
	"time"
)

// Unique is a job's uniqueness (issue 16). A job enqueued with a key is not added while the
// key is held; the enqueue answers the holder's id instead (deduplicated).
// An active job (pending or processing) always holds its key; Unique
// adds, for the job being enqueued:
//
//   - States: finished statuses that hold the key too (e.g. completed, so
//     that a webhook delivered twice runs once);
//   - Period: the key is held by a job created less than Period ago,
//     whatever its status (a throttle);
//   - Mode: what a duplicate does to a pending holder: nothing (keep),
//     replace its data and runAt, or push its runAt (debounce).
//
// Finished jobs are judged by the last job enqueued with the key (the
// newest by createdAt, then id), since only that one could have been
// added under the key: an older job holding it would have refused it.
type Unique struct {
	Key string `json:"key"`
	// States lists the statuses that hold the key; pending and processing
	// always do and are added when left out.
	States []JobStatus `json:"states,omitempty"`
	Period time.Duration
	Mode   UniqueMode
}

// UniqueMode is what a duplicate does to a pending holder.
type UniqueMode string

// The modes, as the API spells them.
const (
	UniqueKeep     UniqueMode = "keep"
	UniqueReplace  UniqueMode = "replace"
	UniqueDebounce UniqueMode = "debounce"
)

// MaxUniquePeriod bounds Unique.Period.
const MaxUniquePeriod = 10 * 365 * 24 * time.Hour

// HoldMask says which finished statuses hold a key: the bits of
// HoldCompleted, HoldFailed and HoldCancelled. Stores keep it per job as
// an integer (SQL) or compare it in scripts (Lua).
type HoldMask int

// The bits of a HoldMask.
const (
	HoldCompleted HoldMask = 1 << iota
	HoldFailed
	HoldCancelled
)

// Bit is the mask bit of a finished status (0 for active ones, which
// always hold).
func (s JobStatus) Bit() HoldMask {
	switch s {
	case StatusCompleted:
		return HoldCompleted
	case StatusFailed:
		return HoldFailed
	case StatusCancelled:
		return HoldCancelled
	}
	return 0
}

// Holds reports whether a job of status, created at createdAt, holds its
// key for an enqueue with mask and period at now.
func (m HoldMask) Holds(status JobStatus, createdAt time.Time, period time.Duration, now time.Time) bool {
	if status == StatusPending || status == StatusProcessing || m&status.Bit() != 0 {
		return true
	}
	return period > 0 && createdAt.Add(period).After(now)
}

// validate checks u and resolves it into the NewJob fields.
func (u *Unique) validate() (HoldMask, error) {
	if u.Key == "" {
		return 0, Errorf(CodeInvalidArgument, "unique.key is required")
	}
	if len(u.Key) > MaxKeyLength {
		return 0, Errorf(CodeInvalidArgument, "unique.key must be at most %d bytes", MaxKeyLength)
	}
	if err := ValidateID(u.Key); err != nil {
		return 0, Errorf(CodeInvalidArgument, "unique.key: %s", AsError(err).Message)
	}
	var mask HoldMask
	for _, s := range u.States {
		switch s {
		case StatusPending, StatusProcessing:
		case StatusCompleted, StatusFailed, StatusCancelled:
			mask |= s.Bit()
		default:
			return 0, Errorf(CodeInvalidArgument, `unique.states may hold "pending", "processing", "completed", "failed", "cancelled"; got %q`, s)
		}
	}
	if u.Period < 0 || u.Period > MaxUniquePeriod {
		return 0, Errorf(CodeInvalidArgument, "unique.periodMs must be between 0 and %d", MaxUniquePeriod.Milliseconds())
	}
	switch u.Mode {
	case "":
		u.Mode = UniqueKeep
	case UniqueKeep, UniqueReplace, UniqueDebounce:
	default:
		return 0, Errorf(CodeInvalidArgument, `unique.mode must be "keep", "replace" or "debounce"`)
	}
	return mask, nil
}

// UniqueStates lists the statuses a mask holds the key in, active first.
func UniqueStates(m HoldMask) []JobStatus {
	out := []JobStatus{StatusPending, StatusProcessing}
	for _, s := range []JobStatus{StatusCompleted, StatusFailed, StatusCancelled} {
		if m&s.Bit() != 0 && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
