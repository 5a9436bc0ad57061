// Package registrartest starts real registrars on loopback for tests (ephemeral ports, admin
// API on 127.0.0.1:0) and offers a minimal SIP phone built on sipgo to talk to them. Nothing here
// is mocked: every message crosses a real socket.
package registrartest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/fepool/fepool/registrar"
	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/topology"
)

// Topology is a two-pool test topology on ephemeral ports: pool-a (proxy front door, UDP/TCP/TLS)
// and pool-b (redirect front door), paired; users user00000..00999 on pool-a, 01000..01999 on
// pool-b (password secret), and open@contoso.com without auth. Crashes are detected at once.
const Topology = `
domain: contoso.com
admin: {listen: "127.0.0.1:0", token: test-token}
fabric: {failure_detection: 0s, quorum_loss_shutdown: 5m}
sip:
  digest_algorithms: [MD5, SHA-256]
  limits: {max_conns_per_ip: 64}
pools:
  - fqdn: pool-a.contoso.com
    backup: pool-b.contoso.com
    routing_groups: 16
    ports: {udp: 0, tcp: 0, tls: 0}
    front_door: {address: 127.0.1.100, udp: 0, tcp: 0, mode: proxy}
    front_ends: [{address: 127.0.1.1}, {address: 127.0.1.2}, {address: 127.0.1.3}]
  - fqdn: pool-b.contoso.com
    backup: pool-a.contoso.com
    routing_groups: 16
    ports: {udp: 0, tcp: 0}
    front_door: {address: 127.0.2.100, udp: 0, tcp: 0, mode: redirect}
    front_ends: [{address: 127.0.2.1}, {address: 127.0.2.2}, {address: 127.0.2.3}]
users:
  - {range: "user{00000..00999}@contoso.com", pool: pool-a.contoso.com, password: secret}
  - {range: "user{01000..01999}@contoso.com", pool: pool-b.contoso.com, password: secret}
  - {uri: "sip:open@contoso.com", pool: pool-a.contoso.com, auth: none}
`

func init() {
	// Keep sipgo's own bookkeeping warnings out of test output; errors still show.
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
}

// Env is a running registrar.
type Env struct {
	R     *registrar.Registrar
	Top   *topology.Topology
	Admin *admin.Client
}

// Start runs a registrar for the topology YAML until the test ends.
func Start(t testing.TB, yaml string, opts ...registrar.Option) *Env {
	t.Helper()
	top, err := topology.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return run(t, top, opts...)
}

// StartFile runs a registrar for the topology file at path until the test ends.
func StartFile(t testing.TB, path string, opts ...registrar.Option) *Env {
	t.Helper()
	top, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return run(t, top, opts...)
}

func run(t testing.TB, top *topology.Topology, opts ...registrar.Option) *Env {
	t.Helper()
	r, err := registrar.New(registrar.Config{Topology: top}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return &Env{R: r, Top: top, Admin: admin.NewClient("http://"+r.AdminAddr().String(), r.Token())}
}

// FrontEnd returns a Front End's state and bound addresses.
func (e *Env) FrontEnd(t testing.TB, fqdn string) admin.FrontEnd {
	t.Helper()
	for _, f := range e.R.FrontEnds() {
		if f.FQDN == fqdn {
			return f
		}
	}
	t.Fatalf("no Front End %s", fqdn)
	return admin.FrontEnd{}
}

// Addr returns a Front End's bound address for a transport ("udp", "tcp", "tls").
func (e *Env) Addr(t testing.TB, fqdn, transport string) netip.AddrPort {
	t.Helper()
	f := e.FrontEnd(t, fqdn)
	s := map[string]string{"udp": f.UDP, "tcp": f.TCP, "tls": f.TLS}[transport]
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("%s has no %s address (%q)", fqdn, transport, s)
	}
	return a
}

