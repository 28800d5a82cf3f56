package main

import (
	"log/slog"
	"net"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// peerCredListener closes connections whose peer (by SO_PEERCRED) is not
// in the allowlists, before a byte is read: file modes decide who may
// reach the socket, this decides who may talk to the daemon.
type peerCredListener struct {
	net.Listener
	uids, gids []int
	log        *slog.Logger
}

func (l *peerCredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, err := peerCred(c)
		// The daemon's own watchdog probe is let in whatever the lists say.
		if err == nil && (slices.Contains(l.uids, int(cred.Uid)) || slices.Contains(l.gids, int(cred.Gid)) || int(cred.Pid) == os.Getpid()) {
			return c, nil
		}
		if err != nil {
			l.log.Warn("connection refused: cannot read its peer credentials", "err", err)
		} else {
			l.log.Warn("connection refused: peer not in STORAGED_ALLOWED_UIDS/GIDS", "uid", cred.Uid, "gid", cred.Gid, "pid", cred.Pid)
		}
		c.Close()
	}
}

func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, net.UnknownNetworkError("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, credErr
}
