package client

import (
	"net"
	"net/netip"
	"time"
)

// Arrival times: a response's latency ends when its datagram reached the socket, not when the
// client's goroutine got to look at it. Under a 20,000-client ramp the load process has
// thousands of runnable goroutines and that second moment can be hundreds of milliseconds
// later: timestamps taken there would measure the load generator, not the registrar. So every
// UDP read is stamped, by the kernel where the platform offers it, else right after the read,
// and the stamp travels with the response to the client that waits for it.

// stampedConn reads datagrams with their arrival times.
type stampedConn struct {
	*net.UDPConn
	oob []byte
}

func newStampedConn(c *net.UDPConn) *stampedConn {
	enableKernelStamps(c)
	return &stampedConn{UDPConn: c, oob: make([]byte, 64)}
}

// read reads a datagram, where it came from and when it arrived (one reader at a time).
func (c *stampedConn) read(b []byte) (int, netip.AddrPort, time.Time, error) {
	n, oobn, _, from, err := c.ReadMsgUDPAddrPort(b, c.oob)
	if err != nil {
		return n, from, time.Time{}, err
	}
	at := kernelStamp(c.oob[:oobn])
	if at.IsZero() {
		at = time.Now()
	}
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), at, nil
}
