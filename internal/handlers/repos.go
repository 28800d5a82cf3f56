package handlers

import (
	"net"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

// repository resolves the collection of a request and, with a
// Storaged-Tx header, the transaction it runs in. done must be called
// when the call has finished.
func (s *Server) repository(ctx *fasthttp.RequestCtx) (repo backend.Repository, done func(), err error) {
	name, err := pathParam(ctx.UserValue("collection"))
	if err != nil {
		return nil, nil, err
	}
	if err := backend.ValidateName("collection", name); err != nil {
		return nil, nil, err
	}
	txID := ctx.Request.Header.Peek(TxHeader)
	if len(txID) == 0 {
		return s.repo.Repository(name), func() {}, nil
	}
	sess, err := s.txs.acquire(string(txID))
	if err != nil {
		return nil, nil, err
	}
	return sess.tx.Repository(name), func() { s.txs.release(sess) }, nil
}

func recordID(ctx *fasthttp.RequestCtx) (string, error) {
	id, err := pathParam(ctx.UserValue("id"))
	if err != nil {
		return "", err
	}
	return id, backend.ValidateID(id)
}

func (s *Server) create(ctx *fasthttp.RequestCtx) error {
	doc, err := decodeObject(ctx.PostBody(), "record")
	if err != nil {
		return err
	}
	expires, err := expiryOf(ctx)
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
	defer s.metrics.op("repository", "create").done()
	it, err := create(c, repo, doc, expires)
	if err != nil {
		return err
	}
	setETag(ctx, it.Version)
	writeRecord(ctx, fasthttp.StatusCreated, it.Rec)
	return nil
}

func (s *Server) findByID(ctx *fasthttp.RequestCtx) error {
	id, err := recordID(ctx)
	if err != nil {
		return err
	}
	fields, err := backend.ParseFieldsParam(string(ctx.QueryArgs().Peek("fields")))
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
	defer s.metrics.op("repository", "findById").done()
	it, err := repo.Get(c, id)
	if err != nil {
		return err
	}
	if it.Rec == nil {
		return backend.Errorf(backend.CodeNotFound, "no record with id %q", id)
	}
	if it.Rec, err = backend.Project(it.Rec, fields); err != nil {
		return err
	}
	setETag(ctx, it.Version)
	writeRecord(ctx, fasthttp.StatusOK, it.Rec)
	return nil
}

func (s *Server) findMany(ctx *fasthttp.RequestCtx) error {
	body := ctx.PostBody()
	if err := checkBody(body); err != nil {
		return err
	}
	q, err := backend.ParseQuery(body)
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
	defer s.metrics.op("repository", "findMany").done()
	if q.Page {
		items, next, err := backend.FindPage(c, repo, q, q.After)
		if err != nil {
			return err
		}
		return writePage(ctx, items, next, q.Fields)
	}
	recs, err := repo.FindMany(c, q)
	if err != nil {
		return err
	}
	if len(q.Fields) > 0 {
		for i := range recs {
			if recs[i], err = backend.Project(recs[i], q.Fields); err != nil {
				return err
			}
		}
	}
	writeRecords(ctx, recs)
	return nil
}

// writeRecords answers with a JSON array of records, streamed from the
// records themselves: a page of large records is not copied into one
// buffer (and that again into the response), which used to cost twice
// the size of the answer.
func writeRecords(ctx *fasthttp.RequestCtx, recs []backend.Record) {
	parts := make(net.Buffers, 0, 2*len(recs)+1)
	n := 0
	for i, r := range recs {
		sep := commaBytes
		if i == 0 {
			sep = openBytes
		}
		parts = append(parts, sep, r)
		n += 1 + len(r)
	}
	if len(recs) == 0 {
		parts = append(parts, openBytes)
		n++
	}
	parts = append(parts, closeBytes)
	n++
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyStream(&parts, n)
}

var openBytes, commaBytes, closeBytes = []byte("["), []byte(","), []byte("]")

func (s *Server) count(ctx *fasthttp.RequestCtx) error {
	body := ctx.PostBody()
	if err := checkBody(body); err != nil {
		return err
	}
	f, err := backend.ParseCountFilter(body)
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
	defer s.metrics.op("repository", "count").done()
	n, err := repo.Count(c, f)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, strconv.AppendInt([]byte(`{"count":`), n, 10))
	ctx.Response.AppendBodyString("}")
	return nil
}

func (s *Server) update(ctx *fasthttp.RequestCtx) error {
	id, err := recordID(ctx)
	if err != nil {
		return err
	}
	patch, err := decodeObject(ctx.PostBody(), "update")
	if err != nil {
		return err
	}
	u, err := backend.ParseUpdate(patch)
	if err != nil {
		return err
	}
	match, err := ifMatch(ctx)
	if err != nil {
		return err
	}
	expires, err := expiryOf(ctx)
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
	defer s.metrics.op("repository", "update").done()
	it, err := repo.Modify(c, id, u, backend.WriteParams{IfMatch: match, ExpiresAt: expires})
	if err != nil {
		return err
	}
	setETag(ctx, it.Version)
	writeRecord(ctx, fasthttp.StatusOK, it.Rec)
	return nil
}

func (s *Server) delete(ctx *fasthttp.RequestCtx) error {
	id, err := recordID(ctx)
	if err != nil {
		return err
	}
	match, err := ifMatch(ctx)
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
	defer s.metrics.op("repository", "delete").done()
	if err := repo.Remove(c, id, backend.WriteParams{IfMatch: match}); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

func (s *Server) ensureIndex(ctx *fasthttp.RequestCtx) error {
	name, err := pathParam(ctx.UserValue("name"))
	if err != nil {
		return err
	}
	spec, err := DecodeIndex(name, ctx.PostBody())
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
	defer s.metrics.op("repository", "ensureIndex").done()
	if err := repo.EnsureIndex(c, spec); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}
