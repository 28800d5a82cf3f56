package backend_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

// TestFilterLimits: the limits count what the documentation says they
// count (issue 13, item 18: an $or of 500 equalities is 500 conditions,
// not 1001).
func TestFilterLimits(t *testing.T) {
	or := func(n int, leaf string) string {
		return `{"$or":[` + strings.TrimSuffix(strings.Repeat(leaf+",", n), ",") + `]}`
	}
	nest := func(n int) string {
		return strings.Repeat(`{"$not":`, n) + `{"a":1}` + strings.Repeat(`}`, n)
	}
	fields := func(n int, ops string) string {
		var sb strings.Builder
		sb.WriteString("{")
		for i := 0; i < n; i++ {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(`"f` + strconv.Itoa(i) + `":` + ops)
		}
		sb.WriteString("}")
		return sb.String()
	}
	cases := []struct {
		name, filter string
		ok           bool
	}{
		{"$or of 500 equalities", or(500, `{"a":1}`), true},
		{"$or of 1000 equalities", or(1000, `{"a":1}`), true},
		{"$or of 1001 equalities", or(1001, `{"a":1}`), false},
		{"$or of 500 two-operator objects", or(500, `{"a":{"$gt":1,"$lt":5}}`), true},
		{"$or of 501 two-operator objects", or(501, `{"a":{"$gt":1,"$lt":5}}`), false},
		{"$or of 1000 empty objects", or(1000, `{}`), true},
		{"$or of 1001 empty objects", or(1001, `{}`), false},
		{"1000 fields", fields(1000, `1`), true},
		{"1001 fields", fields(1001, `1`), false},
		{"$in of 1000 values is one condition", or(1000, `{"a":{"$in":[1,2,3]}}`), true},
		{"nested 32 deep", nest(32), true},
		{"nested 33 deep", nest(33), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := backend.ParseFilter([]byte(c.filter))
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && backend.ErrorCode(err) != backend.CodeInvalidArgument {
				t.Fatalf("want invalid_argument, got %v", err)
			}
		})
	}
}
