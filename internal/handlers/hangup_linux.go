package handlers

import "golang.org/x/sys/unix"

// peerClosed reports whether the peer of fd has shut down its side (or the
// socket failed), whether or not unread bytes remain.
func peerClosed(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}} //nolint:gosec // G115: a file descriptor is a C int
	n, err := unix.Poll(fds, 0)
	if err != nil || n == 0 {
		return false
	}
	return fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}
