package client

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestAnswersSwept: answers kept for retransmitted requests go once they are older than any
// retransmission.
func TestAnswersSwept(t *testing.T) {
	var a answers
	t0 := time.Unix(1700000000, 0)
	a.put("k", []byte("answer"), t0)
	if data, ok := a.get("k"); !ok || string(data) != "answer" {
		t.Fatalf("get: %q %v", data, ok)
	}
	for i := range 5000 {
		a.put(time.Duration(i).String(), nil, t0.Add(time.Duration(i)*20*time.Millisecond))
	}
	// 5,000 answers 20 ms apart span 100 s: only those within answerKeep of the newest stay
	// (plus what came since the last sweep).
	if n := len(a.m); n > 2*int(answerKeep/(20*time.Millisecond))+64 {
		t.Fatalf("%d answers kept", n)
	}
	if _, ok := a.get("k"); ok {
		t.Fatal("an answer older than answerKeep is still kept")
	}
}

// TestCloseEndsTransactions: closing a stack ends the transactions waiting on it at once.
func TestCloseEndsTransactions(t *testing.T) {
	st, err := newStack(netip.MustParseAddr("127.0.0.1"), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	silent, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	done := make(chan error, 1)
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "contoso.com"})
	st.transact(req, silent.LocalAddr().(*net.UDPAddr).AddrPort(), time.Minute, func(a udpAnswer) { done <- a.err })
	// The request reaching the peer means the transaction is under way.
	if _, _, err := silent.ReadFromUDPAddrPort(make([]byte, 2048)); err != nil {
		t.Fatal(err)
	}
	st.close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("transaction ended with %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the transaction still waits after close")
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
		n, from, at, err := c.read(buf)
		if err != nil || n == 0 || from != out.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("read %d from %v: %v", n, from, err)
		}
		if at.Before(before.Add(-time.Millisecond)) || at.After(time.Now()) {
			t.Fatalf("arrival %v outside the exchange (%v .. now)", at, before)
		}
		if runtime.GOOS != "linux" || !at.After(sent.Add(10*time.Millisecond)) {
			return
		}
		if try == 10 {
			t.Fatalf("arrival %v is the read's time, not the kernel's (sent %v)", at, sent)
		}
	}
}
