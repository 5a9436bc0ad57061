package registrar_test

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	rt "github.com/fepool/fepool/registrar/registrartest"
)

const alice = "user00042@contoso.com" // homed on pool-a

var nonceRE = regexp.MustCompile(`nonce="[^"]*"`)

func TestRegisterChallengeServeRefreshRemove(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			dst := env.Addr(t, env.Primary(t, alice), transport)
			ph := rt.NewPhone(t, transport)
			req := ph.Register(alice, "", 600)
			res, err := ph.Send(dst, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 401 {
				t.Fatalf("unauthenticated REGISTER: %s", res.StartLine())
			}
			chals := rt.Headers(res, "WWW-Authenticate")
			if len(chals) != 2 || !strings.Contains(chals[0], "algorithm=MD5") || !strings.Contains(chals[1], "algorithm=SHA-256") || !strings.Contains(chals[0], `qop="auth"`) {
				t.Fatalf("challenges = %q", chals)
			}
			// SHA-256 this time; MD5 is covered by every other test.
			authed := ph.Authorize(req, res, "user00042", "secret", "SHA-256")
			res, err = ph.Send(dst, authed)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("authorised REGISTER: %v %v", res, err)
			}
			for name, want := range map[string]string{
				"presence-State": `register-action="added";primary-cluster-type="central";is-connected-to-primary="yes"`,
				"ms-keep-alive":  "UAS; tcp=no; hop-hop=yes; end-end=no; timeout=300",
				"Server":         "RTC/5.0",
				"Expires":        "600",
			} {
				if got := rt.Header(res, name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if c := rt.Headers(res, "Contact"); len(c) != 1 || !strings.HasSuffix(c[0], ";expires=600") {
				t.Errorf("Contact = %q", c)
			}
			if rt.Header(res, "Date") == "" {
				t.Error("no Date header")
			}
			// Refresh: same Call-ID, CSeq+1, new branch, the same nonce with nc+1.
			refresh := ph.Authorize(authed, res401(t, ph, dst, authed), "user00042", "secret", "")
			res, err = ph.Send(dst, refresh)
			if err != nil || res.StatusCode != 200 || !strings.Contains(rt.Header(res, "presence-State"), `register-action="refreshed"`) {
				t.Fatalf("refresh: %v %v", res, err)
			}
			regs, err := env.R.Registrations(alice)
			if err != nil || len(regs.Bindings) != 1 || regs.Registrar != env.Primary(t, alice) || regs.Bindings[0].Transport != strings.ToUpper(transport) {
				t.Fatalf("registrations = %+v, %v", regs, err)
			}
			// Remove it.
			remove := ph.Register(alice, "", 0)
			res, _ = ph.RegisterAuth(dst, remove, "user00042", "secret")
			if res.StatusCode != 200 || len(rt.Headers(res, "Contact")) != 0 {
				t.Fatalf("un-REGISTER: %s contacts %q", res.StartLine(), rt.Headers(res, "Contact"))
			}
		})
	}
}

// res401 gets a fresh challenge for req (a request without credentials).
func res401(t *testing.T, ph *rt.Phone, dst netip.AddrPort, req *sip.Request) *sip.Response {
	t.Helper()
	r := ph.Next(req)
	r.RemoveHeader("Authorization")
	res, err := ph.Send(dst, r)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("challenge: %v %v", res, err)
	}
	return res
}

func TestNonPrimaryRedirectsToHomeServer(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			other := env.NonPrimary(t, alice)
			ph := rt.NewPhone(t, transport)
			res, _ := ph.RegisterAuth(env.Addr(t, other, transport), ph.Register(alice, "", 600), "user00042", "secret")
			if res.StatusCode != 301 || res.Reason != "Redirect request to Home Server" {
				t.Fatalf("got %s", res.StartLine())
			}
			info, _ := env.R.UserPoolInfo(alice)
			want := []string{
				fmt.Sprintf("<sip:%s;transport=%s>;q=0.7", env.Addr(t, info.PrimaryPoolPrimaryRegistrar, transport), transport),
				fmt.Sprintf("<sip:%s;transport=%s>;q=0.3", env.Addr(t, info.BackupPoolPrimaryRegistrar, transport), transport),
			}
			if got := rt.Headers(res, "Contact"); !slices.Equal(got, want) {
				t.Fatalf("Contacts = %q, want %q", got, want)
			}
		})
	}
	// A pool-b Front End redirects a pool-a user home too.
	ph := rt.NewPhone(t, "udp")
	res, _ := ph.RegisterAuth(env.Addr(t, "fe01.pool-b.contoso.com", "udp"), ph.Register(alice, "", 600), "user00042", "secret")
	if res.StatusCode != 301 || !strings.Contains(rt.Headers(res, "Contact")[0], env.Addr(t, env.Primary(t, alice), "udp").String()) {
		t.Fatalf("pool-b FE: %s %q", res.StartLine(), rt.Headers(res, "Contact"))
	}
}

