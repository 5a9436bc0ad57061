package frontend

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/fepool/fepool/registrar/backend"
	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/metrics"
	"github.com/fepool/fepool/registrar/sipauth"
	"github.com/fepool/fepool/registrar/topology"
)

// FuzzRegister feeds arbitrary datagrams through what a Front End does with a REGISTER before
// and after the Cluster: parse, extract the request, apply it to a record, render the Contacts
// and the transaction key. None of it may panic.
func FuzzRegister(f *testing.F) {
	f.Add([]byte(register))
	f.Add([]byte("REGISTER sip:c SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:u@c>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\n\r\n"))
	f.Add([]byte("REGISTER sip:c SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: u\r\nContact: <sip:a@b>;expires=99999999999999999999\r\n\r\n"))
	f.Add([]byte("OPTIONS sip:c SIP/2.0\r\n\r\n"))
	parser := sip.NewParser()
	pol := location.Policy{Min: 300 * time.Second, Max: 900 * time.Second, Default: 600 * time.Second, MaxEndpoints: 8}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := parser.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		req.SetSource("127.0.0.1:5080")
		_, _ = txKey(req)
		aor, _ := aorOf(req)
		lr, err := registerRequest(req, Addrs{UDP: netip.MustParseAddrPort("127.0.1.1:5060")})
		if err != nil {
			return
		}
		r := location.Apply(aor, nil, lr, pol, now)
		if r.Record != nil {
			for i := range r.Record.Bindings {
				_ = bindingContact(&r.Record.Bindings[i], now)
			}
			// A refresh of what was just stored.
			lr.CSeq++
			location.Apply(aor, r.Record, lr, pol, now.Add(time.Minute))
		}
	})
}

// fuzzCluster is a one-Front-End cluster in memory: every user is served here, REGISTERs apply
// to a map of records under the policy.
type fuzzCluster struct {
	pol   location.Policy
	now   time.Time
	mu    sync.Mutex
	recs  map[string]*location.Record
	users map[string]topology.User
}

func (c *fuzzCluster) Now() time.Time { return c.now }
func (c *fuzzCluster) Lookup(aor string) (topology.User, bool) {
	u, ok := c.users[aor]
	return u, ok
}
func (c *fuzzCluster) Route(*topology.FrontEnd, topology.User, string) Route {
	return Route{Kind: Serve}
}
func (c *fuzzCluster) FrontDoorRoute(*topology.FrontDoor, string, string) Route {
	return Route{Kind: Unavailable, Diag: DiagCannotRoute}
}
func (c *fuzzCluster) Register(_ *topology.FrontEnd, _ Route, aor string, req location.Request) (location.Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := location.Apply(aor, c.recs[aor], req, c.pol, c.now)
	if r.Status == 200 {
		c.recs[aor] = r.Record
		if r.Record == nil {
			delete(c.recs, aor)
		}
	}
	return r, true
}
func (c *fuzzCluster) Serving(*topology.FrontEnd) (bool, Diagnostic) { return true, Diagnostic{} }
func (c *fuzzCluster) ChangeContacts(topology.User, []backend.Contact, []string) error {
	return nil
}

