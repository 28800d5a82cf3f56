package backend

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// Code classifies an Error. The HTTP layer maps each code to one status in
// a single table (handlers.statusOf); the Node client maps it back to an
// exception class.
type Code string

// The codes. Each has one HTTP status (handlers.statusOf) and one
// exception class in the Node client; schema/wire.schema.json lists them
// for both.
const (
	CodeInvalidArgument Code = "invalid_argument"
	CodeNotFound        Code = "not_found"
	CodeConflict        Code = "conflict"
	CodeTxNotFound      Code = "tx_not_found"
	CodePayloadTooLarge Code = "payload_too_large"
	CodeUnavailable     Code = "unavailable"
	CodeInternal        Code = "internal"
)

// Error is the only error type that crosses a port. Message is safe to show
// to the caller: it never contains driver internals. The driver's error,
// when there was one, is kept as the cause for the log (Unwrap, Cause);
// the HTTP layer never sends it.
type Error struct {
	Code    Code
	Message string
	// Retryable marks a conflict that says nothing about the request, only
	// about its timing: a serialization failure or a deadlock. Running the
	// same transaction again may well succeed, and clients do so (with
	// backoff) when it is set.
	Retryable bool
	cause     error
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Unwrap returns the driver error behind e, if any, so that errors.Is and
// errors.As see through the translation.
func (e *Error) Unwrap() error { return e.cause }

// Cause is the driver's text behind e, for the log ("" if none).
func (e *Error) Cause() string {
	if e.cause == nil {
		return ""
	}
	return e.cause.Error()
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error that keeps cause for the log. Adapters use it when
// they translate a driver error: the message says what happened in the
// caller's terms, the cause says how.
func Wrap(cause error, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), cause: cause}
}

// IsConnectionLost reports whether err is a connection that failed under a
// request: an end of stream, a reset, a refused or timed-out dial, a
// closed socket. Every adapter answers these with CodeUnavailable, which
// clients retry, whatever words its driver wraps them in.
func IsConnectionLost(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

// IsRetryable reports whether err is a conflict that running the same
// transaction again may resolve (Error.Retryable).
func IsRetryable(err error) bool {
	var be *Error
	return errors.As(err, &be) && be.Retryable
}

// ErrorCode returns the code of err: the Code of an *Error anywhere in its
// chain, "" for nil, CodeInternal for anything else.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AsError is the *Error in err's chain, or nil if there is none.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// IsCode reports whether err carries code.
func IsCode(err error, code Code) bool { return err != nil && ErrorCode(err) == code }
