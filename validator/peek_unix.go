//go:build unix

package validator

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// unsolicitedData reports whether an idle connection has bytes waiting
// that no request asked for, or was closed by the other end: either way
// it must not carry a call. It peeks at the socket without blocking (for
// TLS, at the socket under it: any record arriving on an idle connection
// is out of step). A connection it cannot look into is trusted.
func unsolicitedData(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for readability
	})
	switch {
	case err != nil:
		return true
	case errors.Is(perr, syscall.EAGAIN) || errors.Is(perr, syscall.EWOULDBLOCK):
		return false // nothing waiting: the normal case
	case errors.Is(perr, syscall.EINTR):
		return false
	}
	// No error: a byte nobody asked for, or none and the other end closed.
	return true
}
