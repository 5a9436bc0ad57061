package frontend

import (
	"errors"
	"net"
	"net/netip"
	"strings"
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

// TestFramer feeds SIP streams in every split and checks where the framer says messages are.
func TestFramer(t *testing.T) {
	msg := "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl :  5\r\nX-Long: " +
		strings.Repeat("y", 100) + "\r\n\r\nhello"
	noBody := "OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"
	for _, tc := range []struct {
		name   string
		stream string
		// in is whether a message is in progress after the whole stream
		in bool
	}{
		{"one message", msg, false},
		{"keep-alives around", "\r\n\r\n" + msg + "\r\n\r\n", false},
		{"two messages", msg + noBody, false},
		{"headers cut", msg[:30], true},
		{"body cut", msg[:len(msg)-2], true},
		{"no body", noBody, false},
		{"second begun", noBody + "REG", true},
		{"Content-Length in capitals", "A B C\r\nCONTENT-LENGTH: 2\r\n\r\nok", false},
		{"body still to come", "A B C\r\nContent-Length: 3\r\n\r\nok", true},
	} {
		for split := 1; split <= len(tc.stream); split++ {
			var f framer
			for i := 0; i < len(tc.stream); i += split {
				f.feed([]byte(tc.stream[i:min(i+split, len(tc.stream))]))
			}
			if f.inMessage() != tc.in {
				t.Errorf("%s in chunks of %d: in a message %v, want %v", tc.name, split, f.inMessage(), tc.in)
				break
			}
		}
	}
	var f framer
	if f.feed([]byte(noBody[:10])) {
		t.Error("a first message does not restart")
	}
	if !f.feed([]byte(noBody[10:] + noBody[:5])) {
		t.Error("a message that begins after one ended in the same read restarts the clock")
	}
}

// TestMethodCase: a request method that is not upper-case is made one no handler has, in a
// datagram and in a stream split anywhere; responses and upper-case methods are left alone.
func TestMethodCase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"REGISTER sip:x SIP/2.0\r\n", "REGISTER sip:x SIP/2.0\r\n"},
		{"register sip:x SIP/2.0\r\n", "!!!!!!!! sip:x SIP/2.0\r\n"},
		{"REGISTEr sip:x SIP/2.0\r\n", "REGISTE! sip:x SIP/2.0\r\n"},
		{"SIP/2.0 200 OK\r\n", "SIP/2.0 200 OK\r\n"},
		{"sip/2.0 200 ok\r\n", "sip/2.0 200 ok\r\n"},
		{"Sipx sip:x SIP/2.0\r\n", "Sip! sip:x SIP/2.0\r\n"},
		{"BENOTIFY sip:x SIP/2.0\r\n", "BENOTIFY sip:x SIP/2.0\r\n"},
	} {
		d := []byte(tc.in)
		if changed := canonicalMethod(d); string(d) != tc.want || changed != (tc.in != tc.want) {
			t.Errorf("datagram %q: %q (changed %v), want %q", tc.in, d, changed, tc.want)
		}
		msg := tc.in + "Content-Length: 0\r\n\r\n"
		for split := 1; split <= len(msg); split++ {
			f := framer{rewrite: true}
			out := []byte(msg)
			for i := 0; i < len(out); i += split {
				f.feed(out[i:min(i+split, len(out))])
			}
			if !strings.HasPrefix(string(out), tc.want) || f.rewritten != map[bool]int{true: 0, false: 1}[tc.in == tc.want] {
				t.Errorf("stream %q in chunks of %d: %q (%d rewritten)", tc.in, split, out, f.rewritten)
				break
			}
		}
	}
}
