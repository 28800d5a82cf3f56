package backend

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Documents are encoded in two passes: the first measures the exact size
// of the output, the second writes it into a buffer of that size. JSON
// libraries (goccy/go-json and encoding/json alike) encode into a pooled
// buffer and return a copy of it, so a record used to cost twice its size
// while it was encoded, and the pool kept the larger buffer alive after
// it: for a 15 MiB record that was a third of what a create cost in
// memory. The output is byte for byte what goccy/go-json writes with HTML
// escaping off (keys sorted, numbers formatted as encoding/json formats
// them, U+2028, U+2029 and invalid UTF-8 escaped); TestEncodeMatchesLibrary
// holds it to that. A value of a Go type that JSON decoding does not
// produce is left to the library.

// encodedSize is the length of the encoding of v; ok is false when v holds
// a value this encoder leaves to the library.
func encodedSize(v any) (n int, ok bool) {
	switch x := v.(type) {
	case nil:
		return 4, true
	case bool:
		if x {
			return 4, true
		}
		return 5, true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		var buf [32]byte
		return len(appendFloat(buf[:0], x)), true
	case string:
		return quotedSize(x), true
	case []any:
		n = 2 + max(len(x)-1, 0)
		for _, e := range x {
			m, ok := encodedSize(e)
			if !ok {
				return 0, false
			}
			n += m
		}
		return n, true
	case map[string]any:
		n = 2 + max(len(x)-1, 0)
		for k, e := range x {
			m, ok := encodedSize(e)
			if !ok {
				return 0, false
			}
			n += quotedSize(k) + 1 + m
		}
		return n, true
	}
	return 0, false
}

// appendValue appends the encoding of v, which encodedSize accepted.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case float64:
		return appendFloat(b, x)
	case string:
		return appendQuoted(b, x)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e)
		}
		return append(b, ']')
	case map[string]any:
		var small [16]string
		keys := small[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, k)
			b = append(b, ':')
			b = appendValue(b, x[k])
		}
		return append(b, '}')
	}
	panic("backend: appendValue of a value encodedSize refused")
}

// appendFloat formats as encoding/json does: the shortest decimal that
// reads back the same, in exponent form only below 1e-6 or from 1e21 on,
// with a one-digit negative exponent unpadded (1e-7, not 1e-07).
func appendFloat(b []byte, f float64) []byte {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		start := len(b)
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		if n := len(b) - start; n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
		return b
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// asciiEscape is how each ASCII byte is written in a string: 0 as it is,
// 'u' as \u00XX, anything else as a backslash and that letter.
var asciiEscape = func() (t [utf8.RuneSelf]byte) {
	for c := 0; c < 0x20; c++ {
		t[c] = 'u'
	}
	t['\b'], t['\f'], t['\n'], t['\r'], t['\t'] = 'b', 'f', 'n', 'r', 't'
	t['"'], t['\\'] = '"', '\\'
	return t
}()

// plain marks the bytes written as they are without a second look.
var plain = func() (t [256]bool) {
	for c := range utf8.RuneSelf {
		t[c] = asciiEscape[c] == 0
	}
	return t
}()

// escapedRune reports a multi-byte sequence written as \uXXXX: an invalid
// byte (as \ufffd) or the line and paragraph separators, which JavaScript
// source does not allow in a string.
func escapedRune(r rune, size int) bool {
	return (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029'
}

// plainRun is the length of the prefix of s that is written as it is,
// give or take up to seven bytes: it checks eight bytes at a time for one
// that is a control character, a quote, a backslash or not ASCII.
func plainRun(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		_ = s[i+7]
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q, bs := x^('"'*ones), x^('\\'*ones)
		// A byte of the word is zero in q or bs, below 0x20 in x, or
		// 0x80 and up in x.
		if (x|(q-ones)&^q|(bs-ones)&^bs|(x-0x20*ones)&^x)&highs != 0 {
			break
		}
	}
	return i
}

func quotedSize(s string) int {
	n := 2
	for i := 0; i < len(s); {
		if p := plainRun(s[i:]); p > 0 {
			n += p
			i += p
			continue
		}
		if plain[s[i]] {
			n++
			i++
			continue
		}
		if c := s[i]; c < utf8.RuneSelf {
			switch asciiEscape[c] {
			case 0:
				n++
			case 'u':
				n += 6
			default:
				n += 2
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if escapedRune(r, size) {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

const hexDigits = "0123456789abcdef"

func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is still to be copied as it is
	for i := 0; i < len(s); {
		if p := plainRun(s[i:]); p > 0 {
			i += p
			continue
		}
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			e := asciiEscape[c]
			b = append(b, s[start:i]...)
			if e == 'u' {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, '\\', e)
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if escapedRune(r, size) {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				r = '\ufffd'
			}
			b = append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
