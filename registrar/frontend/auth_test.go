package frontend_test

// Digest authentication as a client meets it, over real loopback sockets: replays, malformed
// nonces, the credentials' uri, and what an unknown user learns.

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/rs/zerolog"

	"github.com/fepool/fepool/registrar"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

const (
	alice = "user00042@contoso.com" // homed on pool-a
	bob   = "user00043@contoso.com"
)

// start runs the registrar test topology (with extra lines under sip:) and returns it with its
// log.
func start(t *testing.T, sipSettings string) (*rt.Env, *rt.LogBuffer) {
	t.Helper()
	log := &rt.LogBuffer{}
	top := strings.Replace(rt.Topology, "sip:\n", "sip:\n"+sipSettings, 1)
	return rt.Start(t, top, registrar.WithLogger(zerolog.New(log))), log
}

func authMetric(t *testing.T, env *rt.Env, fe, outcome string) float64 {
	t.Helper()
	return env.Metric(fmt.Sprintf(`fepool_auth_total{listener=%q,outcome=%q}`, fe, outcome))
}

func send(t *testing.T, ph *rt.Phone, dst netip.AddrPort, req *sip.Request) *sip.Response {
	t.Helper()
	res, err := ph.Send(dst, req)
	if err != nil {
		t.Fatalf("%s to %s: %v", req.Method, dst, err)
	}
	return res
}

// challenge sends req without credentials and returns the 401.
func challenge(t *testing.T, ph *rt.Phone, dst netip.AddrPort, req *sip.Request) *sip.Response {
	t.Helper()
	res := send(t, ph, dst, req)
	if res.StatusCode != 401 {
		t.Fatalf("unauthenticated %s: %s", req.Method, res.StartLine())
	}
	return res
}

// withCredentials returns a copy of req (CSeq+1) answering the MD5 challenge of res: with
// qop=auth and nonce-count nc when nc > 0, without qop (RFC 2069, as some softphones answer)
// when nc is 0. uri is the digest uri ("": the Request-URI).
func withCredentials(t *testing.T, ph *rt.Phone, req *sip.Request, res *sip.Response, user, password string, nc int, uri string) *sip.Request {
	t.Helper()
	chal, err := digest.ParseChallenge(rt.Header(res, "WWW-Authenticate"))
	if err != nil {
		t.Fatal(err)
	}
	if nc == 0 {
		chal.QOP = nil
	}
	if uri == "" {
		uri = req.Recipient.String()
	}
	cred, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: uri, Username: user, Password: password, Count: nc, Cnonce: "0a4f113b"})
	if err != nil {
		t.Fatal(err)
	}
	r := ph.Next(req)
	r.RemoveHeader("Authorization")
	r.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	return r
}

func isStaleChallenge(res *sip.Response) bool {
	return res.StatusCode == 401 && strings.Contains(rt.Header(res, "WWW-Authenticate"), "stale=true")
}

func bindings(t *testing.T, env *rt.Env, aor string) []string {
	t.Helper()
	regs, err := env.R.Registrations(aor)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range regs.Bindings {
		out = append(out, b.Contact)
	}
	return out
}

