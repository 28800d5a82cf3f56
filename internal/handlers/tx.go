package handlers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
)

// TxHeader names the transaction a repository call belongs to.
const TxHeader = "Storaged-Tx"

// txManager keeps the transactions that clients hold open across
// requests. Each has an idle timer: a client that vanishes cannot keep the
// writer (memory, SQLite) or a pinned connection (PostgreSQL) forever.
type txManager struct {
	mu       sync.Mutex
	sessions map[string]*txSession
	idle     time.Duration
	log      *slog.Logger
	closed   bool // shutting down: no new transactions
}

type txSession struct {
	id    string
	mu    sync.Mutex // one call at a time per transaction
	tx    backend.Tx
	timer *time.Timer
	ended bool
	// jobs is the job queue inside tx, once a job call has used it.
	jobs *queue.Tx
}

func newTxManager(idle time.Duration, log *slog.Logger) *txManager {
	return &txManager{sessions: map[string]*txSession{}, idle: idle, log: log}
}

func (m *txManager) open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// add keeps tx open for its client; once closeAll has run it rolls tx
// back instead, so that nothing takes the writer again during shutdown.
func (m *txManager) add(tx backend.Tx) (string, error) {
	sess := &txSession{id: backend.NewID(), tx: tx}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = tx.Rollback(context.Background())
		return "", backend.Errorf(backend.CodeUnavailable, "the daemon is shutting down")
	}
	m.sessions[sess.id] = sess
	sess.timer = time.AfterFunc(m.idle, func() { m.expire(sess) })
	m.mu.Unlock()
	return sess.id, nil
}

// acquire finds a session and locks it for one call; release must follow.
func (m *txManager) acquire(id string) (*txSession, error) {
	m.mu.Lock()
	sess := m.sessions[id]
	m.mu.Unlock()
	if sess == nil {
		return nil, backend.Errorf(backend.CodeTxNotFound, "transaction %q does not exist: it ended, or was rolled back after being idle", truncate([]byte(id)))
	}
	sess.mu.Lock()
	if sess.ended {
		sess.mu.Unlock()
		return nil, backend.Errorf(backend.CodeTxNotFound, "transaction %q has ended", truncate([]byte(id)))
	}
	sess.timer.Stop()
	return sess, nil
}

func (m *txManager) release(sess *txSession) {
	if !sess.ended {
		sess.timer.Reset(m.idle)
	}
	sess.mu.Unlock()
}

// end removes a locked session; the caller commits or rolls back.
func (m *txManager) end(sess *txSession) {
	sess.ended = true
	sess.timer.Stop()
	m.mu.Lock()
	delete(m.sessions, sess.id)
	m.mu.Unlock()
}

func (m *txManager) expire(sess *txSession) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.ended {
		return
	}
	m.end(sess)
	m.log.Warn("transaction idle too long, rolled back", "tx", sess.id, "idle", m.idle)
	if err := sess.tx.Rollback(context.Background()); err != nil {
		m.log.Error("rollback of idle transaction failed", "tx", sess.id, "err", err)
	}
}

func (m *txManager) closeAll() {
	m.mu.Lock()
	m.closed = true
	all := make([]*txSession, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	rollback := func(sess *txSession) {
		if !sess.ended {
			m.end(sess)
			_ = sess.tx.Rollback(context.Background())
		}
		sess.mu.Unlock()
	}
	// Idle transactions first: a call in flight in one transaction may be
	// waiting for a lock another (idle) one holds, and would hold up the
	// whole shutdown if we waited for it first.
	var busy []*txSession
	for _, sess := range all {
		if sess.mu.TryLock() {
			rollback(sess)
		} else {
			busy = append(busy, sess)
		}
	}
	for _, sess := range busy {
		sess.mu.Lock()
		rollback(sess)
	}
}

func (s *Server) txBegin(ctx *fasthttp.RequestCtx) error {
	if err := noOptions(ctx.PostBody()); err != nil {
		return err
	}
	c, cancel := s.ctx(0)
	defer cancel()
	tx, err := s.repo.Begin(c)
	if err != nil {
		return err
	}
	id, err := s.txs.add(tx)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusCreated, []byte(`{"id":"`+id+`"}`))
	return nil
}

func (s *Server) txEnd(ctx *fasthttp.RequestCtx, commit bool) error {
	id, err := pathParam(ctx.UserValue("id"))
	if err != nil {
		return err
	}
	if err := noOptions(ctx.PostBody()); err != nil {
		return err
	}
	sess, err := s.txs.acquire(id)
	if err != nil {
		return err
	}
	s.txs.end(sess)
	c, cancel := s.ctx(0)
	defer cancel()
	if commit {
		err = sess.tx.Commit(c)
		if err == nil && sess.jobs != nil {
			sess.jobs.Committed()
		}
	} else {
		err = sess.tx.Rollback(c)
	}
	s.txs.release(sess)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

func (s *Server) txCommit(ctx *fasthttp.RequestCtx) error   { return s.txEnd(ctx, true) }
func (s *Server) txRollback(ctx *fasthttp.RequestCtx) error { return s.txEnd(ctx, false) }
