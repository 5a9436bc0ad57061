package client

import (
	"bytes"
	"net"
	"net/netip"
	"time"
)

// Arrival times: a response's latency ends when its datagram reached the socket, not when the
// client's goroutine got to look at it. Under a 20,000-client ramp the load process has
// thousands of runnable goroutines and that second moment can be hundreds of milliseconds
// later: timestamps taken there would measure the load generator, not the registrar. So every
// UDP read is stamped (by the kernel where the platform offers it, else right after the read),
// the stamp is kept by the response's Via branch, and the client that receives the response
// takes it back (Event.Time of the Response; its own delay goes to Event.Delay).

// stampedConn is the client socket as sipgo reads it: each read also records its arrival time,
// for the read filter that runs next on the same goroutine.
type stampedConn struct {
	*net.UDPConn
	oob  []byte
	last time.Time // arrival of the datagram read last (read goroutine only)
}

func newStampedConn(c *net.UDPConn) *stampedConn {
	sc := &stampedConn{UDPConn: c, oob: make([]byte, 64)}
	enableKernelStamps(c)
	return sc
}

// ReadFrom reads a datagram and its arrival time.
func (c *stampedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, oobn, _, from, err := c.ReadMsgUDPAddrPort(b, c.oob)
	if err != nil {
		return n, nil, err
	}
	c.last = kernelStamp(c.oob[:oobn])
	if c.last.IsZero() {
		c.last = time.Now()
	}
	return n, net.UDPAddrFromAddrPort(netip.AddrPortFrom(from.Addr().Unmap(), from.Port())), nil
}

// arrivals keeps the arrival times of responses by Via branch until their client takes them;
// what nobody takes (a retransmitted response after its transaction ended) is swept after
// arrivalKeep.
type arrivals struct {
	at      map[string]time.Time
	sweepAt int
}

const arrivalKeep = 40 * time.Second // beyond Timer B (32 s): no transaction waits longer

func (a *arrivals) put(branch string, at time.Time) {
	if a.at == nil {
		a.at, a.sweepAt = map[string]time.Time{}, 1024
	}
	a.at[branch] = at
	if len(a.at) < a.sweepAt {
		return
	}
	for b, t := range a.at {
		if at.Sub(t) > arrivalKeep {
			delete(a.at, b)
		}
	}
	a.sweepAt = max(1024, 2*len(a.at))
}

func (a *arrivals) take(branch string) (time.Time, bool) {
	t, ok := a.at[branch]
	if ok {
		delete(a.at, branch)
	}
	return t, ok
}

var (
	sipResponse = []byte("SIP/2.0 ")
	branchParam = []byte("branch=")
)

// responseBranch is the Via branch of a response datagram ("" for a request or none): the first
// branch parameter, which is the top Via's, the one this client put there.
func responseBranch(data []byte) string {
	if !bytes.HasPrefix(data, sipResponse) {
		return ""
	}
	i := bytes.Index(data, branchParam)
	if i < 0 {
		return ""
	}
	v := data[i+len(branchParam):]
	if end := bytes.IndexAny(v, ";, \t\r\n"); end >= 0 {
		v = v[:end]
	}
	return string(v)
}
