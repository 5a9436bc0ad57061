package registrar_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	rt "github.com/fepool/fepool/registrar/registrartest"
)

// alive checks the Front End still answers OPTIONS.
func alive(t *testing.T, env *rt.Env, fe string) {
	t.Helper()
	ph := rt.NewPhone(t, "udp")
	res, err := ph.Send(env.Addr(t, fe, "udp"), sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "contoso.com"}))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%s no longer answers OPTIONS: %v %v", fe, res, err)
	}
}

func TestGarbageAndOversizedDatagrams(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	fe := "fe01.pool-a.contoso.com"
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(env.Addr(t, fe, "udp")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	junk := make([]byte, 60000)
	rand.Read(junk)
	for _, d := range [][]byte{
		[]byte("hello"),
		[]byte("INVITE\r\n\r\n"),
		[]byte("REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.1.1.1\r\nContact: <sip:unterminated\r\n\r\n"),
		junk[:1400],
		junk, // near the UDP maximum
		append([]byte("REGISTER sip:contoso.com SIP/2.0\r\nContent-Length: 99999\r\n\r\n"), junk[:100]...),
	} {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "parse errors to be counted", func() bool {
		return env.Metric(`fepool_sip_parse_errors_total{listener="fe01.pool-a.contoso.com"}`) >= 4
	})
	alive(t, env, fe)
}

func TestMalformedRegistersGet400(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	dst := env.Addr(t, env.Primary(t, alice), "udp")
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	for i, tc := range []struct {
		name, headers string
		want          int
	}{
		{"no To user", "To: <sip:contoso.com>\r\nExpires: 600\r\nContact: <sip:a@127.0.0.1>\r\n", 400},
		{"no Call-ID", "To: <sip:open@contoso.com>\r\nContact: <sip:a@127.0.0.1>\r\n", 400},
		{"bad Expires", "To: <sip:open@contoso.com>\r\nCall-ID: x1\r\nExpires: soon\r\nContact: <sip:a@127.0.0.1>\r\n", 400},
		{"bad contact expires", "To: <sip:open@contoso.com>\r\nCall-ID: x2\r\nContact: <sip:a@127.0.0.1>;expires=-5\r\n", 400},
		{"non-SIP contact", "To: <sip:open@contoso.com>\r\nCall-ID: x3\r\nContact: <mailto:a@b.c>\r\n", 400},
		{"star with another", "To: <sip:open@contoso.com>\r\nCall-ID: x4\r\nExpires: 0\r\nContact: *\r\nContact: <sip:a@127.0.0.1>\r\n", 400},
		{"bad Authorization", "To: <sip:user00042@contoso.com>\r\nCall-ID: x5\r\nContact: <sip:a@127.0.0.1>\r\nAuthorization: Digest username=\"user00042\", realm=\r\n", 400},
		{"another scheme", "To: <sip:user00042@contoso.com>\r\nCall-ID: x6\r\nContact: <sip:a@127.0.0.1>\r\nAuthorization: Basic eDp5\r\n", 401},
	} {
		msg := fmt.Sprintf("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-bad%d;rport\r\nFrom: <sip:open@contoso.com>;tag=1\r\nCSeq: %d REGISTER\r\nMax-Forwards: 70\r\n%sContent-Length: 0\r\n\r\n", local, i, i+1, tc.headers)
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%s: no answer: %v", tc.name, err)
		}
		if line, _, _ := bytes.Cut(buf[:n], []byte("\r\n")); !strings.HasPrefix(string(line), fmt.Sprintf("SIP/2.0 %d", tc.want)) {
			t.Errorf("%s: %q, want %d", tc.name, line, tc.want)
		}
	}
	alive(t, env, env.Primary(t, alice))
}

func TestTCPHalfOpenResetAndConnectionLimit(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	fe := "fe02.pool-a.contoso.com"
	addr := env.Addr(t, fe, "tcp").String()
	// A partial message, then an abrupt reset.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;bra"))
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	// A garbage stream: the framing error closes the connection.
	g, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("NOT SIP AT ALL\r\nreally not\r\n\r\n"))
	// An oversized message: closed once past the limit.
	o, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	big := "REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\nX-Pad: " + strings.Repeat("a", 70000)
	go o.Write([]byte(big))
	eventually(t, "the garbage and oversized connections to be closed", func() bool {
		return env.FrontEnd(t, fe).Connections == 0
	})
	g.Close()
	o.Close()

	// More connections from one IP than the limit (64): the rest are refused and counted.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 70; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	eventually(t, "the limit to refuse 6 connections", func() bool {
		return env.Metric(`fepool_sip_dropped_total{listener="fe02.pool-a.contoso.com",reason="conn_limit"}`) >= 6
	})
	if n := env.FrontEnd(t, fe).Connections; n > 64 {
		t.Fatalf("%d connections open, limit 64", n)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	eventually(t, "every connection to be forgotten", func() bool { return env.FrontEnd(t, fe).Connections == 0 })
	alive(t, env, fe)
}

func TestFloodFromOneSourceIsRateLimited(t *testing.T) {
	env := rt.Start(t, strings.Replace(rt.Topology, "limits: {max_conns_per_ip: 64}", "limits: {max_conns_per_ip: 64, per_source_rate: 50}", 1))
	fe := "fe03.pool-a.contoso.com"
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(env.Addr(t, fe, "udp")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 400; i++ {
		msg := fmt.Sprintf("OPTIONS sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-flood%d\r\nFrom: <sip:f@contoso.com>;tag=1\r\nTo: <sip:contoso.com>\r\nCall-ID: flood%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", conn.LocalAddr(), i, i)
		conn.Write([]byte(msg))
	}
	eventually(t, "the flood to be limited", func() bool {
		return env.Metric(`fepool_sip_dropped_total{listener="fe03.pool-a.contoso.com",reason="rate_limit"}`) >= 100
	})
	alive(t, env, fe) // another source is not limited
}

// TestRetransmissionAnsweredFromCache: a retransmitted REGISTER (same branch) after its
// transaction ended gets the very response sent before, without being processed again.
func TestRetransmissionAnsweredFromCache(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	dst := env.Addr(t, env.Primary(t, "open@contoso.com"), "udp")
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := fmt.Sprintf("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-retrans;rport\r\nFrom: <sip:open@contoso.com>;tag=1\r\nTo: <sip:open@contoso.com>\r\nCall-ID: rt1\r\nCSeq: 1 REGISTER\r\nContact: <sip:open@127.0.0.1:5999>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n", conn.LocalAddr())
	read := func() string {
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	conn.Write([]byte(msg))
	first := read()
	conn.Write([]byte(msg))
	second := read()
	if !strings.HasPrefix(first, "SIP/2.0 200") || first != second {
		t.Fatalf("first:\n%s\nsecond:\n%s", first, second)
	}
	if got := env.Metric(`fepool_sip_retransmissions_total{listener="` + env.Primary(t, "open@contoso.com") + `"}`); got != 1 {
		t.Fatalf("retransmissions counted %v, want 1", got)
	}
	if regs, _ := env.R.Registrations("open@contoso.com"); len(regs.Bindings) != 1 || regs.Bindings[0].CSeq != 1 {
		t.Fatalf("registrations %+v", regs)
	}
}
