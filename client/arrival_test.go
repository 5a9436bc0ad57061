package client

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func TestResponseBranch(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK.abc;rport=5060\r\n\r\n", "z9hG4bK.abc"},
		{"SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKother\r\n\r\n", "z9hG4bKx"},
		{"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKend", "z9hG4bKend"},
		{"REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKreq\r\n\r\n", ""},
		{"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n\r\n", ""},
	} {
		if got := responseBranch([]byte(tc.in)); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestArrivalsSwept: stamps nobody takes (a response retransmitted after its transaction
// ended) go once they are older than any transaction; taken ones go at once.
func TestArrivalsSwept(t *testing.T) {
	var a arrivals
	t0 := time.Unix(1700000000, 0)
	a.put("taken", t0)
	if at, ok := a.take("taken"); !ok || !at.Equal(t0) {
		t.Fatalf("take: %v %v", at, ok)
	}
	if _, ok := a.take("taken"); ok {
		t.Fatal("taken twice")
	}
	for i := range 5000 {
		a.put(string(rune('a'+i%26))+time.Duration(i).String(), t0.Add(time.Duration(i)*20*time.Millisecond))
	}
	// 5,000 stamps 20 ms apart span 100 s: only those within arrivalKeep of the newest stay
	// (plus what arrived since the last sweep).
	if n := len(a.at); n > 2*int(arrivalKeep/(20*time.Millisecond))+1024 {
		t.Fatalf("%d stamps kept", n)
	}
}

// TestStampedConnReadsKernelTime: a datagram's arrival is stamped when it reached the socket,
// not when it was read. (Linux turns arrival stamping on a moment after the first socket asks
// for it, reading stamps meanwhile: a few tries allow for that.)
func TestStampedConnReadsKernelTime(t *testing.T) {
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	c := newStampedConn(udp)
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
		n, from, err := c.ReadFrom(buf)
		if err != nil || n == 0 || from == nil {
			t.Fatalf("read %d from %v: %v", n, from, err)
		}
		if c.last.Before(before.Add(-time.Millisecond)) || c.last.After(time.Now()) {
			t.Fatalf("arrival %v outside the exchange (%v .. now)", c.last, before)
		}
		if runtime.GOOS != "linux" || !c.last.After(sent.Add(10*time.Millisecond)) {
			return
		}
		if try == 10 {
			t.Fatalf("arrival %v is the read's time, not the kernel's (sent %v)", c.last, sent)
		}
	}
}
