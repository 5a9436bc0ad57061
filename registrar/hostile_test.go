package registrar_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	rt "github.com/fepool/fepool/registrar/registrartest"
)

// udpFrom opens a UDP socket on ip (any loopback address can be bound on Linux).
func udpFrom(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg from c to dst and returns the first line of the answer ("" when none came
// within wait).
func exchange(t *testing.T, c *net.UDPConn, dst netip.AddrPort, msg string, wait time.Duration) string {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

// received reports whether a datagram reaches c within wait, and its first line.
func received(c *net.UDPConn, wait time.Duration) (string, bool) {
	buf := make([]byte, 65536)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", false
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line, true
}

// forgedNotify is a registration-notify routed through a front door by a flow token naming
// victim, as an attacker would write it.
func forgedNotify(from *net.UDPConn, door netip.AddrPort, victim netip.AddrPort, n int) string {
	token := base64.RawURLEncoding.EncodeToString([]byte("UDP/" + victim.String()))
	return fmt.Sprintf("NOTIFY sip:user00042@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-forged%d;rport\r\n"+
		"Route: <sip:%s@%s;transport=udp;lr;ob>\r\nFrom: <sip:contoso.com>;tag=f%d\r\nTo: <sip:user00042@contoso.com>\r\n"+
		"Call-ID: forged%d\r\nCSeq: 1 NOTIFY\r\nMax-Forwards: 70\r\nEvent: registration-notify\r\nSubscription-State: terminated;expires=0\r\n"+
		"Content-Type: text/registration-event\r\nContent-Length: 29\r\n\r\nderegistered;event=rejected\r\n",
		victim, from.LocalAddr(), n, token, door, n, n)
}

// TestFrontDoorRelaysNothingItDidNotSetUp: a NOTIFY carrying a flow token is relayed only when
// it comes from a Front End of the pool and names a flow a REGISTER was proxied on; an outsider,
// or a Front End's address naming any other flow, gets 403, the target receives nothing, and
// both are counted.
func TestFrontDoorRelaysNothingItDidNotSetUp(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	door := env.DoorAddr(t, "pool-a.contoso.com", "udp")
	victim := udpFrom(t, "127.0.0.1")
	victimAddr := victim.LocalAddr().(*net.UDPAddr).AddrPort()

	outsider := udpFrom(t, "127.0.0.1")
	if got := exchange(t, outsider, door, forgedNotify(outsider, door, victimAddr, 1), 3*time.Second); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Fatalf("a NOTIFY from outside the pool: %q, want 403", got)
	}
	// From a Front End's address (any loopback address can be bound), towards a flow nobody
	// registered on.
	feIP := env.Addr(t, "fe01.pool-a.contoso.com", "udp").Addr().String()
	insider := udpFrom(t, feIP)
	if got := exchange(t, insider, door, forgedNotify(insider, door, victimAddr, 2), 3*time.Second); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Fatalf("a NOTIFY towards a flow the front door does not hold: %q, want 403", got)
	}
	if line, ok := received(victim, 300*time.Millisecond); ok {
		t.Fatalf("the target received %q", line)
	}
	name := "frontdoor.pool-a.contoso.com"
	if got := env.Metric(`fepool_sip_refused_total{listener="` + name + `",reason="relay_source"}`); got != 1 {
		t.Errorf("relay_source refusals counted %v, want 1", got)
	}
	if got := env.Metric(`fepool_sip_refused_total{listener="` + name + `",reason="relay_flow"}`); got != 1 {
		t.Errorf("relay_flow refusals counted %v, want 1", got)
	}

	// The victim signs in through the front door: now its flow is held, and a Front End's
	// request reaches it.
	reg := fmt.Sprintf("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-open1;rport\r\nFrom: <sip:open@contoso.com>;tag=1\r\n"+
		"To: <sip:open@contoso.com>\r\nCall-ID: relay1\r\nCSeq: 1 REGISTER\r\nContact: <sip:open@%s>\r\nExpires: 600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		victimAddr, victimAddr)
	if got := exchange(t, victim, door, reg, 3*time.Second); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("REGISTER through the front door: %q", got)
	}
	if _, err := insider.WriteToUDPAddrPort([]byte(forgedNotify(insider, door, victimAddr, 3)), door); err != nil {
		t.Fatal(err)
	}
	if line, ok := received(victim, 3*time.Second); !ok || !strings.HasPrefix(line, "NOTIFY ") {
		t.Fatalf("a Front End's NOTIFY on a held flow was not relayed (got %q)", line)
	}
	// Still refused from outside the pool.
	if got := exchange(t, outsider, door, forgedNotify(outsider, door, victimAddr, 4), 3*time.Second); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Fatalf("a NOTIFY from outside the pool towards a held flow: %q, want 403", got)
	}
}

