package client

import (
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enableKernelStamps asks the kernel to stamp each datagram on arrival (SO_TIMESTAMPNS).
func enableKernelStamps(c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
}

// kernelStamp reads the SO_TIMESTAMPNS control message of a read (zero when absent).
func kernelStamp(oob []byte) time.Time {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return time.Time{}
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			return time.Unix(ts.Unix())
		}
		oob = rest
	}
	return time.Time{}
}

// tryRead reads a datagram if one is waiting, without blocking (ok false: none is).
func (c *stampedConn) tryRead(b []byte) (n int, from netip.AddrPort, at time.Time, ok bool, err error) {
	var oobn int
	var sa syscall.Sockaddr
	var rerr error
	err = c.rc.Read(func(fd uintptr) bool {
		// the standard library's, not x/sys/unix's: that one asks the socket's protocol with
		// a getsockopt on every read (to tell L2TP addresses), a second syscall per datagram
		n, oobn, _, sa, rerr = syscall.Recvmsg(int(fd), b, c.oob, syscall.MSG_DONTWAIT)
		return true
	})
	if err == nil {
		err = rerr
	}
	if err == unix.EAGAIN || err == unix.EINTR {
		return 0, from, at, false, nil
	}
	if err != nil {
		return 0, from, at, false, err
	}
	if sa4, ok := sa.(*syscall.SockaddrInet4); ok {
		from = netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port))
	} else if sa6, ok := sa.(*syscall.SockaddrInet6); ok {
		from = netip.AddrPortFrom(netip.AddrFrom16(sa6.Addr).Unmap(), uint16(sa6.Port))
	}
	at = kernelStamp(c.oob[:oobn])
	if at.IsZero() {
		at = time.Now()
	}
	return n, from, at, true, nil
}
