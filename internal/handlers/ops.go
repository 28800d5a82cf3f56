package handlers

import (
	"context"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

func (s *Server) healthz(ctx *fasthttp.RequestCtx) error {
	writeJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ok"}`))
	return nil
}

// readyz answers 200 only when every backend answers a ping in time.
func (s *Server) readyz(ctx *fasthttp.RequestCtx) error {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.repo.Ping(c); err != nil {
		return backend.Errorf(backend.CodeUnavailable, "repository backend %s is not ready%s", s.info.RepositoryBackend, because(err))
	}
	if err := s.jobs.Ping(c); err != nil {
		return backend.Errorf(backend.CodeUnavailable, "job queue backend %s is not ready%s", s.info.JobQueueBackend, because(err))
	}
	writeJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ready"}`))
	return nil
}

func (s *Server) infoHandler(ctx *fasthttp.RequestCtx) error {
	b, _ := backend.Marshal(s.info)
	writeJSON(ctx, fasthttp.StatusOK, b)
	return nil
}

// because is ": " and the message of err when err is a *backend.Error,
// whose messages are written for clients; other errors stay in the log.
func because(err error) string {
	var be *backend.Error
	if errors.As(err, &be) && be.Code != backend.CodeInternal {
		return ": " + be.Message
	}
	return ""
}