// TestPerSourceRateIsPerIPAndSparesTheFrontDoor: the per-source rate limit counts every port of
// a source IP together (500 source ports do not walk around it), and a Front End never throttles
// its pool's front door, which carries every client's requests.
func TestPerSourceRateIsPerIPAndSparesTheFrontDoor(t *testing.T) {
	env := rt.Start(t, strings.Replace(rt.Topology, "limits: {max_conns_per_ip: 64}", "limits: {max_conns_per_ip: 64, per_source_rate: 50}", 1))
	fe := "fe03.pool-a.contoso.com"
	dst := env.Addr(t, fe, "udp")
	for i := 0; i < 500; i++ {
		c := udpFrom(t, "127.0.0.1")
		msg := fmt.Sprintf("OPTIONS sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ports%d\r\nFrom: <sip:f@contoso.com>;tag=1\r\nTo: <sip:contoso.com>\r\nCall-ID: ports%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", c.LocalAddr(), i, i)
		if _, err := c.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	eventually(t, "the flood from 500 ports of one IP to be limited", func() bool {
		return env.Metric(`fepool_sip_dropped_total{listener="`+fe+`",reason="rate_limit"}`) >= 100
	})

	// 150 clients, each from its own address, sign in through the front door within a second:
	// the front door forwards them all to open@contoso.com's registrar, three times the limit.
	door := env.DoorAddr(t, "pool-a.contoso.com", "udp")
	primary := env.Primary(t, "open@contoso.com")
	limited := `fepool_sip_dropped_total{listener="` + primary + `",reason="rate_limit"}`
	before := env.Metric(limited)
	const clients = 150
	answers := make(chan string, clients)
	for i := 0; i < clients; i++ {
		c := udpFrom(t, fmt.Sprintf("127.0.9.%d", i+1))
		go func() {
			reg := fmt.Sprintf("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-door%d;rport\r\nFrom: <sip:open@contoso.com>;tag=1\r\n"+
				"To: <sip:open@contoso.com>\r\nCall-ID: door%d\r\nCSeq: 1 REGISTER\r\nContact: <sip:open@%s>\r\nExpires: 0\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
				c.LocalAddr(), i, i, c.LocalAddr())
			if _, err := c.WriteToUDPAddrPort([]byte(reg), door); err != nil {
				answers <- err.Error()
				return
			}
			line, _ := received(c, 10*time.Second)
			answers <- line
		}()
	}
	for i := 0; i < clients; i++ {
		if got := <-answers; !strings.HasPrefix(got, "SIP/2.0 200") {
			t.Fatalf("a REGISTER through the front door got %q (the registrar throttled the front door?)", got)
		}
	}
	if got := env.Metric(limited) - before; got != 0 {
		t.Fatalf("%s dropped %v of the front door's messages", primary, got)
	}
}

// TestTCPListenerSurvivesOpenFileLimit: a Front End's TCP listener that hits the open-file limit
// (EMFILE) keeps accepting once descriptors are free again, instead of stopping for good.
func TestTCPListenerSurvivesOpenFileLimit(t *testing.T) {
	env := rt.Start(t, strings.Replace(rt.Topology, "limits: {max_conns_per_ip: 64}", "limits: {max_conns_per_ip: 0}", 1))
	fe := "fe02.pool-a.contoso.com"
	addr := env.Addr(t, fe, "tcp").String()

	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	low := saved
	low.Cur = uint64(len(fds) + 40)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restore := func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved) }
	t.Cleanup(restore)

	// Dial until the process runs out of descriptors: the Front End's accepts then fail with
	// EMFILE while connections wait in its backlog.
	var conns []net.Conn
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	// env.Metric reads /metrics in-process: a request would need a descriptor.
	eventually(t, "an accept to fail on the open-file limit", func() bool {
		return env.Metric(`fepool_sip_dropped_total{listener="`+fe+`",reason="accept_error"}`) > 0 ||
			env.Metric(`fepool_sip_dropped_total{listener="`+fe+`",reason="listener_dead"}`) > 0
	})
	for _, c := range conns {
		c.Close()
	}
	restore()

	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := fmt.Sprintf("OPTIONS sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-emfile\r\nFrom: <sip:f@contoso.com>;tag=1\r\nTo: <sip:contoso.com>\r\nCall-ID: emfile\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", c.LocalAddr())
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Errorf("after the descriptors were freed, OPTIONS over TCP got %q, %v: the listener stopped accepting (healthz: %+v)", buf[:n], err, env.R.Health())
	}
	if h := env.R.Health(); !h.OK {
		t.Fatalf("healthz: %+v", h)
	}
}

