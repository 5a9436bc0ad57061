package client

import (
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func fuzzClient(t testing.TB) *Client {
	t.Helper()
	c, err := New(Config{AOR: "sip:alice@contoso.com", Password: "secret", Servers: []Server{{Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Transport: UDP}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// FuzzInboundRequest: whatever request reaches the client, answering it never panics.
func FuzzInboundRequest(f *testing.F) {
	f.Add([]byte("NOTIFY sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nEvent: registration-notify\r\nP-Preferred-Registrar: <sip:127.0.2.1:5060;transport=udp>\r\nContent-Length: 47\r\n\r\nderegistered;event=preferred-registrar-change"))
	f.Add([]byte("BENOTIFY sip:alice@127.0.0.1 SIP/2.0\r\nEvent: registration-notify\r\nP-Preferred-Registrar: garbage<<\r\n\r\nderegistered"))
	f.Add([]byte("OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\n\r\n"))
	f.Add([]byte("INVITE sip:alice@127.0.0.1 SIP/2.0\r\n\r\n"))
	c := fuzzClient(f)
	p := sip.NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := p.ParseSIP(data)
		if err != nil {
			return
		}
		if req, ok := msg.(*sip.Request); ok {
			c.onRequest(req)
		}
	})
}

// FuzzResponse: whatever a registrar answers, reading it never panics.
func FuzzResponse(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\nContact: <sip:alice@127.0.0.1:5099>;+sip.instance=\"<urn:uuid:x>\";expires=600\r\nExpires: 600\r\npresence-State: register-action=\"added\";is-connected-to-primary=\"no\";user-services-state=unavailable\r\n\r\n"))
	f.Add([]byte("SIP/2.0 301 Redirect request to Home Server\r\nContact: <sip:127.0.1.1:5060;transport=udp>;q=0.7, <sip:127.0.2.1;transport=tls>;q=0.3, <sip:10.0.0.1>;q=x\r\n\r\n"))
	f.Add([]byte("SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\", stale=true\r\nWWW-Authenticate: Basic realm=x\r\n\r\n"))
	f.Add([]byte("SIP/2.0 503 Service Unavailable\r\nRetry-After: 20 (maintenance);duration=5\r\nms-diagnostics: 1007;reason=\"x\"\r\n\r\n"))
	c := fuzzClient(f)
	p := sip.NewParser()
	from := Server{Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Transport: UDP}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := p.ParseSIP(data)
		if err != nil {
			return
		}
		res, ok := msg.(*sip.Response)
		if !ok {
			return
		}
		presence(res)
		// A huge Expires must not overflow into a negative time (a refresh loop).
		if got := c.grantedExpires(res); got <= 0 || got > maxGranted {
			t.Fatalf("granted %s, from:\n%q", got, data)
		}
		retryAfter(res)
		diag(res)
		_, _ = c.redirect(from, res)
		_, _ = c.challenged(from, res)
	})
}

// FuzzDatagram: whatever datagram reaches a client's socket, reading it never panics.
func FuzzDatagram(f *testing.F) {
	f.Add([]byte("NOTIFY sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nCSeq: 1 NOTIFY\r\nCall-ID: a\r\nEvent: registration-notify\r\nContent-Length: 12\r\n\r\nderegistered"))
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKy\r\nCSeq: 2 REGISTER\r\n\r\n"))
	f.Add([]byte("SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n\r\n"))
	f.Add([]byte("ACK sip:alice@127.0.0.1 SIP/2.0\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	c := fuzzClient(f)
	from := netip.MustParseAddrPort("127.0.0.1:9") // discard: answers go nowhere
	f.Fuzz(func(t *testing.T, data []byte) {
		c.st.datagram(data, from, time.Now())
	})
}
