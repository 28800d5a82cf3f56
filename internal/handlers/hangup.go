package handlers

import (
	"context"
	"errors"
	"github.com/valyala/fasthttp"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A long poll must not hand a job to a client that has gone: worker.stop()
// and every graceful app restart close the socket of a waiting dequeue.
// fasthttp does not read a connection while its handler runs, so the
// handler watches for the hang-up itself, without consuming a byte that a
// pipelining client may have sent already.

// rawConn returns the socket under c, or nil if c has none (a test
// transport), in which case hang-ups go unnoticed as before.
func rawConn(c net.Conn) syscall.RawConn {
	for c != nil {
		if sc, ok := c.(syscall.Conn); ok {
			raw, err := sc.SyscallConn()
			if err != nil {
				return nil
			}
			return raw
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// clientGone checks, without waiting, whether the client of c hung up.
func clientGone(c net.Conn) bool {
	raw := rawConn(c)
	if raw == nil {
		return false
	}
	gone := false
	_ = raw.Control(func(fd uintptr) { gone = peerClosed(fd) })
	return gone
}

// pollCtx is the context of a call that may wait up to wait (a long
// poll): the call's own (callCtx, lengthened by wait), which a wait also
// ends when the client hangs up, so that it never claims or reads what
// nobody will receive. done must be called before the handler returns.
func (s *Server) pollCtx(ctx *fasthttp.RequestCtx, wait time.Duration) (context.Context, func()) {
	c, cancel := s.callCtx(ctx, wait)
	if wait <= 0 {
		return c, cancel
	}
	c, stop := watchHangup(c, ctx.Conn())
	return c, func() { stop(); cancel() }
}

// watchHangup returns a context that ends when parent does or when the
// client of c hangs up. stop must be called before the handler returns:
// it ends the watch and leaves the connection as fasthttp expects it.
func watchHangup(parent context.Context, c net.Conn) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	raw := rawConn(c)
	if raw == nil {
		return ctx, cancel
	}
	// A read deadline fasthttp set for reading the request must not cut
	// the wait short; fasthttp sets a fresh one before its next read.
	_ = c.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		if waitReadable(raw) {
			cancel()
			return
		}
		// Bytes are waiting (a pipelined request): the socket stays
		// readable, so look for a hang-up now and then instead.
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if clientGone(c) {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, func() {
		close(quit)
		// Wake the goroutine out of its wait for readability, then give
		// the connection back without a deadline (fasthttp sets its own
		// before it reads again).
		_ = c.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = c.SetReadDeadline(time.Time{})
		cancel()
	}
}

// waitReadable blocks in the runtime's poller until the socket is readable
// or its read deadline passes, and reports whether the client hung up. It
// returns false when bytes are waiting with the connection still open, or
// when the wait was interrupted.
func waitReadable(raw syscall.RawConn) (gone bool) {
	var buf [1]byte
	err := raw.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return false // nothing yet: wait for readability
		case err != nil || n == 0:
			gone = true // reset, or end of stream
		default:
			gone = peerClosed(fd) // bytes, then perhaps a FIN behind them
		}
		return true
	})
	return gone && err == nil
}
