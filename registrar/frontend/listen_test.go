package frontend

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// TestAcceptErrors: a listener that fails for good (here: shut down under it, so accept answers
// EINVAL) is marked dead and counted; temporary failures are not.
func TestAcceptErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{syscall.EMFILE, true},
		{syscall.ENFILE, true},
		{syscall.ECONNABORTED, true},
		{&net.OpError{Op: "accept", Err: &net.DNSError{IsTimeout: true}}, true},
		{&net.OpError{Op: "accept", Err: syscall.EMFILE}, true},
		{syscall.EINVAL, false},
		{syscall.EBADF, false},
		{errors.New("other"), false},
	} {
		if got := temporary(tc.err); got != tc.want {
			t.Errorf("temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}

	ln, err := listenTCP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	tl := newTrackedListener(ln, connLimits{dropped: func(r string) { reasons = append(reasons, r) }}, "tcp")
	defer tl.closeAll(false)
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := tl.Accept(); done <- err }()
	_ = raw.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
	select {
	case err := <-done:
		if err == nil || !tl.dead.Load() {
			t.Fatalf("Accept after shutdown: %v, dead %v", err, tl.dead.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after its socket was shut down")
	}
	if len(reasons) != 1 || reasons[0] != "listener_dead" {
		t.Fatalf("counted %v", reasons)
	}
}
