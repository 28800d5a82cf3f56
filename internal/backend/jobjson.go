package backend

import (
	"bytes"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
)

// Jobs are encoded by hand on the dequeue path: a drain encodes every job
// once, and the library's encoding of a Job (its five times through
// time.Time's MarshalJSON, its raw data compacted through a buffer) was
// the largest part of the daemon's CPU per job on the memory store
// (pprof). The output is byte for byte what Marshal writes;
// TestJobJSONMatchesLibrary holds it to that.

// AppendJobsJSON appends the JSON array of jobs.
func AppendJobsJSON(dst []byte, jobs []*Job) []byte {
	dst = append(dst, '[')
	for i, j := range jobs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJobJSON(dst, j)
	}
	return append(dst, ']')
}

// AppendJobJSON appends j as JSON, or null for nil.
func AppendJobJSON(dst []byte, j *Job) []byte {
	if j == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, `{"id":`...)
	dst = appendQuoted(dst, j.ID)
	dst = append(dst, `,"queue":`...)
	dst = appendQuoted(dst, j.Queue)
	dst = append(dst, `,"data":`...)
	dst = appendRaw(dst, j.Data)
	dst = append(dst, `,"status":`...)
	dst = appendQuoted(dst, string(j.Status))
	dst = append(dst, `,"priority":`...)
	dst = strconv.AppendInt(dst, int64(j.Priority), 10)
	dst = append(dst, `,"attempts":`...)
	dst = strconv.AppendInt(dst, int64(j.Attempts), 10)
	dst = append(dst, `,"maxAttempts":`...)
	dst = strconv.AppendInt(dst, int64(j.MaxAttempts), 10)
	dst = append(dst, `,"backoff":`...)
	dst = j.Backoff.AppendJSON(dst)
	if j.Key != "" {
		dst = append(dst, `,"key":`...)
		dst = appendQuoted(dst, j.Key)
	}
	dst = append(dst, `,"runAt":`...)
	dst = appendTimeJSON(dst, j.RunAt)
	dst = append(dst, `,"createdAt":`...)
	dst = appendTimeJSON(dst, j.CreatedAt)
	dst = append(dst, `,"updatedAt":`...)
	dst = appendTimeJSON(dst, j.UpdatedAt)
	if j.StartedAt != nil {
		dst = append(dst, `,"startedAt":`...)
		dst = appendTimeJSON(dst, *j.StartedAt)
	}
	if j.FinishedAt != nil {
		dst = append(dst, `,"finishedAt":`...)
		dst = appendTimeJSON(dst, *j.FinishedAt)
	}
	if j.LeaseExpiresAt != nil {
		dst = append(dst, `,"leaseExpiresAt":`...)
		dst = appendTimeJSON(dst, *j.LeaseExpiresAt)
	}
	if j.Lease != "" {
		dst = append(dst, `,"lease":`...)
		dst = appendQuoted(dst, j.Lease)
	}
	if e := j.LastError; e != nil {
		dst = append(dst, `,"lastError":{"name":`...)
		dst = appendQuoted(dst, e.Name)
		dst = append(dst, `,"message":`...)
		dst = appendQuoted(dst, e.Message)
		if e.Stack != "" {
			dst = append(dst, `,"stack":`...)
			dst = appendQuoted(dst, e.Stack)
		}
		dst = append(dst, '}')
	}
	if len(j.Result) > 0 {
		dst = append(dst, `,"result":`...)
		dst = appendRaw(dst, j.Result)
	}
	if len(j.Progress) > 0 {
		dst = append(dst, `,"progress":`...)
		dst = appendRaw(dst, j.Progress)
	}
	if j.TimeoutMs != 0 {
		dst = append(dst, `,"timeoutMs":`...)
		dst = strconv.AppendInt(dst, j.TimeoutMs, 10)
	}
	if j.Traceparent != "" {
		dst = append(dst, `,"traceparent":`...)
		dst = appendQuoted(dst, j.Traceparent)
	}
	return append(dst, '}')
}

// appendRaw appends a stored JSON value compacted, as the library writes
// a json.RawMessage. Values are valid JSON (checked when they came in);
// most hold no whitespace at all and are copied as they are. An empty
// value is null.
func appendRaw(dst []byte, v json.RawMessage) []byte {
	if len(v) == 0 {
		return append(dst, "null"...)
	}
	if !bytes.ContainsAny(v, " \t\r\n") {
		return append(dst, v...)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return append(dst, v...)
	}
	return append(dst, buf.Bytes()...)
}

// appendTimeJSON appends t quoted in RFC 3339 with as many fractional
// digits as it needs, as time.Time's MarshalJSON does. Store times are
// UTC milliseconds, written here digit by digit; any other time goes
// through the time package.
func appendTimeJSON(dst []byte, t time.Time) []byte {
	ns := t.Nanosecond()
	year, month, day := t.Date()
	if t.Location() != time.UTC || ns%int(time.Millisecond) != 0 || year < 0 || year > 9999 {
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	}
	hour, minute, sec := t.Clock()
	dst = append(dst, '"')
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	if ms := ns / int(time.Millisecond); ms != 0 {
		// Trailing zeros dropped: .120 is .12.
		digits := 3
		for ms%10 == 0 {
			ms /= 10
			digits--
		}
		dst = append(dst, '.')
		dst = appendDigits(dst, ms, digits)
	}
	return append(dst, 'Z', '"')
}

// appendDigits appends v, zero-padded to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [8]byte
	i := len(buf)
	for ; width > 0 || v > 0; width-- {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[i:]...)
}