// TestSlowlorisClosedAfterMessageTimeout: a TCP connection that trickles a message byte by
// byte, or a TLS connection that never finishes its handshake, is closed once the message
// timeout passes (not after the 20-minute idle timeout) and counted; a connection silent
// between messages for longer than the message timeout is still served.
func TestSlowlorisClosedAfterMessageTimeout(t *testing.T) {
	env := rt.Start(t, strings.Replace(rt.Topology, "limits: {max_conns_per_ip: 64}", "limits: {max_conns_per_ip: 64, message_timeout: 400ms}", 1))
	fe := "fe01.pool-a.contoso.com"
	options := func(c net.Conn, branch string) string {
		return fmt.Sprintf("OPTIONS sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-%s\r\nFrom: <sip:f@contoso.com>;tag=1\r\nTo: <sip:contoso.com>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", c.LocalAddr(), branch, branch)
	}

	slow, err := net.Dial("tcp", env.Addr(t, fe, "tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 1)
		_, _ = slow.Read(buf) // returns when the server closes
		closed <- time.Since(start)
	}()
	msg := options(slow, "slow")
	trickle := time.NewTicker(50 * time.Millisecond)
	defer trickle.Stop()
	var took time.Duration
	limit := time.After(10 * time.Second)
wait:
	for i := 0; ; i++ {
		select {
		case took = <-closed:
			break wait
		case <-trickle.C:
			if i < len(msg)-4 { // never the final CRLF CRLF
				_, _ = slow.Write([]byte{msg[i]})
			}
		case <-limit:
			t.Fatal("a connection trickling a message was not closed within 10s")
		}
	}
	if took > 5*time.Second {
		t.Fatalf("closed after %s", took)
	}

	// A TLS handshake that never completes.
	hs, err := net.Dial("tcp", env.Addr(t, fe, "tls").String())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	_, _ = hs.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x80}) // a record header, no record
	_ = hs.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := hs.Read(make([]byte, 16)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a TLS handshake that never completes: %v, want the connection closed", err)
	}
	if got := env.Metric(`fepool_sip_dropped_total{listener="` + fe + `",reason="message_timeout"}`); got != 1 {
		t.Errorf("message timeouts counted %v, want 1", got)
	}
	if got := env.Metric(`fepool_sip_dropped_total{listener="` + fe + `",reason="handshake_timeout"}`); got != 1 {
		t.Errorf("handshake timeouts counted %v, want 1", got)
	}

	// Silent between messages for longer than the message timeout: still served.
	idle, err := net.Dial("tcp", env.Addr(t, fe, "tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	for i, pause := range []time.Duration{0, time.Second} {
		time.Sleep(pause) // the condition under test: a pause between messages
		if _, err := idle.Write([]byte(options(idle, fmt.Sprintf("idle%d", i)))); err != nil {
			t.Fatal(err)
		}
		_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, err := idle.Read(buf)
		if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
			t.Fatalf("OPTIONS %d after %s of silence: %q %v", i, pause, buf[:n], err)
		}
	}
}

// TestAdminAPICutsOffSlowHeaders: a client trickling its request headers to the admin API is
// disconnected by the header timeout (5 s).
func TestAdminAPICutsOffSlowHeaders(t *testing.T) {
	t.Parallel()
	env := rt.Start(t, rt.Topology)
	c, err := net.Dial("tcp", env.R.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1024))
		closed <- err
	}()
	head := "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + strings.Repeat("a", 400)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(15 * time.Second)
	for i := 0; ; i++ {
		select {
		case <-closed:
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("cut off after %s", took)
			}
			return
		case <-tick.C:
			if i < len(head) {
				_, _ = c.Write([]byte{head[i]})
			}
		case <-limit:
			t.Fatal("a client trickling its headers was still connected after 15s")
		}
	}
}

