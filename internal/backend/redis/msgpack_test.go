package redis

import (
	"reflect"
	"strings"
	"testing"
)

// TestUnpackRows reads each form cmsgpack gives arrays and strings, as
// lengths grow past each form's limit, false and nil as none, and refuses
// what it does not give.
func TestUnpackRows(t *testing.T) {
	long := strings.Repeat("x", 300)     // str16
	longer := strings.Repeat("y", 70000) // str32
	many := make([]string, 20)           // array16
	var manyPacked []byte
	for i := range many {
		many[i] = "v"
		manyPacked = append(manyPacked, 0xa1, 'v')
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name string
		in   []byte
		want [][]string // "<none>" for none
		bad  string
	}{
		{"empty array", []byte{0x90}, [][]string{}, ""},
		{"fixstr and empty", []byte{0x91, 0x92, 0xa2, 'i', 'd', 0xa0}, [][]string{{"id", ""}}, ""},
		{"str8", cat([]byte{0x91, 0x91, 0xd9, 40}, []byte(strings.Repeat("a", 40))), [][]string{{strings.Repeat("a", 40)}}, ""},
		{"str16", cat([]byte{0x91, 0x91, 0xda, 0x01, 0x2c}, []byte(long)), [][]string{{long}}, ""},
		{"str32", cat([]byte{0x91, 0x91, 0xdb, 0x00, 0x01, 0x11, 0x70}, []byte(longer)), [][]string{{longer}}, ""},
		{"bin8", []byte{0x91, 0x91, 0xc4, 2, 0, 1}, [][]string{{"\x00\x01"}}, ""},
		{"false and nil", []byte{0x91, 0x93, 0xc2, 0xa1, 'x', 0xc0}, [][]string{{"<none>", "x", "<none>"}}, ""},
		{"array16", cat([]byte{0x91, 0xdc, 0x00, 20}, manyPacked), [][]string{many}, ""},
		{"array32", []byte{0xdd, 0, 0, 0, 1, 0x90}, [][]string{{}}, ""},
		{"not an array", []byte{0xa1, 'x'}, nil, "does not start an array"},
		{"a number for a string", []byte{0x91, 0x91, 0x01}, nil, "does not start a string"},
		{"string cut short", []byte{0x91, 0x91, 0xa3, 'a'}, nil, "cut short"},
		{"length cut short", []byte{0x91, 0x91, 0xda, 0x01}, nil, "cut short"},
		{"fewer elements", []byte{0x92, 0x90}, nil, "cut short"},
		{"bytes after", []byte{0x90, 0x90}, nil, "after the array"},
		{"nothing", nil, nil, "cut short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := unpackRows(tc.in)
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("error %v, want one saying %q", err, tc.bad)
				}
				return
			}
			var got [][]string
			if rows != nil {
				got = [][]string{}
			}
			for _, row := range rows {
				vs := []string{}
				for _, v := range row {
					if v == nil {
						vs = append(vs, "<none>")
					} else {
						vs = append(vs, *v)
					}
				}
				got = append(got, vs)
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