// DoorAddr returns a pool's front door address for a transport.
func (e *Env) DoorAddr(t testing.TB, pool, transport string) netip.AddrPort {
	t.Helper()
	for _, p := range e.R.Pools() {
		if p.FQDN == pool && p.FrontDoor != nil {
			s := map[string]string{"udp": p.FrontDoor.UDP, "tcp": p.FrontDoor.TCP, "tls": p.FrontDoor.TLS}[transport]
			a, err := netip.ParseAddrPort(s)
			if err != nil {
				t.Fatalf("front door of %s has no %s address", pool, transport)
			}
			return a
		}
	}
	t.Fatalf("no front door for %s", pool)
	return netip.AddrPort{}
}

// Primary returns the FQDN of the user's current registrar (Get-CsUserPoolInfo).
func (e *Env) Primary(t testing.TB, aor string) string {
	t.Helper()
	info, err := e.R.UserPoolInfo(aor)
	if err != nil {
		t.Fatal(err)
	}
	return info.PrimaryPoolPrimaryRegistrar
}

// NonPrimary returns a Front End of the user's pool that is not their primary.
func (e *Env) NonPrimary(t testing.TB, aor string) string {
	t.Helper()
	info, err := e.R.UserPoolInfo(aor)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range info.PrimaryPoolMachinesInPreferredOrder {
		if m != info.PrimaryPoolPrimaryRegistrar {
			return m
		}
	}
	t.Fatal("no other Front End")
	return ""
}

// Phone is a minimal SIP user agent for tests: it sends requests and returns final responses.
type Phone struct {
	t         testing.TB
	UA        *sipgo.UserAgent
	Client    *sipgo.Client
	Transport string // "UDP", "TCP" or "TLS"
	callID    string
	cseq      atomic.Uint32
}

// NewPhone returns a phone speaking transport ("udp", "tcp", "tls").
func NewPhone(t testing.TB, transport string) *Phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("fepool-test"), sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	p := &Phone{t: t, UA: ua, Client: client, Transport: strings.ToUpper(transport), callID: fmt.Sprintf("test-%d@127.0.0.1", time.Now().UnixNano())}
	return p
}

// Register builds a REGISTER for aor (user@domain) with the given Contact (nil: one derived from
// the user) and Expires (-1: no header), to send with Send.
func (p *Phone) Register(aor string, contact string, expires int) *sip.Request {
	user, host, _ := strings.Cut(aor, "@")
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host}}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host}})
	cid := sip.CallIDHeader(p.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq.Add(1), MethodName: sip.REGISTER})
	if contact == "" {
		contact = fmt.Sprintf("<sip:%s@127.0.0.1:5099;transport=%s>", user, strings.ToLower(p.Transport))
	}
	req.AppendHeader(sip.NewHeader("Contact", contact))
	if expires >= 0 {
		req.AppendHeader(sip.NewHeader("Expires", fmt.Sprint(expires)))
	}
	req.SetTransport(p.Transport)
	return req
}

// NewCallID makes the phone's next REGISTERs use a fresh Call-ID (a new registration).
func (p *Phone) NewCallID() { p.callID = fmt.Sprintf("test-%d@127.0.0.1", time.Now().UnixNano()) }

// Send sends req to dst as a new transaction (new Via branch) and returns the final response.
func (p *Phone) Send(dst netip.AddrPort, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := req.Clone()
	r.RemoveHeader("Via")
	r.SetDestination(dst.String())
	r.SetTransport(p.Transport)
	return p.Client.Do(ctx, r)
}

// Next returns a copy of req with CSeq+1 (same Call-ID): a refresh.
func (p *Phone) Next(req *sip.Request) *sip.Request {
	r := req.Clone()
	r.CSeq().SeqNo = p.cseq.Add(1)
	return r
}

