package client

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestStampedConnReadsKernelTime: a datagram's arrival is stamped when it reached the socket,
// not when it was read. (Linux turns arrival stamping on a moment after the first socket asks
// for it, reading stamps meanwhile: a few tries allow for that.)
func TestStampedConnReadsKernelTime(t *testing.T) {
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	c, err := newStampedConn(udp)
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.DialUDP("udp", nil, udp.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 1500)
	for try := 0; ; try++ {
		before := time.Now()
		if _, err := out.Write([]byte("SIP/2.0 200 OK\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		// The datagram waits in the socket before it is read, as when the load process is
		// busy (real time: the kernel's clock cannot be injected).
		for time.Since(sent) < 20*time.Millisecond {
			runtime.Gosched()
		}
		n, from, at, ok, err := c.tryRead(buf)
		if err != nil || !ok || n == 0 || from != out.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("read %d from %v (%v): %v", n, from, ok, err)
		}
		if at.Before(before.Add(-time.Millisecond)) || at.After(time.Now()) {
			t.Fatalf("arrival %v outside the exchange (%v .. now)", at, before)
		}
		if !at.After(sent.Add(10 * time.Millisecond)) {
			return
		}
		if try == 10 {
			t.Fatalf("arrival %v is the read's time, not the kernel's (sent %v)", at, sent)
		}
	}
}
