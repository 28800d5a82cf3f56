package redis

import "fmt"

// unpackRows reads what the claim script's cmsgpack.pack made of its
// jobs: a MessagePack array of arrays of strings, or false (HMGET's
// answer for a missing field, in Lua) or nil for none. Only the forms
// cmsgpack gives those are read (arrays of any length; strings, or the
// binary forms of other packers, of any length); anything else is an
// error.
func unpackRows(b []byte) ([][]*string, error) {
	r := unpacker{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	out := make([][]*string, n)
	for i := range out {
		m, err := r.arrayLen()
		if err != nil {
			return nil, err
		}
		row := make([]*string, m)
		for k := range row {
			if row[k], err = r.str(); err != nil {
				return nil, err
			}
		}
		out[i] = row
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("msgpack: %d bytes after the array", len(b)-r.off)
	}
	return out, nil
}

type unpacker struct {
	b   []byte
	off int
}

// uint reads a big-endian unsigned integer of n bytes.
func (r *unpacker) uint(n int) (int, error) {
	if len(r.b)-r.off < n {
		return 0, fmt.Errorf("msgpack: cut short at byte %d", r.off)
	}
	v := 0
	for _, c := range r.b[r.off : r.off+n] {
		v = v<<8 | int(c)
	}
	r.off += n
	return v, nil
}

func (r *unpacker) arrayLen() (int, error) {
	if r.off >= len(r.b) {
		return 0, fmt.Errorf("msgpack: cut short at byte %d", r.off)
	}
	c := r.b[r.off]
	r.off++
	switch {
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == 0xdc:
		return r.uint(2)
	case c == 0xdd:
		return r.uint(4)
	}
	return 0, fmt.Errorf("msgpack: byte %d (0x%02x) does not start an array", r.off-1, c)
}

// str reads a string, or false or nil as none.
func (r *unpacker) str() (*string, error) {
	if r.off >= len(r.b) {
		return nil, fmt.Errorf("msgpack: cut short at byte %d", r.off)
	}
	c := r.b[r.off]
	r.off++
	var n int
	var err error
	switch {
	case c == 0xc2 || c == 0xc0:
		return nil, nil
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = r.uint(1)
	case c == 0xda || c == 0xc5:
		n, err = r.uint(2)
	case c == 0xdb || c == 0xc6:
		n, err = r.uint(4)
	default:
		return nil, fmt.Errorf("msgpack: byte %d (0x%02x) does not start a string", r.off-1, c)
	}
	if err != nil {
		return nil, err
	}
	if len(r.b)-r.off < n {
		return nil, fmt.Errorf("msgpack: a string of %d bytes is cut short at byte %d", n, r.off)
	}
	s := string(r.b[r.off : r.off+n])
	r.off += n
	return &s, nil
}
