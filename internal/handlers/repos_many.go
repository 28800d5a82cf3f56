package handlers

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/fasthttp/router"
	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

// Routes of issue 18: versions (ETag, If-Match), upsert, bulk calls.
// Wire choices are in docs/decisions.md ("Record versions and bulk calls").

// MaxBatch bounds the operations of one POST /v1/repos/{c}/batch: one
// transaction, which on SQLite holds the only writer while it runs.
const MaxBatch = 1000

func (s *Server) repoRoutesV2(r *router.Router) {
	r.PUT("/v1/repos/{collection}/{id}", s.route("upsert", s.upsert))
	r.POST("/v1/repos/{collection}/get", s.route("getMany", s.getMany))
	r.POST("/v1/repos/{collection}/updateMany", s.route("updateMany", s.updateMany))
	r.POST("/v1/repos/{collection}/deleteMany", s.route("deleteMany", s.deleteMany))
	r.POST("/v1/repos/{collection}/batch", s.route("batch", s.batch))
	// A record whose id is "changes" is read with POST …/get: the static
	// segment wins over {id}.
	r.GET("/v1/repos/{collection}/changes", s.route("changes", s.changes))
}

// setETag sets the ETag of a single-record answer: the version, quoted
// as RFC 9110 wants an entity tag.
func setETag(ctx *fasthttp.RequestCtx, version int64) {
	var b [24]byte // "-9223372036854775808" fits, quotes and all
	v := append(strconv.AppendInt(append(b[:0], '"'), version, 10), '"')
	ctx.Response.Header.SetBytesV("ETag", v)
}

// ifMatch reads If-Match: one version, quoted or not (W/ is ignored: the
// versions are exact). 0 when absent.
func ifMatch(ctx *fasthttp.RequestCtx) (int64, error) {
	raw := bytes.TrimSpace(ctx.Request.Header.Peek("If-Match"))
	if len(raw) == 0 {
		return 0, nil
	}
	return parseVersion("If-Match", string(raw))
}

func parseVersion(what, s string) (int64, error) {
	v := s
	if len(v) > 2 && v[:2] == "W/" {
		v = v[2:]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, backend.Errorf(backend.CodeInvalidArgument, "%s must be one record version as its ETag gives it (\"3\"), got %q", what, truncate([]byte(s)))
	}
	return n, nil
}

func (s *Server) upsert(ctx *fasthttp.RequestCtx) error {
	id, err := recordID(ctx)
	if err != nil {
		return err
	}
	var p backend.PutParams
	if p.IfMatch, err = ifMatch(ctx); err != nil {
		return err
	}
	if inm := bytes.TrimSpace(ctx.Request.Header.Peek("If-None-Match")); len(inm) > 0 {
		if string(inm) != "*" {
			return backend.Errorf(backend.CodeInvalidArgument, "If-None-Match on PUT must be * (create only)")
		}
		p.IfNoneMatch = true
	}
	if p.IfMatch != 0 && p.IfNoneMatch {
		return backend.Errorf(backend.CodeInvalidArgument, "If-Match and If-None-Match cannot both be sent")
	}
	if p.ExpiresAt, err = expiryOf(ctx); err != nil {
		return err
	}
	doc, err := decodeObject(ctx.PostBody(), "record")
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
	defer s.metrics.op("repository", "upsert").done()
	it, created, err := repo.Put(c, id, doc, p)
	if err != nil {
		return err
	}
	status := fasthttp.StatusOK
	if created {
		status = fasthttp.StatusCreated
	}
	setETag(ctx, it.Version)
	writeRecord(ctx, status, it.Rec)
	return nil
}

