package handlers

import (
	"bytes"
	"context"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
)

// The job-browsing routes (issue 20): GET /v1/queues, POST
// /v1/queues/{q}/jobs/find, POST /v1/queues/{q}/jobs/retry|cancel|delete
// and PATCH /v1/jobs/{id}. Filters are parsed by the records' parser
// (backend.ParseFilter), so a path or operator refused there is refused
// here, before any store sees it.

type findBody struct {
	Status json.RawMessage `json:"status"`
	Key    *string         `json:"key"`
	Filter json.RawMessage `json:"filter"`
	Sort   *string         `json:"sort"`
	Order  *string         `json:"order"`
	Limit  *float64        `json:"limit"`
	After  *string         `json:"after"`
}

// statuses reads "status": one status or an array of them.
func statuses(raw json.RawMessage) ([]backend.JobStatus, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []backend.JobStatus{backend.JobStatus(one)}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, backend.Errorf(backend.CodeInvalidArgument, `status must be a status or an array of them, such as ["failed"]`)
	}
	if len(list) == 0 {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "status must not be an empty array (leave it out for every status)")
	}
	out := make([]backend.JobStatus, len(list))
	for i, s := range list {
		out[i] = backend.JobStatus(s)
	}
	return out, nil
}

func jobFilterOf(raw json.RawMessage) (backend.Filter, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	return backend.ParseFilter(raw)
}

// DecodeFind decodes the body of POST /v1/queues/{q}/jobs/find.
func DecodeFind(b []byte) (queue.FindParams, error) {
	var body findBody
	var p queue.FindParams
	if err := decodeStrict(b, &body); err != nil {
		return p, err
	}
	var err error
	if p.Statuses, err = statuses(body.Status); err != nil {
		return p, err
	}
	if body.Key != nil {
		if *body.Key == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, "key must not be empty")
		}
		p.Key = *body.Key
	}
	if p.Filter, err = jobFilterOf(body.Filter); err != nil {
		return p, err
	}
	if body.Sort != nil {
		p.Sort = backend.JobSort(*body.Sort)
		if p.Sort == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, `sort must be "createdAt", "runAt" or "finishedAt"`)
		}
	}
	if body.Order != nil {
		p.Order = *body.Order
		if p.Order == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, `order must be "asc" or "desc"`)
		}
	}
	if p.Limit, err = optInt("limit", body.Limit, 1, queue.MaxFindLimit, 0); err != nil {
		return p, err
	}
	if body.After != nil {
		if *body.After == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, "after must be a cursor from a previous page's next")
		}
		p.After = *body.After
	}
	return p, nil
}

type bulkBody struct {
	IDs    json.RawMessage `json:"ids"`
	Status json.RawMessage `json:"status"`
	Key    *string         `json:"key"`
	Filter json.RawMessage `json:"filter"`
}

// DecodeBulk decodes the body of POST /v1/queues/{q}/jobs/retry|cancel|delete.
func DecodeBulk(b []byte) (queue.BulkParams, error) {
	var body bulkBody
	var p queue.BulkParams
	if len(bytes.TrimSpace(b)) == 0 {
		return p, backend.Errorf(backend.CodeInvalidArgument, `the body selects the jobs: {"ids": [...]} or {"status": [...], "key": "...", "filter": {...}}`)
	}
	if err := decodeStrict(b, &body); err != nil {
		return p, err
	}
	if body.IDs != nil {
		// "ids": null or [] selects nothing, and is refused as such.
		p.IDs = []string{}
		if !bytes.Equal(bytes.TrimSpace(body.IDs), []byte("null")) {
			if err := json.Unmarshal(body.IDs, &p.IDs); err != nil {
				return p, backend.Errorf(backend.CodeInvalidArgument, "ids must be an array of job ids")
			}
		}
	}
	var err error
	if p.Statuses, err = statuses(body.Status); err != nil {
		return p, err
	}
	if body.Key != nil {
		if *body.Key == "" {
			return p, backend.Errorf(backend.CodeInvalidArgument, "key must not be empty")
		}
		p.Key = *body.Key
	}
	if p.Filter, err = jobFilterOf(body.Filter); err != nil {
		return p, err
	}
	return p, nil
}