func TestUnknownUserSameChallengeAndAnswer(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	dst := env.Addr(t, "fe01.pool-a.contoso.com", "udp")
	ph := rt.NewPhone(t, "udp")
	known, _ := ph.Send(dst, ph.Register(alice, "", 600))
	unknownReq := ph.Register("mallory@contoso.com", "", 600)
	unknown, _ := ph.Send(dst, unknownReq)
	if unknown.StatusCode != 401 {
		t.Fatalf("unknown user: %s", unknown.StartLine())
	}
	strip := func(r *sip.Response) string {
		return nonceRE.ReplaceAllString(strings.Join(rt.Headers(r, "WWW-Authenticate"), "|"), "")
	}
	if strip(known) != strip(unknown) {
		t.Fatalf("challenges differ:\n%s\n%s", strip(known), strip(unknown))
	}
	// Answering it gets a fresh challenge, as a wrong password does (Lync's 404 with
	// ms-diagnostics 1003 only with sip.reveal_unknown_users: frontend's auth_test.go).
	res, _ := ph.Send(dst, ph.Authorize(unknownReq, unknown, "mallory", "guess", ""))
	if res.StatusCode != 401 || rt.Header(res, "ms-diagnostics") != "" {
		t.Fatalf("unknown user with credentials: %s %q", res.StartLine(), rt.Header(res, "ms-diagnostics"))
	}
	// Someone else's credentials: forbidden. A wrong password: challenged again.
	bobReq := ph.Register("user00043@contoso.com", "", 600)
	res, _ = ph.Send(dst, ph.Authorize(bobReq, known, "user00042", "secret", ""))
	if res.StatusCode != 403 {
		t.Fatalf("user00042's credentials for user00043: %s", res.StartLine())
	}
	req := ph.Register(alice, "", 600)
	c, _ := ph.Send(dst, req)
	res, _ = ph.Send(dst, ph.Authorize(req, c, "user00042", "wrong", ""))
	if res.StatusCode != 401 {
		t.Fatalf("wrong password: %s", res.StartLine())
	}
}

func TestExpiryClampTooBriefAndEndpointLimit(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	dst := env.Addr(t, env.Primary(t, alice), "udp")
	ph := rt.NewPhone(t, "udp")
	res, _ := ph.RegisterAuth(dst, ph.Register(alice, "", 60), "user00042", "secret")
	if res.StatusCode != 423 || rt.Header(res, "Min-Expires") != "300" {
		t.Fatalf("Expires 60: %s Min-Expires %q", res.StartLine(), rt.Header(res, "Min-Expires"))
	}
	res, _ = ph.RegisterAuth(dst, ph.Register(alice, "<sip:a@127.0.0.1:5001>;expires=3600", -1), "user00042", "secret")
	if res.StatusCode != 200 || rt.Header(res, "Expires") != "900" {
		t.Fatalf("expires=3600: %s Expires %q", res.StartLine(), rt.Header(res, "Expires"))
	}
	for i := 2; i <= 8; i++ {
		ph.NewCallID()
		res, _ = ph.RegisterAuth(dst, ph.Register(alice, fmt.Sprintf("<sip:a@127.0.0.1:50%02d>", i), 600), "user00042", "secret")
		if res.StatusCode != 200 || len(rt.Headers(res, "Contact")) != i {
			t.Fatalf("endpoint %d: %s with %d contacts", i, res.StartLine(), len(rt.Headers(res, "Contact")))
		}
	}
	ph.NewCallID()
	res, _ = ph.RegisterAuth(dst, ph.Register(alice, "<sip:a@127.0.0.1:5099>", 600), "user00042", "secret")
	if res.StatusCode != 403 {
		t.Fatalf("9th endpoint: %s", res.StartLine())
	}
	// Several contacts in one request, and instance/reg-id kept.
	ph.NewCallID()
	bob := "user00043@contoso.com"
	req := ph.Register(bob, `<sip:b@127.0.0.1:6001>;+sip.instance="<urn:uuid:11111111-2222-3333-4444-555555555555>";reg-id=1, <sip:b@127.0.0.1:6002>;expires=400`, 600)
	req.AppendHeader(sip.NewHeader("Supported", "outbound, path"))
	res, _ = ph.RegisterAuth(env.Addr(t, env.Primary(t, bob), "udp"), req, "user00043", "secret")
	cs := rt.Headers(res, "Contact")
	if res.StatusCode != 200 || len(cs) != 2 || !strings.Contains(strings.Join(cs, ","), `+sip.instance="<urn:uuid:11111111-2222-3333-4444-555555555555>";reg-id=1;expires=600`) || !strings.Contains(strings.Join(cs, ","), "6002>;expires=400") {
		t.Fatalf("two contacts: %s %q", res.StartLine(), cs)
	}
	if rt.Header(res, "Require") != "outbound" {
		t.Errorf("reg-id with Supported: outbound should get Require: outbound, got %q", rt.Header(res, "Require"))
	}
	// Contact: * removes all.
	ph.NewCallID()
	res, _ = ph.RegisterAuth(env.Addr(t, env.Primary(t, bob), "udp"), ph.Register(bob, "*", 0), "user00043", "secret")
	if res.StatusCode != 200 || len(rt.Headers(res, "Contact")) != 0 {
		t.Fatalf("Contact *: %s %q", res.StartLine(), rt.Headers(res, "Contact"))
	}
	res, _ = ph.RegisterAuth(env.Addr(t, env.Primary(t, bob), "udp"), ph.Register(bob, "*", 600), "user00043", "secret")
	if res.StatusCode != 400 {
		t.Fatalf("Contact * with Expires 600: %s", res.StartLine())
	}
}