// writeItems answers {"items": [record|null…], "versions": [n|null…]}:
// versions stay out of the records, in a parallel array.
func writeItems(ctx *fasthttp.RequestCtx, items []backend.Item, extra []byte) {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		if it.Rec == nil {
			b.WriteString("null")
		} else {
			b.Write(it.Rec)
		}
	}
	b.WriteString(`],"versions":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		if it.Rec == nil {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatInt(it.Version, 10))
		}
	}
	b.WriteByte(']')
	b.Write(extra)
	b.WriteByte('}')
	writeJSON(ctx, fasthttp.StatusOK, b.Bytes())
}

func (s *Server) getMany(ctx *fasthttp.RequestCtx) error {
	var body struct {
		IDs    *[]string       `json:"ids"`
		Fields json.RawMessage `json:"fields"`
	}
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		return err
	}
	if body.IDs == nil {
		return backend.Errorf(backend.CodeInvalidArgument, "ids is required")
	}
	ids := *body.IDs
	fields, err := backend.ParseFieldsJSON(body.Fields)
	if err != nil {
		return err
	}
	if len(ids) > backend.MaxGetMany {
		return backend.Errorf(backend.CodeInvalidArgument, "ids holds %d ids, at most %d allowed", len(ids), backend.MaxGetMany)
	}
	for _, id := range ids {
		if err := backend.ValidateID(id); err != nil {
			return err
		}
	}
	repo, done, err := s.repository(ctx)
	if err != nil {
		return err
	}
	defer done()
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("repository", "getMany").done()
	items, err := repo.GetMany(c, ids)
	if err != nil {
		return err
	}
	if err := project(items, fields); err != nil {
		return err
	}
	writeItems(ctx, items, nil)
	return nil
}

// filterOf parses a required filter: a missing one is refused, so that a
// forgotten key cannot update or delete everything ({} says that).
func filterOf(raw json.RawMessage) (backend.Filter, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "filter is required ({} matches every record)")
	}
	return backend.ParseFilter(raw)
}

// manyBody is the body of updateMany and deleteMany.
type manyBody struct {
	Filter json.RawMessage `json:"filter"`
	Update map[string]any  `json:"update"`
}

// filterUpdate is what updateMany reads.
type filterUpdate struct {
	filter backend.Filter
	update backend.Update
}

func decodeUpdateMany(b []byte) (filterUpdate, error) {
	var body manyBody
	var in filterUpdate
	if err := decodeStrict(b, &body); err != nil {
		return in, err
	}
	var err error
	if in.filter, err = filterOf(body.Filter); err != nil {
		return in, err
	}
	in.update, err = backend.ParseUpdate(body.Update)
	return in, err
}

func decodeDeleteMany(b []byte) (backend.Filter, error) {
	var body struct {
		Filter json.RawMessage `json:"filter"`
	}
	if err := decodeStrict(b, &body); err != nil {
		return nil, err
	}
	return filterOf(body.Filter)
}

func (s *Server) updateMany(ctx *fasthttp.RequestCtx) error {
	return serveRepo(s, ctx, "updateMany", decodeUpdateMany, func(c context.Context, repo backend.Repository, in filterUpdate) (backend.UpdateManyResult, error) {
		return repo.UpdateMany(c, in.filter, in.update)
	})
}

// deleted is the answer of deleteMany.
type deleted struct {
	Deleted int64 `json:"deleted"`
}

func (s *Server) deleteMany(ctx *fasthttp.RequestCtx) error {
	return serveRepo(s, ctx, "deleteMany", decodeDeleteMany, func(c context.Context, repo backend.Repository, f backend.Filter) (deleted, error) {
		n, err := repo.DeleteMany(c, f)
		return deleted{n}, err
	})
}

// batchOp is one operation of a batch.
type batchOp struct {
	Op          string         `json:"op"`
	ID          *string        `json:"id"`
	Data        map[string]any `json:"data"`
	IfMatch     any            `json:"ifMatch"`
	IfNoneMatch bool           `json:"ifNoneMatch"`
	TTLMs       *float64       `json:"ttlMs"`
	ExpiresAt   string         `json:"expiresAt"`

	update  backend.Update
	match   int64
	expires int64
}

// batchResult is one operation's outcome; record is absent for a delete.
type batchResult struct {
	ID      string          `json:"id"`
	Version int64           `json:"version,omitempty"`
	Created *bool           `json:"created,omitempty"`
	Record  json.RawMessage `json:"record,omitempty"`
}

func decodeBatch(b []byte) ([]batchOp, error) {
	if err := checkBody(b); err != nil {
		return nil, err
	}
	if b = bytes.TrimSpace(b); len(b) == 0 || b[0] != '[' {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "batch must be a JSON array of operations")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ops []batchOp
	if err := dec.Decode(&ops); err != nil {
		return nil, jsonError(err)
	}
	if len(ops) == 0 || len(ops) > MaxBatch {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "batch holds %d operations; 1 to %d allowed", len(ops), MaxBatch)
	}
	for i := range ops {
		op := &ops[i]
		fail := func(err error) ([]batchOp, error) {
			if be := backend.AsError(err); be != nil {
				return nil, backend.Errorf(be.Code, "batch operation %d: %s", i, be.Message)
			}
			return nil, err
		}
		if op.ID != nil {
			if err := backend.ValidateID(*op.ID); err != nil {
				return fail(err)
			}
		} else if op.Op != "create" {
			return fail(backend.Errorf(backend.CodeInvalidArgument, "%s needs an id", op.Op))
		}
		switch v := op.IfMatch.(type) {
		case nil:
		case float64:
			n, err := backend.IntInRange("ifMatch", v, 1, 1<<53)
			if err != nil {
				return fail(err)
			}
			op.match = int64(n)
		case string:
			n, err := parseVersion("ifMatch", v)
			if err != nil {
				return fail(err)
			}
			op.match = n
		default:
			return fail(backend.Errorf(backend.CodeInvalidArgument, "ifMatch must be a version"))
		}
		switch op.Op {
		case "create", "put":
			if op.Data == nil {
				return fail(backend.Errorf(backend.CodeInvalidArgument, "%s needs data, a record", op.Op))
			}
			if op.Op == "create" && (op.match != 0 || op.IfNoneMatch) {
				return fail(backend.Errorf(backend.CodeInvalidArgument, "create takes no condition"))
			}
		case "update":
			u, err := backend.ParseUpdate(op.Data)
			if err != nil {
				return fail(err)
			}
			op.update = u
		case "delete":
			if op.Data != nil {
				return fail(backend.Errorf(backend.CodeInvalidArgument, "delete takes no data"))
			}
		default:
			return fail(backend.Errorf(backend.CodeInvalidArgument, "op must be create, put, update or delete, got %q", truncate([]byte(op.Op))))
		}
		if op.IfNoneMatch && op.Op != "put" {
			return fail(backend.Errorf(backend.CodeInvalidArgument, "ifNoneMatch is for put only"))
		}
		ttl := ""
		if op.TTLMs != nil {
			ttl = strconv.FormatFloat(*op.TTLMs, 'f', -1, 64)
		}
		var err error
		if op.expires, err = parseExpiry(ttl, op.ExpiresAt); err != nil {
			return fail(err)
		}
		if op.expires != 0 && op.Op == "delete" {
			return fail(backend.Errorf(backend.CodeInvalidArgument, "delete takes no expiry"))
		}
	}
	return ops, nil
}

// batch runs every operation in one transaction: all apply or none does,
// and the error names the operation that failed. Inside a Storaged-Tx
// the operations are part of that transaction instead.
func (s *Server) batch(ctx *fasthttp.RequestCtx) error {
	ops, err := decodeBatch(ctx.PostBody())
	if err != nil {
		return err
	}
	name, err := pathParam(ctx.UserValue("collection"))
	if err != nil {
		return err
	}
	if err := backend.ValidateName("collection", name); err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	defer s.metrics.op("repository", "batch").done()
	results := make([]batchResult, len(ops))
	run := func(repo backend.Repository) error {
		for i, op := range ops {
			if err := runBatchOp(c, repo, op, &results[i]); err != nil {
				if be := backend.AsError(err); be != nil && be.Code != backend.CodeInternal {
					return backend.Errorf(be.Code, "batch operation %d (%s): %s", i, op.Op, be.Message)
				}
				return fmt.Errorf("batch operation %d: %w", i, err)
			}
		}
		return nil
	}
	if len(ctx.Request.Header.Peek(TxHeader)) > 0 {
		repo, done, err := s.repository(ctx)
		if err != nil {
			return err
		}
		defer done()
		err = run(repo)
		if err != nil {
			return err
		}
	} else if err := backend.Transaction(c, s.repo, func(tx backend.Tx) error { return run(tx.Repository(name)) }); err != nil {
		return err
	}
	out, err := backend.Marshal(map[string]any{"results": results})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
	return nil
}

func runBatchOp(c context.Context, repo backend.Repository, op batchOp, res *batchResult) error {
	switch op.Op {
	case "create":
		if op.ID != nil {
			if v, ok := op.Data["id"]; ok && v != *op.ID {
				return backend.Errorf(backend.CodeInvalidArgument, "data.id and id differ")
			}
			op.Data["id"] = *op.ID
		}
		it, err := create(c, repo, op.Data, op.expires)
		if err != nil {
			return err
		}
		created := true
		*res = batchResult{ID: op.Data["id"].(string), Version: 1, Created: &created, Record: json.RawMessage(it.Rec)}
	case "put":
		it, created, err := repo.Put(c, *op.ID, op.Data, backend.PutParams{IfMatch: op.match, IfNoneMatch: op.IfNoneMatch, ExpiresAt: op.expires})
		if err != nil {
			return err
		}
		*res = batchResult{ID: *op.ID, Version: it.Version, Created: &created, Record: json.RawMessage(it.Rec)}
	case "update":
		it, err := repo.Modify(c, *op.ID, op.update, backend.WriteParams{IfMatch: op.match, ExpiresAt: op.expires})
		if err != nil {
			return err
		}
		*res = batchResult{ID: *op.ID, Version: it.Version, Record: json.RawMessage(it.Rec)}
	case "delete":
		if err := repo.Remove(c, *op.ID, backend.WriteParams{IfMatch: op.match}); err != nil {
			return err
		}
		*res = batchResult{ID: *op.ID}
	}
	return nil
}

func project(items []backend.Item, fields []backend.Path) error {
	if len(fields) == 0 {
		return nil
	}
	for i := range items {
		var err error
		if items[i].Rec, err = backend.Project(items[i].Rec, fields); err != nil {
			return err
		}
	}
	return nil
}

// writePage answers a find with after or page: {"items", "versions",
// "next"}, next null after the last page.
func writePage(ctx *fasthttp.RequestCtx, items []backend.Item, next string, fields []backend.Path) error {
	if err := project(items, fields); err != nil {
		return err
	}
	extra := []byte(`,"next":null`)
	if next != "" {
		extra = []byte(`,"next":"` + next + `"`)
	}
	writeItems(ctx, items, extra)
	return nil
}

// expiryOf reads ?ttlMs= or ?expiresAt= (RFC 3339) of a write: the
// expiry in Unix ms, 0 when neither is sent.
func expiryOf(ctx *fasthttp.RequestCtx) (int64, error) {
	args := ctx.QueryArgs()
	return parseExpiry(string(args.Peek("ttlMs")), string(args.Peek("expiresAt")))
}

func parseExpiry(ttl, at string) (int64, error) {
	switch {
	case ttl != "" && at != "":
		return 0, backend.Errorf(backend.CodeInvalidArgument, "send ttlMs or expiresAt, not both")
	case ttl != "":
		n, err := strconv.ParseInt(ttl, 10, 64)
		if err != nil || n < 1 || n > backend.MaxTTL.Milliseconds() {
			return 0, backend.Errorf(backend.CodeInvalidArgument, "ttlMs must be an integer from 1 to %d", backend.MaxTTL.Milliseconds())
		}
		return backend.Now().UnixMilli() + n, nil
	case at != "":
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return 0, backend.Errorf(backend.CodeInvalidArgument, "expiresAt must be an RFC 3339 time like 2030-01-02T15:04:05Z")
		}
		if ms := t.UnixMilli(); ms > 0 {
			return ms, nil
		}
		return 0, backend.Errorf(backend.CodeInvalidArgument, "expiresAt must be after 1970")
	}
	return 0, nil
}

// create is Create, or with an expiry a create-only Put (Create has no
// options): the same record, the same conflict for a taken id.
func create(c context.Context, repo backend.Repository, doc map[string]any, expires int64) (backend.Item, error) {
	if expires == 0 {
		rec, err := repo.Create(c, doc)
		return backend.Item{Rec: rec, Version: 1}, err
	}
	id, ok := doc["id"].(string)
	if _, present := doc["id"]; !present {
		id, ok = backend.NewID(), true
	}
	if !ok {
		return backend.Item{}, backend.Errorf(backend.CodeInvalidArgument, "id must be a string")
	}
	it, _, err := repo.Put(c, id, doc, backend.PutParams{IfNoneMatch: true, ExpiresAt: expires})
	return it, err
}

// changes answers GET /v1/repos/{c}/changes?after=&waitMs=&limit=:
// {"changes": [...], "next": "<cursor>"}. Without after it follows the
// collection from now on. A long poll returns as soon as one change is
// there, or empty when waitMs has passed.
func (s *Server) changes(ctx *fasthttp.RequestCtx) error {
	name, err := pathParam(ctx.UserValue("collection"))
	if err != nil {
		return err
	}
	if err := backend.ValidateName("collection", name); err != nil {
		return err
	}
	if len(ctx.Request.Header.Peek(TxHeader)) > 0 {
		return backend.Errorf(backend.CodeInvalidArgument, "changes cannot be read inside a transaction")
	}
	args := ctx.QueryArgs()
	after, err := backend.ParseChangeCursor(string(args.Peek("after")))
	if err != nil {
		return err
	}
	wait, limit := time.Duration(0), backend.MaxChanges
	if v := args.Peek("waitMs"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || time.Duration(n)*time.Millisecond > backend.MaxWait {
			return backend.Errorf(backend.CodeInvalidArgument, "waitMs must be between 0 and %d", backend.MaxWait.Milliseconds())
		}
		wait = time.Duration(n) * time.Millisecond
	}
	if v := args.Peek("limit"); len(v) > 0 {
		if limit, err = strconv.Atoi(string(v)); err != nil || limit < 1 || limit > backend.MaxChanges {
			return backend.Errorf(backend.CodeInvalidArgument, "limit must be between 1 and %d", backend.MaxChanges)
		}
	}
	log, ok := s.repo.(backend.ChangeLog)
	if !ok {
		return backend.Errorf(backend.CodeUnavailable, "this repository backend keeps no change log")
	}
	c, done := s.pollCtx(ctx, wait)
	defer done()
	defer s.metrics.op("repository", "changes").done()
	changes, next, err := backend.WaitChanges(c, log, name, after, limit, wait)
	if err != nil {
		return err
	}
	if changes == nil {
		changes = []backend.Change{}
	}
	out, err := backend.Marshal(struct {
		Changes []backend.Change `json:"changes"`
		Next    string           `json:"next"`
	}{changes, strconv.FormatInt(next, 10)})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
	return nil
}
