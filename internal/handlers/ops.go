package handlers

import (
	"context"
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
		return backend.Errorf(backend.CodeUnavailable, "repository backend %s is not ready", s.info.RepositoryBackend)
	}
	if err := s.jobs.Ping(c); err != nil {
		return backend.Errorf(backend.CodeUnavailable, "job queue backend %s is not ready", s.info.JobQueueBackend)
	}
	writeJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ready"}`))
	return nil
}

func (s *Server) infoHandler(ctx *fasthttp.RequestCtx) error {
	b, _ := backend.Marshal(s.info)
	writeJSON(ctx, fasthttp.StatusOK, b)
	return nil
}