func TestNoAuthUser(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	ph := rt.NewPhone(t, "udp")
	res, err := ph.Send(env.Addr(t, env.Primary(t, "open@contoso.com"), "udp"), ph.Register("open@contoso.com", "", 600))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("no-auth user: %v %v", res, err)
	}
	// Addressed at the server instead of the domain, as softphones do.
	ph.NewCallID()
	res, err = ph.Send(env.Addr(t, env.Primary(t, "open@contoso.com"), "udp"), ph.Register("open@127.0.1.1", "", 600))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("user@ip: %v %v", res, err)
	}
}

func TestFrontDoorProxyAddsPath(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	for _, tc := range []struct{ transport, aor, user string }{
		{"udp", alice, "user00042"},
		{"tcp", "user00044@contoso.com", "user00044"},
		{"udp", "user01042@contoso.com", "user01042"}, // a pool-b user through pool-a's front door
	} {
		t.Run(tc.transport+" "+tc.aor, func(t *testing.T) {
			ph := rt.NewPhone(t, tc.transport)
			req := ph.Register(tc.aor, "", 600)
			req.AppendHeader(sip.NewHeader("Supported", "path"))
			res, _ := ph.RegisterAuth(env.DoorAddr(t, "pool-a.contoso.com", tc.transport), req, tc.user, "secret")
			if res.StatusCode != 200 {
				t.Fatalf("through the front door: %s", res.StartLine())
			}
			path := rt.Header(res, "Path")
			door := env.DoorAddr(t, "pool-a.contoso.com", tc.transport).String()
			if !strings.Contains(path, "@"+door+";transport="+tc.transport+";lr;ob>") {
				t.Fatalf("Path = %q", path)
			}
			regs, _ := env.R.Registrations(tc.aor)
			if len(regs.Bindings) != 1 || len(regs.Bindings[0].Path) != 1 || regs.Bindings[0].Path[0] != path {
				t.Fatalf("registrations = %+v", regs)
			}
		})
	}
}

func TestFrontDoorRedirectMode(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	bob := "user01042@contoso.com"
	ph := rt.NewPhone(t, "udp")
	res, _ := ph.RegisterAuth(env.DoorAddr(t, "pool-b.contoso.com", "udp"), ph.Register(bob, "", 600), "user01042", "secret")
	if res.StatusCode != 301 {
		t.Fatalf("redirect front door: %s", res.StartLine())
	}
	want := env.Addr(t, env.Primary(t, bob), "udp").String()
	if c := rt.Headers(res, "Contact"); len(c) != 2 || !strings.Contains(c[0], want) || !strings.HasSuffix(c[0], "q=0.7") {
		t.Fatalf("Contacts %q, want %s first", c, want)
	}
}

