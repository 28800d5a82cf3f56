package memory

import "encoding/binary"

// readyHeap holds a queue's ready jobs in claim order (priority first,
// then runAt, then id). It is a 4-ary heap of items that carry their own
// sort keys: on a queue of a million jobs enqueued in the same
// millisecond, container/heap's interface calls and the comparison of ids
// through each item's job (a cache miss per comparison) made a claim from
// the deep queue cost three times one from a shallow queue (daemon CPU 6
// against 2 µs per job, make bench). A 4-ary heap is half as deep.
type readyHeap struct {
	items []readyItem
}

// readyItem is one filing of a job in ready; gen says whether it is still
// current (the job's fields change while stale items remain, so the keys
// are copies).
type readyItem struct {
	j    *mjob
	gen  uint64
	prio int
	sec  int64 // runAt
	nsec int32
	id   [3]uint64 // the id's first 24 bytes, big-endian, zero-padded
}

func newReadyItem(j *mjob) readyItem {
	it := readyItem{j: j, gen: j.gen, prio: j.Priority, sec: j.RunAt.Unix(), nsec: int32(j.RunAt.Nanosecond())} //nolint:gosec // G115: nanoseconds fit in int32
	var b [24]byte
	copy(b[:], j.ID)
	for k := range it.id {
		it.id[k] = binary.BigEndian.Uint64(b[8*k:])
	}
	return it
}

// before is the claim order. Ids hold no zero bytes (ValidateID), so the
// zero-padded prefixes order as the ids do until they are equal.
func (a *readyItem) before(b *readyItem) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	if a.sec != b.sec {
		return a.sec < b.sec
	}
	if a.nsec != b.nsec {
		return a.nsec < b.nsec
	}
	for k := range a.id {
		if a.id[k] != b.id[k] {
			return a.id[k] < b.id[k]
		}
	}
	return a.j.ID < b.j.ID
}

func (h *readyHeap) Len() int { return len(h.items) }

func (h *readyHeap) push(it readyItem) {
	h.items = append(h.items, it)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !h.items[i].before(&h.items[p]) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *readyHeap) pop() readyItem {
	top := h.items[0]
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items[n] = readyItem{}
	h.items = h.items[:n]
	i := 0
	for {
		first := 4*i + 1
		if first >= n {
			break
		}
		m := first
		for c := first + 1; c < first+4 && c < n; c++ {
			if h.items[c].before(&h.items[m]) {
				m = c
			}
		}
		if !h.items[m].before(&h.items[i]) {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
}
