// Package backendtest is the conformance suite of the two ports. Every
// adapter runs RunRepository and RunJobQueue unchanged; what they check is
// the definition of DESIGN §2–§3, whatever the database.
//
// The suite isolates its subtests by unique collection and queue names,
// so an adapter may hand out one backend over one shared database.
package backendtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// NewRepository opens a repository backend for a test; the factory
// registers its own cleanup with t.
type NewRepository func(t *testing.T) backend.RepositoryBackend

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, err error, code backend.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got nil", code)
	}
	var be *backend.Error
	if !errors.As(err, &be) {
		t.Fatalf("want *backend.Error %s, got %T: %v", code, err, err)
	}
	if be.Code != code {
		t.Fatalf("want code %s, got %s: %s", code, be.Code, be.Message)
	}
	if be.Message == "" {
		t.Fatalf("error %s has no message", code)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
