package client

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
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

// TestOnGrid: keep-alive delays are lengthened by less than the grid to end on it.
func TestOnGrid(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	for _, d := range []time.Duration{30 * time.Second, time.Millisecond, 0, 10*time.Second + 876543211} {
		got := onGrid(now, d)
		if got < d || got-d >= keepAliveGrid || now.Add(got).UnixNano()%int64(keepAliveGrid) != 0 {
			t.Errorf("onGrid(%s) = %s", d, got)
		}
	}
	on := time.Unix(1700000000, 0)
	if got := onGrid(on, time.Second); got != time.Second {
		t.Errorf("already on the grid: %s, want 1s", got)
	}
}