type patchBody struct {
	RunAt    *string         `json:"runAt"`
	Priority *float64        `json:"priority"`
	Data     json.RawMessage `json:"data"`
}

// DecodeJobPatch decodes the body of PATCH /v1/jobs/{id}.
func DecodeJobPatch(b []byte) (queue.JobPatch, error) {
	var body patchBody
	var p queue.JobPatch
	if err := decodeStrict(b, &body); err != nil {
		return p, err
	}
	if body.RunAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *body.RunAt)
		if err != nil {
			return p, backend.Errorf(backend.CodeInvalidArgument, "runAt must be an RFC 3339 time such as 2026-01-02T15:04:05.000Z")
		}
		p.RunAt = &t
	}
	if body.Priority != nil {
		n, err := integer("priority", body.Priority)
		if err != nil {
			return p, err
		}
		p.Priority = &n
	}
	if body.Data != nil {
		p.Data = body.Data
	}
	return p, nil
}

func (s *Server) listQueues(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, nothing, func(c context.Context, _ none) ([]queue.Overview, error) { return s.jobs.Queues(c) }, fasthttp.StatusOK)
}

var (
	findReq  = queueAnd(DecodeFind)
	bulkReq  = queueAnd(DecodeBulk)
	patchReq = jobAnd(DecodeJobPatch)
)

func (s *Server) findJobs(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, findReq, func(c context.Context, in inPath[queue.FindParams]) (queue.FoundJobs, error) {
		return s.jobs.FindJobs(c, in.name, in.body)
	}, fasthttp.StatusOK)
}

func (s *Server) bulk(action queue.BulkAction) handlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		return serve(s, ctx, bulkReq, func(c context.Context, in inPath[queue.BulkParams]) (queue.BulkResult, error) {
			return s.jobs.Bulk(c, in.name, action, in.body)
		}, fasthttp.StatusOK)
	}
}

func (s *Server) patchJob(ctx *fasthttp.RequestCtx) error {
	return serve(s, ctx, patchReq, func(c context.Context, in inPath[queue.JobPatch]) (*backend.Job, error) {
		return s.jobs.UpdateJob(c, in.name, in.body)
	}, fasthttp.StatusOK)
}

// collectionOverview is one collection of GET /v1/repos.
type collectionOverview struct {
	Collection string          `json:"collection"`
	Count      int64           `json:"count"`
	Indexes    []indexOverview `json:"indexes"`
}

type indexOverview struct {
	Name   string   `json:"name"`
	Fields []string `json:"fields"`
	Unique bool     `json:"unique"`
}

// listCollections serves GET /v1/repos: every collection with its record
// count (live records, one count each) and its indexes.
func (s *Server) listCollections(ctx *fasthttp.RequestCtx) error {
	cat, ok := backend.UnwrapRepository(s.repo).(backend.Catalog)
	if !ok {
		return backend.Errorf(backend.CodeInvalidArgument, "this records backend cannot list its collections")
	}
	c, cancel := s.callCtx(ctx, 0)
	defer cancel()
	list, err := cat.Collections(c)
	if err != nil {
		return err
	}
	out := make([]collectionOverview, len(list))
	for i, info := range list {
		n, err := s.repo.Repository(info.Name).Count(c, backend.MatchAll)
		if err != nil {
			return err
		}
		out[i] = collectionOverview{Collection: info.Name, Count: n, Indexes: make([]indexOverview, len(info.Indexes))}
		for k, ix := range info.Indexes {
			fields := make([]string, len(ix.Fields))
			for f, p := range ix.Fields {
				fields[f] = p.String()
			}
			out[i].Indexes[k] = indexOverview{Name: ix.Name, Fields: fields, Unique: ix.Unique}
		}
	}
	return writeValue(ctx, fasthttp.StatusOK, out)
}