// TestReplayedNoQopRegisterIsChallengedStale: a REGISTER answered without qop, captured and sent
// again as a new transaction (with the attacker's Contact, or Contact: * to remove every
// binding), gets a fresh challenge with stale=true and changes nothing. The digest covers only
// the method and the uri, so such a replay could carry any headers.
func TestReplayedNoQopRegisterIsChallengedStale(t *testing.T) {
	env, _ := start(t, "")
	fe := env.Primary(t, alice)
	dst := env.Addr(t, fe, "udp")
	ph := rt.NewPhone(t, "udp")
	req := ph.Register(alice, "", 600)
	authed := withCredentials(t, ph, req, challenge(t, ph, dst, req), "user00042", "secret", 0, "")
	if res := send(t, ph, dst, authed); res.StatusCode != 200 {
		t.Fatalf("no-qop REGISTER: %s", res.StartLine())
	}
	want := bindings(t, env, alice)
	if len(want) != 1 {
		t.Fatalf("bindings after the REGISTER: %q", want)
	}

	// The attacker sends it again as a new transaction, and with a higher CSeq (the registrar
	// refuses an old CSeq for the Call-ID on its own), a Contact of theirs, or Contact: *.
	attacker := rt.NewPhone(t, "udp")
	replays := map[string]func(r *sip.Request){
		"as captured":     func(*sip.Request) {},
		"a higher CSeq":   func(r *sip.Request) { r.CSeq().SeqNo += 100 },
		"another Contact": func(r *sip.Request) { r.ReplaceHeader(sip.NewHeader("Contact", "<sip:123@127.0.0.9:5099>")) },
		"Contact: *": func(r *sip.Request) {
			r.CSeq().SeqNo += 200
			r.ReplaceHeader(sip.NewHeader("Contact", "*"))
			r.ReplaceHeader(sip.NewHeader("Expires", "0"))
		},
	}
	for name, edit := range replays {
		replay := authed.Clone()
		edit(replay)
		if res := send(t, attacker, dst, replay); !isStaleChallenge(res) {
			t.Errorf("replay %s: %s %q, want 401 with stale=true", name, res.StartLine(), rt.Headers(res, "WWW-Authenticate"))
		}
	}
	if got := bindings(t, env, alice); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("bindings after the replays: %q, want %q", got, want)
	}
	if n := authMetric(t, env, fe, "replayed"); n != float64(len(replays)) {
		t.Errorf("replays counted: %v, want %d", n, len(replays))
	}
	// The user answers the stale challenge and carries on.
	next := ph.Next(authed)
	next.RemoveHeader("Authorization")
	if res := send(t, ph, dst, withCredentials(t, ph, next, challenge(t, ph, dst, next), "user00042", "secret", 0, "")); res.StatusCode != 200 {
		t.Fatalf("the user's next REGISTER: %s", res.StartLine())
	}
}

// TestReplayedQopCountIsChallengedStale: with qop=auth a (nonce, nc) pair is taken once and nc
// must grow; a refresh with the next count needs no challenge.
func TestReplayedQopCountIsChallengedStale(t *testing.T) {
	env, _ := start(t, "")
	dst := env.Addr(t, env.Primary(t, alice), "udp")
	ph := rt.NewPhone(t, "udp")
	req := ph.Register(alice, "", 600)
	res401 := challenge(t, ph, dst, req)
	for _, step := range []struct {
		nc    int
		stale bool
	}{{1, false}, {1, true}, {3, false}, {2, true}, {4, false}} {
		res := send(t, ph, dst, withCredentials(t, ph, req, res401, "user00042", "secret", step.nc, ""))
		switch {
		case step.stale && !isStaleChallenge(res):
			t.Fatalf("nc=%d again or lower: %s, want 401 with stale=true", step.nc, res.StartLine())
		case !step.stale && res.StatusCode != 200:
			t.Fatalf("nc=%d: %s, want 200", step.nc, res.StartLine())
		}
	}
}

// rawRegister sends a REGISTER for alice with the given Authorization value over a UDP socket
// of its own and returns the response's bytes.
func rawRegister(t *testing.T, dst netip.AddrPort, i int, authz string) []byte {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := fmt.Sprintf("REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-nonce%d;rport\r\n"+
		"From: <sip:user00042@contoso.com>;tag=%d\r\nTo: <sip:user00042@contoso.com>\r\nCall-ID: nonce-%d\r\nCSeq: 1 REGISTER\r\n"+
		"Contact: <sip:user00042@127.0.0.1:5099>\r\nMax-Forwards: 70\r\nAuthorization: %s\r\nContent-Length: 0\r\n\r\n",
		conn.LocalAddr(), i, i, i, authz)
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return buf[:n]
}

