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
	Error struct {
		Code    backend.Code `json:"code"`
		Message string       `json:"message"`
	} `json:"error"`
}

// writeError answers with the DESIGN error body. Anything that is not a
// *backend.Error is logged and shown only as "internal".
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	var be *backend.Error
	if !errors.As(err, &be) {
		s.log.Error("internal error", "method", string(ctx.Method()), "path", string(ctx.Path()), "err", err)
		be = &backend.Error{Code: backend.CodeInternal, Message: "internal error"}
	} else if be.Code == backend.CodeInternal {
		s.log.Error("internal error", "method", string(ctx.Method()), "path", string(ctx.Path()), "err", be.Message)
		be = &backend.Error{Code: backend.CodeInternal, Message: "internal error"}
	}
	writeErrorBody(ctx, be)
}

func writeErrorBody(ctx *fasthttp.RequestCtx, be *backend.Error) {
	status, ok := statusOf[be.Code]
	if !ok {
		status = fasthttp.StatusInternalServerError
	}
	var body errorBody
	body.Error.Code = be.Code
	body.Error.Message = be.Message
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