// FuzzServeInline sends arbitrary datagrams through a Front End's UDP fast path (serveInline,
// as its read loop does, writing its answers to a real socket) and checks what it answered,
// not only that it did not panic: a malformed request gets no 5xx (505 only for another SIP
// version, 513 only for a datagram cut at the read buffer), no user ever holds more than 8
// bindings, and every binding expires within the policy's bounds. Each input starts from an
// empty location service and retransmission cache, so a failure replays on its own.
func FuzzServeInline(f *testing.F) {
	f.Add([]byte(register))
	f.Add([]byte(lyncRegister))
	f.Add([]byte("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-9\r\nFrom: <sip:open@contoso.com>;tag=1\r\nTo: <sip:open@contoso.com>\r\nCall-ID: nine\r\nCSeq: 1 REGISTER\r\nContact: <sip:u0@127.0.0.1:5000>;expires=99999\r\nContact: <sip:u1@127.0.0.1:5001>;expires=99999\r\nContact: <sip:u2@127.0.0.1:5002>;expires=99999\r\nContact: <sip:u3@127.0.0.1:5003>;expires=99999\r\nContact: <sip:u4@127.0.0.1:5004>;expires=99999\r\nContact: <sip:u5@127.0.0.1:5005>;expires=99999\r\nContact: <sip:u6@127.0.0.1:5006>;expires=99999\r\nContact: <sip:u7@127.0.0.1:5007>;expires=99999\r\nContact: <sip:u8@127.0.0.1:5008>;expires=99999\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-long\r\nFrom: <sip:user00042@contoso.com>;tag=1\r\nTo: <sip:user00042@contoso.com>\r\nCall-ID: long\r\nCSeq: 1 REGISTER\r\nContact: <sip:u@127.0.0.1:5000>;expires=99999\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("REGISTER :00 SIP\r\nV://0 ;branch=z9hG4bK\r\nCSeq:0 0\r\n\r\n"))
	f.Add([]byte("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-2\r\nFrom: <sip:open@contoso.com>;tag=1\r\nTo: <sip:open@contoso.com>\r\nCall-ID: x\r\nCSeq: 2 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("OPTIONS sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-3\r\nFrom: <sip:a@contoso.com>;tag=1\r\nTo: <sip:contoso.com>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"))
	auth, err := sipauth.New(sipauth.Config{Realm: "contoso.com", Algorithms: []string{"MD5"}, NonceLifetime: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	pol := location.Policy{Min: 300 * time.Second, Max: 900 * time.Second, Default: 600 * time.Second, MaxEndpoints: 8}
	now := time.Now()
	cl := &fuzzCluster{pol: pol, now: now, recs: map[string]*location.Record{}, users: map[string]topology.User{}}
	for _, u := range []topology.User{
		{AOR: "open@contoso.com", NoAuth: true},
		{AOR: "user00042@contoso.com", NoAuth: true},
		{AOR: "user00043@contoso.com", Password: "secret"},
	} {
		cl.users[u.AOR] = u
	}
	fe := NewFrontEnd(FrontEndConfig{
		FrontEnd: &topology.FrontEnd{FQDN: "fe01.fuzz", Address: netip.MustParseAddr("127.0.0.1")},
		Cluster:  cl, Auth: auth, KeepAliveTimeout: 300 * time.Second,
	}, Options{Log: zerolog.Nop(), Metrics: metrics.New(), RetryAfter: 30 * time.Second, Server: "RTC/5.0",
		Limits: topology.Limits{MaxInFlight: 10, MaxHeaders: 100, MaxHeaderBytes: 8192, MaxURIBytes: 1024, MaxBodyBytes: 32768}})
	fe.ep.retrans = newRetransCache()
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	defer peer.Close()
	from := peer.LocalAddr().(*net.UDPAddr)
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Each input on its own: no bindings, no cached responses from the ones before.
		cl.mu.Lock()
		cl.recs = map[string]*location.Record{}
		cl.mu.Unlock()
		fe.ep.retrans = newRetransCache()
		in := append([]byte(nil), data...)
		canonicalMethod(in) // as the read filter does first
		if !fe.ep.serveInline(srv, from, in) {
			return // not a request for the fast path: sipgo's business
		}
		// The answer as sent (to the peer, or to the Via's port without rport), from the
		// retransmission cache that keeps it.
		msg, _, parsed := parseDatagram(parser, in)
		req, ok := msg.(*sip.Request)
		if !parsed || !ok {
			t.Fatalf("served inline, but does not parse: %q", data)
		}
		key, _ := txKey(req)
		cr, ok := fe.ep.retrans.get(key)
		if !ok || cr.data == nil {
			t.Fatalf("served inline with no answer kept for retransmissions: %q", data)
		}
		// The 5xx a malformed request may get: 505 for a version other than 2.0, 513 for a
		// datagram that did not fit the read buffer.
		code := statusCode(cr.data)
		if code == 0 || code >= 500 && !(code == 505 && !version20(in)) && !(code == 513 && len(data) >= int(sip.TransportBufferReadSize)) {
			t.Fatalf("answered %d to:\n%q\nanswer:\n%s", code, data, cr.data)
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		for aor, rec := range cl.recs {
			if len(rec.Bindings) > pol.MaxEndpoints {
				t.Fatalf("%s holds %d bindings after:\n%q", aor, len(rec.Bindings), data)
			}
			for _, b := range rec.Bindings {
				if in := b.Expires.Sub(now); in < pol.Min || in > pol.Max {
					t.Fatalf("%s binding %s expires in %s, outside [%s, %s], after:\n%q", aor, b.Contact, in, pol.Min, pol.Max, data)
				}
			}
		}
	})
}

// version20 reports whether a request line ends in SIP/2.0 (in any case).
func version20(req []byte) bool {
	line, _, _ := bytes.Cut(req, []byte("\n"))
	f := bytes.Fields(line)
	return len(f) == 3 && bytes.EqualFold(f[2], []byte("SIP/2.0"))
}

// statusCode reads a response's status code (0 when it is not one).
func statusCode(res []byte) int {
	line, _, _ := bytes.Cut(res, []byte("\r\n"))
	parts := bytes.SplitN(line, []byte(" "), 3)
	if len(parts) < 2 || !bytes.HasPrefix(parts[0], []byte("SIP/")) {
		return 0
	}
	n, _ := strconv.Atoi(string(parts[1]))
	return n
}
