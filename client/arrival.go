package client

import (
	"net"
	"syscall"
)

// Arrival times: a response's latency ends when its datagram reached the socket, not when the
// client got to look at it. Under a 20,000-client ramp the load process is busy and that second
// moment can be hundreds of milliseconds later: timestamps taken there would measure the load
// generator, not the registrar. So every UDP read is stamped, by the kernel where the platform
// offers it, else right after the read, and the stamp travels with the response to the client
// that waits for it.

// stampedConn reads datagrams with their arrival times.
type stampedConn struct {
	*net.UDPConn
	rc  syscall.RawConn
	oob []byte
}

func newStampedConn(c *net.UDPConn) (*stampedConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	enableKernelStamps(c)
	return &stampedConn{UDPConn: c, rc: rc, oob: make([]byte, 64)}, nil
}