// Authorize returns a copy of req answering the challenge of res (the first, MD5 by default, or
// the one with the given algorithm), with CSeq+1.
func (p *Phone) Authorize(req *sip.Request, res *sip.Response, user, password, algorithm string) *sip.Request {
	p.t.Helper()
	var chal *digest.Challenge
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		c, err := digest.ParseChallenge(h.Value())
		if err != nil {
			p.t.Fatalf("challenge %q: %v", h.Value(), err)
		}
		if algorithm == "" || strings.EqualFold(c.Algorithm, algorithm) {
			chal = c
			break
		}
	}
	if chal == nil {
		p.t.Fatalf("no %s challenge in %s", algorithm, res.StartLine())
	}
	cred, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: req.Recipient.String(), Username: user, Password: password})
	if err != nil {
		p.t.Fatal(err)
	}
	r := p.Next(req)
	r.RemoveHeader("Authorization")
	r.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	return r
}

// RegisterAuth sends a REGISTER (or any request) to dst, answers the challenge with the user's
// password and returns the final response and the authorised request (to refresh with Next).
func (p *Phone) RegisterAuth(dst netip.AddrPort, req *sip.Request, user, password string) (*sip.Response, *sip.Request) {
	p.t.Helper()
	res, err := p.Send(dst, req)
	if err != nil {
		p.t.Fatalf("%s to %s: %v", req.Method, dst, err)
	}
	if res.StatusCode != 401 {
		return res, req
	}
	authed := p.Authorize(req, res, user, password, "")
	res, err = p.Send(dst, authed)
	if err != nil {
		p.t.Fatalf("authorised %s to %s: %v", req.Method, dst, err)
	}
	return res, authed
}

// Service builds a Lync contact-list SERVICE request of aor: add (setContact) the contacts
// in set and remove (deleteContact) those in remove.
func (p *Phone) Service(aor string, set, remove []string) *sip.Request {
	user, host, _ := strings.Cut(aor, "@")
	req := sip.NewRequest("SERVICE", sip.Uri{Scheme: "sip", User: user, Host: host})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host}}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host}})
	cid := sip.CallIDHeader(fmt.Sprintf("svc-%d@127.0.0.1", time.Now().UnixNano()))
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq.Add(1), MethodName: "SERVICE"})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/SOAP+xml"))
	var b strings.Builder
	b.WriteString(`<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>`)
	for _, c := range set {
		fmt.Fprintf(&b, `<m:setContact xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><m:displayName></m:displayName><m:groups>1</m:groups><m:URI>%s</m:URI></m:setContact>`, c)
	}
	for _, c := range remove {
		fmt.Fprintf(&b, `<m:deleteContact xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><m:URI>%s</m:URI></m:deleteContact>`, c)
	}
	b.WriteString(`</SOAP-ENV:Body></SOAP-ENV:Envelope>`)
	req.SetBody([]byte(b.String()))
	req.SetTransport(p.Transport)
	return req
}

// Notifies answers every NOTIFY reaching the phone's sockets with 200 and delivers it on the
// returned channel (which holds up to 64; more are answered and dropped).
func (p *Phone) Notifies() <-chan *sip.Request {
	p.t.Helper()
	srv, err := sipgo.NewServer(p.UA)
	if err != nil {
		p.t.Fatal(err)
	}
	ch := make(chan *sip.Request, 64)
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		select {
		case ch <- req:
		default:
		}
	})
	return ch
}

// Header returns a response header's value ("" when absent).
func Header(res *sip.Response, name string) string {
	if h := res.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// Headers returns every value of a response header.
func Headers(res *sip.Response, name string) []string {
	var out []string
	for _, h := range res.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

// LogBuffer collects what many goroutines write (a registrar's log, a command's output) for a
// test to read while they run.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Metrics returns the registrar's /metrics text, read in-process (no descriptor needed).
func (e *Env) Metrics() string {
	w := httptest.NewRecorder()
	e.R.MetricsHandler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	return w.Body.String()
}

// Metric returns the value of one series of /metrics, such as
// `fepool_sip_dropped_total{listener="fe01.pool-a.contoso.com",reason="rate_limit"}` (0 when absent).
func (e *Env) Metric(series string) float64 {
	m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(e.Metrics())
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
