package backend

import (
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxIDLength bounds caller-chosen record ids (DESIGN §2: 1–256 chars).
const MaxIDLength = 256

// DefaultQueue is the queue a client means when it names none, as the
// seed's queue() does.
const DefaultQueue = "default"

// ValidateName checks a collection or queue name against
// ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$. what is "collection" or "queue" and
// only shapes the message.
func ValidateName(what, name string) error {
	if len(name) == 0 || len(name) > 128 {
		return Errorf(CodeInvalidArgument, "%s name must be 1-128 characters, got %d", what, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || i > 0 && (c == '_' || c == '.' || c == ':' || c == '-') {
			continue
		}
		return Errorf(CodeInvalidArgument, "%s name %q is invalid: use letters, digits and _ . : - (not first)", what, truncate(name))
	}
	return nil
}

// ValidateID checks a record or job id: 1–256 characters of valid UTF-8
// without control characters, so that it survives URLs, logs and every
// database's text type unchanged.
func ValidateID(id string) error {
	if id == "" {
		return Errorf(CodeInvalidArgument, "id must not be empty")
	}
	if !utf8.ValidString(id) {
		return Errorf(CodeInvalidArgument, "id must be valid UTF-8")
	}
	n := 0
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return Errorf(CodeInvalidArgument, "id must not contain control characters")
		}
		n++
	}
	if n > MaxIDLength {
		return Errorf(CodeInvalidArgument, "id must be at most %d characters, got %d", MaxIDLength, n)
	}
	return nil
}

// NewID returns a UUIDv7 string: ids sort in creation order, which is what
// makes "id ascending" a useful default order and a stable tie-break.
func NewID() string {
	u, err := uuid.NewV7()
	if err != nil {
		// Only a failing crypto/rand gets here; fall back to v4 rather
		// than fail a write.
		return uuid.NewString()
	}
	return u.String()
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
