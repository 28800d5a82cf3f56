package handlers

import (
	"context"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

// serve is the body the plain service routes share (issue 14: handlers
// keep only HTTP): decode reads everything the request says (path
// parameters, then query or body) and refuses bad input before any
// service runs; call runs the service under the request's context; its
// result is answered as JSON with status, or with no body when status is
// 204. Errors of either go back to route, which maps them to a status and
// the error body. It runs inside the route's method rather than building
// a handler, so that the route table stays as it is and nothing is
// allocated for it per request. Routes whose answer is not one JSON value
// (streams, records with ETags, long polls) keep bodies of their own.
func serve[In, Out any](s *Server, ctx *fasthttp.RequestCtx, decode func(*fasthttp.RequestCtx) (In, error), call func(context.Context, In) (Out, error), status int) error {
	in, err := decode(ctx)
	if err != nil {
		return err
	}
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	out, err := call(c, in)
	if err != nil {
		return err
	}
	if status == fasthttp.StatusNoContent {
		ctx.SetStatusCode(status)
		return nil
	}
	return writeValue(ctx, status, out)
}

// serveRepo is serve for the plain routes on one collection: the body is
// read first, then the collection (and the Storaged-Tx transaction the
// call joins); the call is timed as the repository operation op.
func serveRepo[In, Out any](s *Server, ctx *fasthttp.RequestCtx, op string, decode func([]byte) (In, error), call func(context.Context, backend.Repository, In) (Out, error)) error {
	in, err := decode(ctx.PostBody())
	if err != nil {
		return err
	}
	repo, done, err := s.repository(ctx)
	if err != nil {
		return err
	}
	defer done()
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("repository", op).done()
	out, err := call(c, repo, in)
	if err != nil {
		return err
	}
	return writeValue(ctx, fasthttp.StatusOK, out)
}

// none is the result of a call that answers nothing (204).
type none = struct{}

// noResult adapts a call that returns only an error to serve.
func noResult[In any](call func(context.Context, In) error) func(context.Context, In) (none, error) {
	return func(c context.Context, in In) (none, error) { return none{}, call(c, in) }
}

// inPath is what a route on one queue or one job reads: the queue or the
// job id of its path, and what its body says.
type inPath[T any] struct {
	name string
	body T
}

// queueOnly reads the queue of the path of a route that reads no body
// (the GET routes: a body sent is ignored, as it always was).
func queueOnly(ctx *fasthttp.RequestCtx) (string, error) { return queueName(ctx) }

// queueNoBody reads the queue of the path and refuses a body.
func queueNoBody(ctx *fasthttp.RequestCtx) (string, error) {
	q, err := queueName(ctx)
	if err != nil {
		return "", err
	}
	return q, noBody(ctx)
}

// queueAnd reads the queue of the path, then the body with decode.
func queueAnd[T any](decode func([]byte) (T, error)) func(*fasthttp.RequestCtx) (inPath[T], error) {
	return pathAnd(queueName, decode)
}

// jobAnd reads the job id of the path, then the body with decode.
func jobAnd[T any](decode func([]byte) (T, error)) func(*fasthttp.RequestCtx) (inPath[T], error) {
	return pathAnd(jobID, decode)
}

func pathAnd[T any](param func(*fasthttp.RequestCtx) (string, error), decode func([]byte) (T, error)) func(*fasthttp.RequestCtx) (inPath[T], error) {
	return func(ctx *fasthttp.RequestCtx) (inPath[T], error) {
		name, err := param(ctx)
		if err != nil {
			return inPath[T]{}, err
		}
		b, err := decode(ctx.PostBody())
		return inPath[T]{name: name, body: b}, err
	}
}

// nothing reads nothing: a route without parameters.
func nothing(*fasthttp.RequestCtx) (none, error) { return none{}, nil }
