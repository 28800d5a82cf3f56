package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

func TestWrapKeepsTheCauseOutOfTheMessage(t *testing.T) {
	cause := fmt.Errorf("read tcp 127.0.0.1:5432: %w", io.ErrUnexpectedEOF)
	err := error(Wrap(cause, CodeUnavailable, "PostgreSQL is unreachable"))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal("the cause is not reachable through errors.Is")
	}
	var be *Error
	if !errors.As(err, &be) || be.Message != "PostgreSQL is unreachable" || be.Cause() != cause.Error() {
		t.Fatalf("got %#v", be)
	}
	if Errorf(CodeInternal, "x").Cause() != "" {
		t.Fatal("an error without a cause has one")
	}
}

func TestIsConnectionLost(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{syscall.EPIPE, true},
		{net.ErrClosed, true},
		{context.DeadlineExceeded, true}, // a net.Error; adapters test context errors first
		{errors.New("syntax error at or near"), false},
		{Errorf(CodeConflict, "x"), false},
	} {
		if got := IsConnectionLost(tc.err); got != tc.want {
			t.Errorf("IsConnectionLost(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