// TestMalformedNonceIsAFreshChallenge: a nonce of any length or encoding gets a fresh 401, not
// a 500, and nothing is logged at error level. A nonce longer than 28 bytes used to overrun the
// decoder: a panic, answered 500 with its stack logged.
func TestMalformedNonceIsAFreshChallenge(t *testing.T) {
	env, log := start(t, "")
	fe := env.Primary(t, alice)
	dst := env.Addr(t, fe, "udp")
	nonces := map[string]string{
		"100 bytes":  strings.Repeat("A", 100),
		"10 KB":      strings.Repeat("QUJD", 10<<8),
		"not base64": strings.Repeat("!*", 19),
	}
	i := 0
	for name, nonce := range nonces {
		i++
		for _, qop := range []string{"", `, qop=auth, nc=00000001, cnonce="c"`} {
			authz := fmt.Sprintf(`Digest username="user00042", realm="contoso.com", nonce="%s", uri="sip:contoso.com", response="6629fae49393a05397450978507c4ef1", algorithm=MD5%s`, nonce, qop)
			raw := rawRegister(t, dst, i*2+len(qop)%2, authz)
			res, err := sip.ParseMessage(raw)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			r := res.(*sip.Response)
			if r.StatusCode != 401 || isStaleChallenge(r) || !strings.Contains(rt.Header(r, "WWW-Authenticate"), `nonce="`) {
				t.Errorf("nonce %s (qop %q): %s %q, want a fresh 401", name, qop, r.StartLine(), rt.Headers(r, "WWW-Authenticate"))
			}
		}
	}
	if n := authMetric(t, env, fe, "rejected"); n != float64(2*len(nonces)) {
		t.Errorf("rejected credentials counted: %v, want %d", n, 2*len(nonces))
	}
	if strings.Contains(log.String(), `"level":"error"`) {
		t.Fatalf("logged at error level:\n%.2000s", log.String())
	}
}

// TestAuthorizationURIMustBeTheRequestURI: credentials computed for another resource get 400
// (RFC 2617 §3.2.2.5), counted; the default port spelled out, or an address of the registrar
// itself (SIPp's default: the address it sends to, here a Front End's or the front door's), name
// the same resource.
func TestAuthorizationURIMustBeTheRequestURI(t *testing.T) {
	env, _ := start(t, "")
	fe := env.Primary(t, alice)
	dst := env.Addr(t, fe, "udp")
	door := env.DoorAddr(t, "pool-a.contoso.com", "udp") // proxies to the user's Front End
	ph := rt.NewPhone(t, "udp")
	for _, tc := range []struct {
		name string
		to   netip.AddrPort
		uri  string
		want int
	}{
		{"another domain", dst, "sip:fabrikam.com", 400},
		{"an address that is not the registrar's", dst, "sip:127.0.0.99:5060", 400},
		{"another user", dst, "sip:user00043@contoso.com", 400},
		{"the default port spelled out", dst, "sip:contoso.com:5060", 200},
		{"the Front End's address", dst, "sip:" + dst.String(), 200},
		{"the front door's address, through it", door, "sip:" + door.String(), 200},
	} {
		req := ph.Register(alice, "", 600)
		res := send(t, ph, tc.to, withCredentials(t, ph, req, challenge(t, ph, tc.to, req), "user00042", "secret", 1, tc.uri))
		if res.StatusCode != tc.want || tc.want == 400 && !strings.Contains(res.Reason, "uri") {
			t.Errorf("%s (%s): %s, want %d", tc.name, tc.uri, res.StartLine(), tc.want)
		}
	}
	if n := authMetric(t, env, fe, "uri-mismatch"); n != 3 {
		t.Errorf("uri mismatches counted: %v, want 3", n)
	}
}

