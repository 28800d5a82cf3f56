package handlers

import (
	"context"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

func queueName(ctx *fasthttp.RequestCtx) (string, error) {
	name, err := pathParam(ctx.UserValue("queue"))
	if err != nil {
		return "", err
	}
	return name, backend.ValidateName("queue", name)
}

// seen marks a queue as used, for the queue series of /metrics.
func (s *Server) seen(queue string) *queueActivity { return s.queues.use(queue) }

func jobID(ctx *fasthttp.RequestCtx) (string, error) {
	return recordID(ctx)
}

func (s *Server) enqueue(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	p, err := DecodeEnqueue(ctx.PostBody())
	if err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	active := s.seen(queue)
	defer s.metrics.op("jobqueue", "enqueue")()
	ids, err := s.jobs.Enqueue(c, queue, []backend.EnqueueParams{p})
	if err != nil {
		return err
	}
	active.enqueued.Add(1)
	writeJSON(ctx, fasthttp.StatusCreated, []byte(`{"id":"`+ids[0]+`"}`))
	return nil
}

func (s *Server) enqueueMany(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	ps, err := DecodeEnqueueBatch(ctx.PostBody())
	if err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	active := s.seen(queue)
	defer s.metrics.op("jobqueue", "enqueueMany")()
	ids, err := s.jobs.Enqueue(c, queue, ps)
	if err != nil {
		return err
	}
	active.enqueued.Add(uint64(len(ids)))
	b, _ := backend.Marshal(struct {
		IDs []string `json:"ids"`
	}{ids})
	writeJSON(ctx, fasthttp.StatusCreated, b)
	return nil
}

func (s *Server) dequeue(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	p, err := DecodeDequeue(ctx.PostBody())
	if err != nil {
		return err
	}
	c, cancel := context.WithTimeout(s.polls, s.timeout+p.Wait)
	defer cancel()
	s.seen(queue)
	done := s.metrics.op("jobqueue", "dequeue")
	job, err := s.jobs.Dequeue(c, queue, p)
	done()
	if err != nil {
		return err
	}
	if job == nil {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	}
	return writeJob(ctx, job)
}

func writeJob(ctx *fasthttp.RequestCtx, job *backend.Job) error {
	b, err := backend.Marshal(job)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, b)
	return nil
}

func (s *Server) getJob(ctx *fasthttp.RequestCtx) error {
	id, err := jobID(ctx)
	if err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "getJob")()
	job, err := s.jobs.GetJob(c, id)
	if err != nil {
		return err
	}
	if job == nil {
		return backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	}
	return writeJob(ctx, job)
}

func (s *Server) ack(ctx *fasthttp.RequestCtx) error {
	id, err := jobID(ctx)
	if err != nil {
		return err
	}
	lease, err := DecodeAck(ctx.PostBody())
	if err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "acknowledge")()
	if err := s.jobs.Acknowledge(c, id, lease); err != nil {
		return err
	}
	s.metrics.completed.Inc()
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

func (s *Server) fail(ctx *fasthttp.RequestCtx) error {
	id, err := jobID(ctx)
	if err != nil {
		return err
	}
	p, err := DecodeFail(id, ctx.PostBody())
	if err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "fail")()
	if err := s.jobs.Fail(c, p); err != nil {
		return err
	}
	s.metrics.failed.Inc()
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

func (s *Server) heartbeat(ctx *fasthttp.RequestCtx) error {
	id, err := jobID(ctx)
	if err != nil {
		return err
	}
	p, err := DecodeHeartbeat(id, ctx.PostBody())
	if err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "heartbeat")()
	if err := s.jobs.Heartbeat(c, p); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// noBody refuses a body on calls that take none, so that a client sending
// options we do not know learns it.
func noBody(ctx *fasthttp.RequestCtx) error {
	var empty struct{}
	return decodeStrict(ctx.PostBody(), &empty)
}

func (s *Server) cancelJob(ctx *fasthttp.RequestCtx) error {
	id, err := jobID(ctx)
	if err != nil {
		return err
	}
	if err := noBody(ctx); err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "cancel")()
	if err := s.jobs.Cancel(c, id); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

func (s *Server) retry(ctx *fasthttp.RequestCtx) error {
	id, err := jobID(ctx)
	if err != nil {
		return err
	}
	if err := noBody(ctx); err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "retryFailed")()
	if err := s.jobs.RetryFailed(c, id); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

func (s *Server) stats(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "stats")()
	st, err := s.jobs.Stats(c, queue)
	if err != nil {
		return err
	}
	b, _ := backend.Marshal(st)
	writeJSON(ctx, fasthttp.StatusOK, b)
	return nil
}

func (s *Server) listFailed(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	args := ctx.QueryArgs()
	p, err := pageParams(args.Peek("limit"), args.Peek("offset"))
	if err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "listFailed")()
	jobs, err := s.jobs.ListFailed(c, queue, p)
	if err != nil {
		return err
	}
	b, _ := backend.Marshal(jobs)
	writeJSON(ctx, fasthttp.StatusOK, b)
	return nil
}

func (s *Server) purgeFailed(ctx *fasthttp.RequestCtx) error {
	queue, err := queueName(ctx)
	if err != nil {
		return err
	}
	if err := noBody(ctx); err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("jobqueue", "purgeFailed")()
	n, err := s.jobs.PurgeFailed(c, queue)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, []byte(`{"purged":`+strconv.Itoa(n)+`}`))
	return nil
}
