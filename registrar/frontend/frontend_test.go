package frontend

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func parse(t *testing.T, raw string) *sip.Request {
	t.Helper()
	m, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

const register = "REGISTER sip:contoso.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-abc;rport\r\n" +
	"From: <sip:alice@contoso.com>;tag=1\r\nTo: <sip:Alice@Contoso.com>\r\nCall-ID: c1\r\nCSeq: 7 REGISTER\r\n" +
	"Contact: <sip:alice@127.0.0.1:5080;transport=UDP>;expires=60;+sip.instance=\"<urn:uuid:ABC>\";reg-id=1;methods=\"INVITE\"\r\n" +
	"Contact: <sip:alice@HOST.example.com:5081>;q=0.5\r\n" +
	"Expires: 600\r\nPath: <sip:p1;lr>\r\nUser-Agent: test\r\nContent-Length: 0\r\n\r\n"

func TestRegisterRequest(t *testing.T) {
	req := parse(t, register)
	req.SetSource("127.0.0.1:40000")
	lr, err := registerRequest(req, Addrs{UDP: netip.MustParseAddrPort("127.0.1.1:5060")})
	if err != nil {
		t.Fatal(err)
	}
	if lr.CallID != "c1" || lr.CSeq != 7 || lr.Expires != 600 || len(lr.Contacts) != 2 || lr.UserAgent != "test" || len(lr.Path) != 1 {
		t.Fatalf("request %+v", lr)
	}
	a, b := lr.Contacts[0], lr.Contacts[1]
	if a.Expires != 60 || a.Instance != "<urn:uuid:ABC>" || a.RegID != 1 || a.Key != "instance:<urn:uuid:abc>|1" || a.Params != `+sip.instance="<urn:uuid:ABC>";reg-id=1;methods="INVITE"` {
		t.Errorf("first contact %+v", a)
	}
	if b.Expires != -1 || b.Q != "0.5" || b.Key != "sip:alice@host.example.com:5081;" {
		t.Errorf("second contact %+v", b)
	}
	if lr.Flow.Transport != "UDP" || lr.Flow.Remote != "127.0.0.1:40000" || lr.Flow.Local != "127.0.1.1:5060" {
		t.Errorf("flow %+v", lr.Flow)
	}
	if aor, err := aorOf(req); err != nil || aor != "alice@contoso.com" {
		t.Errorf("aor %q %v", aor, err)
	}
}

func TestTxKeyAndRetransCache(t *testing.T) {
	req := parse(t, register)
	key, ok := txKey(req)
	if !ok || key != "z9hG4bK-abc|127.0.0.1:5080|REGISTER" {
		t.Fatalf("key %q %v", key, ok)
	}
	old := parse(t, "REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=1234\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")
	if _, ok := txKey(old); ok {
		t.Fatal("an RFC 2543 branch got a key")
	}
	c := newRetransCache()
	now := time.Now()
	c.now = func() time.Time { return now }
	req.SetSource("127.0.0.1:5080")
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if _, err := c.put(key, res); err != nil {
		t.Fatal(err)
	}
	cr, ok := c.get(key)
	if !ok || cr.dst != netip.MustParseAddrPort("127.0.0.1:5080") || len(cr.data) == 0 {
		t.Fatalf("cached %+v %v", cr, ok)
	}
	// The response is sent again as it was.
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cr.dst = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := cr.resend(pc); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := pc.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != res.String() {
		t.Fatalf("resent %q %v", buf[:n], err)
	}
	// Two generations of 16 s: kept at least 16 s, at most 32 s (Timer J).
	now = now.Add(16 * time.Second)
	if _, ok := c.get(key); !ok {
		t.Fatal("lost after one rotation")
	}
	now = now.Add(16 * time.Second)
	c.expire() // rotation happens without traffic too
	if c.len() != 0 {
		t.Fatal("kept after two rotations")
	}
}

func TestFlowToken(t *testing.T) {
	req := parse(t, register)
	req.SetSource("127.0.0.1:40000")
	d := &FrontDoor{ep: &endpoint{}}
	tok, _, _ := strings.Cut(strings.TrimPrefix(d.pathURI(req), "<sip:"), "@")
	tp, addr, err := FlowToken(tok)
	if err != nil || tp != "UDP" || addr != netip.MustParseAddrPort("127.0.0.1:40000") {
		t.Fatalf("FlowToken(%q) = %s %s %v", tok, tp, addr, err)
	}
	if _, _, err := FlowToken("!!"); err == nil {
		t.Fatal("garbage token decoded")
	}
}
