package testutil

import (
	"io"
	"net"
	"sync"
	"testing"
)

// FaultProxy forwards TCP connections to a server (PostgreSQL, Redis) and
// can cut them the way a network or a crashing server does: in the middle
// of a request, after the client sent it and before any answer.
type FaultProxy struct {
	Addr string // host:port to connect to instead of the server's

	target string
	ln     net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]net.Conn // client side → server side
	cuts   int                   // cut this many more requests
	reset  bool                  // cut with RST instead of FIN
}

// StartFaultProxy listens on a free loopback port and forwards to target.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]net.Conn{}}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for c, s := range p.conns {
			c.Close()
			s.Close()
		}
	})
	return p
}

// CutRequests makes the proxy drop the next n writes clients send and close
// their connections (with a reset if reset is true, else an orderly end
// of stream), so that those requests are lost mid-flight, retries
// included.
func (p *FaultProxy) CutRequests(n int, reset bool) {
	p.mu.Lock()
	p.cuts, p.reset = n, reset
	p.mu.Unlock()
}

func (p *FaultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c] = s
		p.mu.Unlock()
		go func() { _, _ = io.Copy(c, s); c.Close() }()
		go p.forward(c, s)
	}
}

func (p *FaultProxy) forward(c, s net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
		s.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut, reset := p.cuts > 0, p.reset
			if cut {
				p.cuts--
			}
			p.mu.Unlock()
			if cut {
				if tc, ok := c.(*net.TCPConn); ok && reset {
					_ = tc.SetLinger(0)
				}
				return
			}
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