func TestCrashPrimaryKeepsBindings(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	before, _ := env.R.UserPoolInfo(alice)
	ph := rt.NewPhone(t, "udp")
	res, authed := ph.RegisterAuth(env.Addr(t, before.PrimaryPoolPrimaryRegistrar, "udp"), ph.Register(alice, "", 600), "user00042", "secret")
	if res.StatusCode != 200 {
		t.Fatal(res.StartLine())
	}
	tcp := rt.NewPhone(t, "tcp")
	bob := "user00043@contoso.com"
	res, _ = tcp.RegisterAuth(env.Addr(t, before.PrimaryPoolPrimaryRegistrar, "tcp"), tcp.Register(bob, "", 600), "user00043", "secret")
	bobOnCrashed := res.StatusCode == 200
	if _, err := env.R.FrontEndAction(before.PrimaryPoolPrimaryRegistrar, "crash"); err != nil {
		t.Fatal(err)
	}
	after, _ := env.R.UserPoolInfo(alice)
	if after.PrimaryPoolPrimaryRegistrar != before.PrimaryPoolBackupRegistrars[0] {
		t.Fatalf("after the crash the primary is %s, want the primary backup %s", after.PrimaryPoolPrimaryRegistrar, before.PrimaryPoolBackupRegistrars[0])
	}
	if fe := env.FrontEnd(t, before.PrimaryPoolPrimaryRegistrar); fe.State != "Failed" {
		t.Fatalf("crashed FE state %s", fe.State)
	}
	// The refresh reaches the promoted Front End, which has the binding: refreshed, not added.
	dst := env.Addr(t, after.PrimaryPoolPrimaryRegistrar, "udp")
	res, _ = ph.Send(dst, ph.Authorize(authed, res401(t, ph, dst, authed), "user00042", "secret", ""))
	if res.StatusCode != 200 || !strings.Contains(rt.Header(res, "presence-State"), `register-action="refreshed"`) {
		t.Fatalf("refresh on the promoted FE: %s %q", res.StartLine(), rt.Header(res, "presence-State"))
	}
	ids := map[int]bool{}
	for _, e := range env.R.Events().Since(0) {
		ids[e.EventID] = true
	}
	for _, id := range []int{32108, 32167, 51037, 51035, 32033} {
		if !ids[id] {
			t.Errorf("no event %d after the crash", id)
		}
	}
	if bobOnCrashed {
		if fe := env.FrontEnd(t, before.PrimaryPoolPrimaryRegistrar); fe.Connections != 0 {
			t.Errorf("crashed FE still has %d TCP connections", fe.Connections)
		}
	}
	// Restart: it comes back as a secondary.
	fe, err := env.R.FrontEndAction(before.PrimaryPoolPrimaryRegistrar, "start")
	if err != nil || fe.State != "Started" || fe.Replicas == 0 {
		t.Fatalf("restart: %+v %v", fe, err)
	}
	if _, err := env.R.FrontEndAction(before.PrimaryPoolPrimaryRegistrar, "start"); err == nil {
		t.Fatal("starting a running FE succeeded")
	}
}

func TestOptionsStunAndKeepalives(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	fe := "fe01.pool-a.contoso.com"
	ph := rt.NewPhone(t, "udp")
	opt := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "127.0.1.1"})
	res, err := ph.Send(env.Addr(t, fe, "udp"), opt)
	if err != nil || res.StatusCode != 200 || !strings.Contains(rt.Header(res, "Allow"), "REGISTER") {
		t.Fatalf("OPTIONS: %v %v", res, err)
	}
	// STUN Binding on the SIP UDP socket.
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(env.Addr(t, fe, "udp")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mapped := stunBinding(t, conn)
	if mapped != conn.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("XOR-MAPPED-ADDRESS %s, want %s", mapped, conn.LocalAddr())
	}
	// CRLF keep-alives: UDP ones are swallowed, a TCP ping gets a pong.
	if _, err := conn.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	tc, err := net.Dial("tcp", env.Addr(t, fe, "tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	pong := make([]byte, 8)
	n, err := tc.Read(pong)
	if err != nil || string(pong[:n]) != "\r\n" {
		t.Fatalf("TCP pong %q %v", pong[:n], err)
	}
	metrics := env.Metrics()
	for _, want := range []string{
		`fepool_keepalives_total{kind="stun",listener="fe01.pool-a.contoso.com"} 1`,
		`fepool_keepalives_total{kind="crlf",listener="fe01.pool-a.contoso.com"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
