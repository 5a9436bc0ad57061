//go:build !linux

package client

import (
	"net"
	"net/netip"
	"time"
)

// Without kernel stamps, a datagram's arrival is when the read returned.
func enableKernelStamps(*net.UDPConn) {}

// read reads a datagram, where it came from and when it arrived (one reader at a time).
func (c *stampedConn) read(b []byte) (int, netip.AddrPort, time.Time, error) {
	n, _, _, from, err := c.ReadMsgUDPAddrPort(b, nil)
	if err != nil {
		return n, from, time.Time{}, err
	}
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), time.Now(), nil
}