// shape is what a client can tell of a response besides its nonce, tags and the echo of its own
// request: the status line, the header names in order, and the values of the headers the
// registrar wrote (nonce removed).
func shape(res *sip.Response) string {
	nonce := regexp.MustCompile(`nonce="[^"]*"`)
	var b strings.Builder
	b.WriteString(res.StartLine())
	for _, h := range res.Headers() {
		b.WriteString("\n" + h.Name())
		switch strings.ToLower(h.Name()) {
		case "via", "from", "to", "call-id", "cseq":
		default:
			b.WriteString(": " + nonce.ReplaceAllString(h.Value(), `nonce="-"`))
		}
	}
	b.WriteString("\n\n" + string(res.Body()))
	return b.String()
}

// TestUnknownUserLooksLikeWrongPassword: answering the challenge with a wrong password looks the
// same for an unknown user as for a known one (sipvicious svcrack reported "User not found"
// from a 404 with ms-diagnostics 1003), and valid credentials for an unknown To user look like
// valid credentials for someone else.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	env, _ := start(t, "")
	dst := env.Addr(t, "fe01.pool-a.contoso.com", "udp")
	ph := rt.NewPhone(t, "udp")
	answer := func(aor, user, password string) *sip.Response {
		req := ph.Register(aor, "", 600)
		return send(t, ph, dst, withCredentials(t, ph, req, challenge(t, ph, dst, req), user, password, 1, ""))
	}
	known := answer(bob, "user00043", "guess")
	unknown := answer("nosuchuser@contoso.com", "nosuchuser", "guess")
	if known.StatusCode != 401 {
		t.Fatalf("wrong password: %s", known.StartLine())
	}
	if a, b := shape(known), shape(unknown); a != b {
		t.Fatalf("a wrong password and an unknown user differ:\n%s\n---\n%s", a, b)
	}
	// alice's valid credentials for bob, and for a user who does not exist.
	known = answer(bob, "user00042", "secret")
	unknown = answer("nosuchuser@contoso.com", "user00042", "secret")
	if known.StatusCode != 403 {
		t.Fatalf("another user's credentials: %s", known.StartLine())
	}
	if a, b := shape(known), shape(unknown); a != b {
		t.Fatalf("another user's credentials, for a known and an unknown To user, differ:\n%s\n---\n%s", a, b)
	}
}

// TestRevealUnknownUsersOption: sip.reveal_unknown_users restores Lync's 404 with ms-diagnostics
// 1003 for an unknown user who answers the challenge (the challenge itself stays the same).
func TestRevealUnknownUsersOption(t *testing.T) {
	env, _ := start(t, "  reveal_unknown_users: true\n")
	dst := env.Addr(t, "fe01.pool-a.contoso.com", "udp")
	ph := rt.NewPhone(t, "udp")
	req := ph.Register("nosuchuser@contoso.com", "", 600)
	res := send(t, ph, dst, withCredentials(t, ph, req, challenge(t, ph, dst, req), "nosuchuser", "guess", 1, ""))
	if res.StatusCode != 404 || !strings.HasPrefix(rt.Header(res, "ms-diagnostics"), `1003;reason="User does not exist";source="fe01.pool-a.contoso.com"`) {
		t.Fatalf("unknown user, revealed: %s %q", res.StartLine(), rt.Header(res, "ms-diagnostics"))
	}
	req = ph.Register("nosuchuser@contoso.com", "", 600)
	if res := send(t, ph, dst, withCredentials(t, ph, req, challenge(t, ph, dst, req), "user00042", "secret", 1, "")); res.StatusCode != 404 {
		t.Fatalf("valid credentials for an unknown To user, revealed: %s", res.StartLine())
	}
	req = ph.Register(alice, "", 600)
	if res := send(t, ph, dst, withCredentials(t, ph, req, challenge(t, ph, dst, req), "user00042", "guess", 1, "")); res.StatusCode != 401 {
		t.Fatalf("wrong password, revealing: %s", res.StartLine())
	}
}