// TestSanityBeforeAnyChallenge: what RFC 3261 and the RFC 4475 torture messages say a request
// must be is checked before any handler or challenge, over UDP and TCP, on a Front End and
// through the front door; each refusal is counted.
func TestSanityBeforeAnyChallenge(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	user := "user00042@contoso.com"
	fe := env.Primary(t, user)
	door := env.DoorAddr(t, "pool-a.contoso.com", "udp")
	long := func(n int) string { return strings.Repeat("a", n) }
	// req writes a REGISTER of user00042 (who needs digest: a sane request gets 401).
	req := func(startLine, headers, body string) func(local string, n int) string {
		return func(local string, n int) string {
			msg := startLine + "\r\n" + fmt.Sprintf("Via: SIP/2.0/%%s %s;branch=z9hG4bK-sane%d;rport\r\n", local, n) + headers
			if !strings.Contains(headers, "Content-Length") {
				msg += fmt.Sprintf("Content-Length: %d\r\n", len(body))
			}
			return msg + "\r\n" + body
		}
	}
	std := func(n int) string {
		return fmt.Sprintf("From: <sip:%s>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: sane%d\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n", user, user, n)
	}
	without := func(name string) string {
		var out []string
		for _, l := range strings.SplitAfter(std(0), "\r\n") {
			if !strings.HasPrefix(l, name+":") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "")
	}
	var many strings.Builder
	for i := 0; i < 120; i++ {
		fmt.Fprintf(&many, "X-H%d: v\r\n", i)
	}
	for _, tc := range []struct {
		name, reason string
		msg          func(local string, n int) string
		want         string
	}{
		{"sane", "", req("REGISTER sip:contoso.com SIP/2.0", std(1)+"Contact: <sip:u@127.0.0.1:5999>\r\n", ""), "401"},
		{"SIP/3.0", "version", req("REGISTER sip:contoso.com SIP/3.0", std(2), ""), "505"},
		{"lower-case method", "method_case", req("register sip:contoso.com SIP/2.0", strings.Replace(std(3), "1 REGISTER", "1 register", 1), ""), "405"},
		{"mixed-case method", "method_case", req("REGISTEr sip:contoso.com SIP/2.0", std(4), ""), "405"},
		{"no From", "missing_header", req("REGISTER sip:contoso.com SIP/2.0", without("From"), ""), "400"},
		{"no To", "missing_header", req("REGISTER sip:contoso.com SIP/2.0", without("To"), ""), "400"},
		{"no Call-ID", "missing_header", req("REGISTER sip:contoso.com SIP/2.0", without("Call-ID"), ""), "400"},
		// Counted on the UDP fast path only: elsewhere sipgo answers it itself.
		{"no CSeq", "missing_header", req("REGISTER sip:contoso.com SIP/2.0", without("CSeq"), ""), "400"},
		{"CSeq of another method", "cseq", req("REGISTER sip:contoso.com SIP/2.0", strings.Replace(std(5), "1 REGISTER", "1 OPTIONS", 1), ""), "400"},
		{"conflicting Content-Length", "content_length", req("REGISTER sip:contoso.com SIP/2.0", std(6)+"Content-Length: 0\r\nl: 4\r\n", "body"), "400"},
		{"Content-Length beyond the body", "malformed", req("REGISTER sip:contoso.com SIP/2.0", std(7)+"Content-Length: 50\r\n", "body"), "400"},
		{"120 header fields", "too_many_headers", req("REGISTER sip:contoso.com SIP/2.0", std(8)+many.String(), ""), "400"},
		{"a 10 KB header field", "header_too_long", req("REGISTER sip:contoso.com SIP/2.0", std(9)+"X-Big: "+long(10000)+"\r\n", ""), "400"},
		{"a 2 KB Contact URI", "uri_too_long", req("REGISTER sip:contoso.com SIP/2.0", std(10)+"Contact: <sip:"+long(2000)+"@127.0.0.1>\r\n", ""), "400"},
		{"a 2 KB Request-URI", "uri_too_long", req("REGISTER sip:"+long(2000)+"@contoso.com SIP/2.0", std(11), ""), "400"},
		{"a 40 KB body", "body_too_large", req("REGISTER sip:contoso.com SIP/2.0", std(12)+"Content-Type: text/plain\r\n", long(40000)), "413"},
	} {
		for _, dst := range []struct {
			name      string
			transport string
			addr      netip.AddrPort
			listener  string
		}{
			{"Front End over UDP", "UDP", env.Addr(t, fe, "udp"), fe},
			{"Front End over TCP", "TCP", env.Addr(t, fe, "tcp"), fe},
			{"front door over UDP", "UDP", door, "frontdoor.pool-a.contoso.com"},
		} {
			series := `fepool_sip_refused_total{listener="` + dst.listener + `",reason="` + tc.reason + `"}`
			before := env.Metric(series)
			if tc.reason == "malformed" && dst.transport == "TCP" {
				continue // on a stream the rest of the body is awaited (then the message timeout)
			}
			var got string
			if dst.transport == "UDP" {
				c := udpFrom(t, "127.0.0.1")
				got = exchange(t, c, dst.addr, fmt.Sprintf(tc.msg(c.LocalAddr().String(), 0), "UDP"), 3*time.Second)
			} else {
				got = tcpExchange(t, dst.addr, func(local string) string { return fmt.Sprintf(tc.msg(local, 0), "TCP") })
			}
			if !strings.HasPrefix(got, "SIP/2.0 "+tc.want) {
				t.Errorf("%s to the %s: %q, want %s", tc.name, dst.name, got, tc.want)
			}
			if tc.reason != "" && (tc.name != "no CSeq" || dst.name == "Front End over UDP") && env.Metric(series) <= before {
				t.Errorf("%s to the %s: not counted as %s", tc.name, dst.name, tc.reason)
			}
		}
	}

	// One user cannot make itself unreachable through the front door: 8 endpoints with long
	// Contact URIs, the longest the limit lets through, still fit a 200 OK in a datagram.
	c := udpFrom(t, "127.0.0.1")
	for i := 0; i < 9; i++ {
		contact := fmt.Sprintf("<sip:%d%s@%s>", i, long(900), c.LocalAddr())
		reg := fmt.Sprintf("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-fill%d;rport\r\nFrom: <sip:open@contoso.com>;tag=1\r\n"+
			"To: <sip:open@contoso.com>\r\nCall-ID: fill\r\nCSeq: %d REGISTER\r\nContact: %s\r\nExpires: 600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			c.LocalAddr(), i, i+1, contact)
		want := "SIP/2.0 200"
		if i == 8 {
			want = "SIP/2.0 403" // a 9th endpoint
		}
		if got := exchange(t, c, door, reg, 5*time.Second); !strings.HasPrefix(got, want) {
			t.Fatalf("endpoint %d with a 900-byte Contact through the front door: %q, want %s", i+1, got, want)
		}
	}
}

// tcpExchange sends one message over a new TCP connection and returns the first line of the
// answer.
func tcpExchange(t *testing.T, dst netip.AddrPort, msg func(local string) string) string {
	t.Helper()
	c, err := net.Dial("tcp", dst.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg(c.LocalAddr().String()))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

// TestBadInputLeavesNothingBehind: a barrage of bad input (garbage and torture datagrams,
// refused relays, malformed and trickled TCP messages, half-done TLS handshakes) leaves no
// goroutine and no descriptor behind once its connections are gone.
func TestBadInputLeavesNothingBehind(t *testing.T) {
	env := rt.Start(t, strings.Replace(rt.Topology, "limits: {max_conns_per_ip: 64}", "limits: {max_conns_per_ip: 64, message_timeout: 300ms}", 1))
	fe := "fe01.pool-a.contoso.com"
	alive(t, env, fe)
	fds := func() int {
		d, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(d)
	}
	goroutines, descriptors := runtime.NumGoroutine(), fds()

	door := env.DoorAddr(t, "pool-a.contoso.com", "udp")
	u := udpFrom(t, "127.0.0.1")
	for i, d := range []string{
		"garbage", "REGISTER sip:x SIP/7.0\r\n\r\n", "register sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 1.1.1.1;branch=z9hG4bKx\r\n\r\n",
		forgedNotify(u, door, u.LocalAddr().(*net.UDPAddr).AddrPort(), 99),
		"REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcl\r\nFrom: <sip:a@contoso.com>;tag=1\r\nTo: <sip:a@contoso.com>\r\nCall-ID: cl\r\nCSeq: 1 REGISTER\r\nContent-Length: 900\r\n\r\nshort",
	} {
		for _, dst := range []netip.AddrPort{env.Addr(t, fe, "udp"), door} {
			if _, err := u.WriteToUDPAddrPort([]byte(d), dst); err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
		}
	}
	var conns []net.Conn
	for _, tc := range []struct{ transport, data string }{
		{"tcp", "NOT SIP\r\n\r\n"},
		{"tcp", "REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;bra"}, // trickled: never ends
		{"tcp", "register sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKt\r\nContent-Length: 0\r\n\r\n"},
		{"tls", "\x16\x03\x01\x00\x80"}, // a handshake that never completes
	} {
		c, err := net.Dial("tcp", env.Addr(t, fe, tc.transport).String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_, _ = c.Write([]byte(tc.data))
	}
	// The one with a whole message (answered 405) may stay; the others end.
	eventually(t, "the emulator to close the connections it cannot serve", func() bool { return env.FrontEnd(t, fe).Connections <= 1 })
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "every connection to be gone", func() bool { return env.FrontEnd(t, fe).Connections == 0 })
	u.Close()
	alive(t, env, fe)
	eventually(t, "goroutines and descriptors back to where they were", func() bool {
		return runtime.NumGoroutine() <= goroutines+2 && fds() <= descriptors+2
	})
}
