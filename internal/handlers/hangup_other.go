//go:build !linux

package handlers

import "golang.org/x/sys/unix"

// peerClosed reports whether the peer of fd is gone. Without Linux's
// POLLRDHUP (darwin, the BSDs) poll tells only of a socket closed both ways
// or failed: a client that shut down only its writing side behind a
// pipelined request is not seen until it closes. A client that closes its
// socket while its request waits, as worker.stop() does, is still seen at
// once: waitReadable reads the end of stream.
func peerClosed(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}} //nolint:gosec // G115: a file descriptor is a C int
	n, err := unix.Poll(fds, 0)
	if err != nil || n == 0 {
		return false
	}
	return fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
}
