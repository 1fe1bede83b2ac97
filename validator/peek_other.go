//go:build !unix

package validator

import "net"

// unsolicitedData cannot look into a socket on this platform; a
// connection out of step is still caught when its stray bytes arrive
// with a response (strictTransport).
func unsolicitedData(net.Conn) bool { return false }
