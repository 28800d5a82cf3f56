package handlers

import (
	"errors"
	"log/slog"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

// statusOf is the one table from error codes to HTTP statuses (DESIGN §4).
var statusOf = map[backend.Code]int{
	backend.CodeInvalidArgument: fasthttp.StatusBadRequest,
	backend.CodeNotFound:        fasthttp.StatusNotFound,
	backend.CodeConflict:        fasthttp.StatusConflict,
	backend.CodeTxNotFound:      fasthttp.StatusGone,
	backend.CodePayloadTooLarge: fasthttp.StatusRequestEntityTooLarge,
	backend.CodeUnavailable:     fasthttp.StatusServiceUnavailable,
	backend.CodeInternal:        fasthttp.StatusInternalServerError,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail is what an answer says of an error: the error body's inner
// object, and each failed item's outcome in a batch.
type errorDetail struct {
	Code    backend.Code `json:"code"`
	Message string       `json:"message"`
	// Retryable is set on conflicts that running the transaction again may
	// resolve (backend.Error.Retryable); absent otherwise.
	Retryable bool `json:"retryable,omitempty"`
}

// detail is err as the caller may see it. Anything that is not a
// *backend.Error, and every internal error, is logged and shown only as
// "internal error".
func (s *Server) detail(ctx *fasthttp.RequestCtx, err error) *errorDetail {
	var be *backend.Error
	if !errors.As(err, &be) {
		s.log.Error("internal error", "method", string(ctx.Method()), "path", string(ctx.Path()), "err", err)
		return &errorDetail{Code: backend.CodeInternal, Message: "internal error"}
	}
	if be.Code == backend.CodeInternal {
		s.log.Error("internal error", "method", string(ctx.Method()), "path", string(ctx.Path()), "err", be.Message, "cause", be.Cause())
		return &errorDetail{Code: backend.CodeInternal, Message: "internal error"}
	}
	return &errorDetail{Code: be.Code, Message: be.Message, Retryable: be.Retryable}
}

// writeError answers with the DESIGN error body.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	d := s.detail(ctx, err)
	writeErrorBody(ctx, &backend.Error{Code: d.Code, Message: d.Message, Retryable: d.Retryable})
}

func writeErrorBody(ctx *fasthttp.RequestCtx, be *backend.Error) {
	status, ok := statusOf[be.Code]
	if !ok {
		status = fasthttp.StatusInternalServerError
	}
	var body errorBody
	body.Error = errorDetail{Code: be.Code, Message: be.Message, Retryable: be.Retryable}
	b, _ := backend.Marshal(body)
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// serverError answers errors that fasthttp meets before any handler runs:
// an oversized body, a malformed request line or header.
func serverError(log *slog.Logger) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			writeErrorBody(ctx, backend.Errorf(backend.CodePayloadTooLarge, "request body is larger than the limit (STORAGED_MAX_BODY_BYTES)"))
			ctx.SetConnectionClose()
			return
		}
		log.Debug("malformed request", "err", err)
		writeErrorBody(ctx, backend.Errorf(backend.CodeInvalidArgument, "malformed HTTP request"))
		ctx.SetConnectionClose()
	}
}
