package client_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/client/clienttest"
)

const (
	regular   = `register-action="added";primary-cluster-type="central";is-connected-to-primary="yes"`
	refreshed = `register-action="refreshed";primary-cluster-type="central";is-connected-to-primary="yes"`
)

func challenge(req *sip.Request, nonce string, stale bool, algs ...string) *sip.Response {
	res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
	for _, a := range algs {
		c := digest.Challenge{Realm: "contoso.com", Nonce: nonce, Algorithm: a, QOP: []string{"auth"}, Stale: stale}
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", c.String()))
	}
	return res
}

func creds(t *testing.T, req *sip.Request) *digest.Credentials {
	t.Helper()
	h := req.GetHeader("Authorization")
	if h == nil {
		return nil
	}
	c, err := digest.ParseCredentials(h.Value())
	if err != nil {
		t.Errorf("client sent bad credentials %q: %v", h.Value(), err)
		return nil
	}
	return c
}

// scripted returns a client of the responders, on a fake clock, with short timeouts.
func scripted(t *testing.T, clock clockwork.Clock, rs ...*clienttest.Responder) (*client.Client, *recorder) {
	t.Helper()
	var servers []client.Server
	for _, r := range rs {
		servers = append(servers, client.Server{Addr: r.Addr(), Transport: "udp"})
	}
	return newClient(t, client.Config{
		AOR: "sip:alice@contoso.com", Password: "secret", Servers: servers,
		RequestTimeout: 400 * time.Millisecond, KeepAlive: -1,
		Backoff: client.Backoff{Min: time.Second, Max: 8 * time.Second},
	}, client.WithClock(clock))
}

func TestPrefersSHA256ReusesNonceAndHandlesStale(t *testing.T) {
	var registers atomic.Int32
	r := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		n := registers.Add(1)
		c := creds(t, req)
		switch {
		case c == nil:
			return []clienttest.Reply{{Response: challenge(req, "n1", false, "MD5", "SHA-256")}}
		case n == 4: // the second refresh: the nonce expired
			return []clienttest.Reply{{Response: challenge(req, "n2", true, "MD5", "SHA-256")}}
		case n > 2:
			return []clienttest.Reply{{Response: clienttest.OK(req, 600, refreshed)}}
		}
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, regular)}}
	})
	clock := clockwork.NewFakeClock()
	c, rec := scripted(t, clock, r)
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	clock.Advance(10 * time.Minute) // refresh with the same nonce, nc 2
	if e := rec.wait(t, client.RegisteredEvent); !e.Refresh {
		t.Fatalf("second registration is not a refresh: %v", e)
	}
	clock.Advance(10 * time.Minute) // refresh: stale, then a new nonce with nc 1
	rec.wait(t, client.Challenged)
	if e := rec.wait(t, client.RegisteredEvent); !e.Refresh {
		t.Fatalf("after the stale nonce: %v", e)
	}
	reqs := r.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d REGISTERs, want 5 (challenge, register, refresh, stale refresh, refresh)", len(reqs))
	}
	want := []struct {
		nonce string
		nc    int
	}{{"", 0}, {"n1", 1}, {"n1", 2}, {"n1", 3}, {"n2", 1}}
	for i, w := range want {
		c := creds(t, reqs[i])
		if w.nonce == "" {
			if c != nil {
				t.Errorf("request %d sent credentials before any challenge", i)
			}
			continue
		}
		if c == nil || c.Nonce != w.nonce || c.Nc != w.nc || !strings.EqualFold(c.Algorithm, "SHA-256") || c.QOP != "auth" {
			t.Errorf("request %d credentials %+v, want nonce %s nc %d SHA-256", i, c, w.nonce, w.nc)
		}
	}
	if reqs[1].CallID().Value() != reqs[4].CallID().Value() || reqs[4].CSeq().SeqNo <= reqs[2].CSeq().SeqNo {
		t.Errorf("refreshes changed the Call-ID or did not raise the CSeq")
	}
	if reqs[1].Via().Params.GetOr("branch", "") == reqs[2].Via().Params.GetOr("branch", "") {
		t.Error("a refresh reused the Via branch")
	}
}

func TestRedirectLoopAndOutsideLoopback(t *testing.T) {
	redirect := func(to *clienttest.Responder) clienttest.Script {
		target := to.Addr().String()
		return func(req *sip.Request) []clienttest.Reply {
			return []clienttest.Reply{{Response: clienttest.Respond(req, 301, "Moved", "Contact: <sip:"+target+";transport=udp>;q=0.7")}}
		}
	}
	a := clienttest.Start(t, nil)
	b := clienttest.Start(t, nil)
	a.SetScript(redirect(b))
	b.SetScript(redirect(a))
	clock := clockwork.NewFakeClock()
	c, rec := scripted(t, clock, a)
	c.Start()
	lost := rec.wait(t, client.Lost)
	if !strings.Contains(lost.Reason, "redirect loop") || lost.Final || lost.Backoff > time.Second {
		t.Fatalf("redirect loop: %v", lost)
	}
	if st := c.Status(); st.State != client.SigningIn || st.Home.Addr != a.Addr() {
		t.Fatalf("status %+v", st)
	}

	out := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		return []clienttest.Reply{{Response: clienttest.Respond(req, 302, "Moved", "Contact: <sip:10.1.2.3:5060>")}}
	})
	c2, rec2 := scripted(t, clock, out)
	c2.Start()
	ev := rec2.wait(t, client.Redirected)
	if !strings.Contains(ev.Reason, "outside loopback refused") {
		t.Fatalf("redirect to 10.1.2.3: %v", ev)
	}
	if lost := rec2.wait(t, client.Lost); !strings.Contains(lost.Reason, "without a usable Contact") {
		t.Fatalf("lost %v", lost)
	}
}

func TestGarbageAndSilenceArePaced(t *testing.T) {
	r := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		return []clienttest.Reply{{Raw: []byte("SIP/2.0 200 OK\r\nthis is not\x00 SIP at all")}, {Raw: []byte{0x16, 0x03, 0x01}}}
	})
	clock := clockwork.NewFakeClock()
	c, rec := scripted(t, clock, r)
	c.Start()
	for i := 1; i <= 4; i++ {
		lost := rec.wait(t, client.Lost)
		ceiling := time.Second << (i - 1)
		if lost.Final || lost.Backoff > ceiling || !strings.Contains(lost.Reason, "no answer") {
			t.Fatalf("loss %d: %v (backoff ceiling %s)", i, lost, ceiling)
		}
		if n := len(r.Requests()); n != i {
			t.Fatalf("after %d losses %d requests: the client did not wait for its backoff", i, n)
		}
		clock.Advance(lost.Backoff)
	}
}

func TestRetryAfterAndMinExpires(t *testing.T) {
	var n atomic.Int32
	r := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		switch n.Add(1) {
		case 1:
			return []clienttest.Reply{{Response: clienttest.Respond(req, 503, "Service Unavailable", "Retry-After: 20", `ms-diagnostics: 1007;reason="Temporarily cannot route"`)}}
		case 2:
			return []clienttest.Reply{{Response: clienttest.Respond(req, 423, "Interval Too Brief", "Min-Expires: 900")}}
		}
		return []clienttest.Reply{{Response: clienttest.OK(req, 900, regular)}}
	})
	clock := clockwork.NewFakeClock()
	c, rec := scripted(t, clock, r)
	c.Start()
	lost := rec.wait(t, client.Lost)
	if lost.Backoff < 20*time.Second || lost.Backoff >= 21*time.Second || !strings.Contains(lost.Reason, "1007") {
		t.Fatalf("503 Retry-After 20: %v", lost)
	}
	clock.Advance(lost.Backoff)
	reg := rec.wait(t, client.RegisteredEvent)
	if reg.Expires != 900*time.Second {
		t.Fatalf("after 423: %v", reg)
	}
	if got := r.Requests()[2].GetHeader("Expires").Value(); got != "900" {
		t.Fatalf("retry after 423 asked Expires %s", got)
	}
}

func TestRefreshAnsweredFixedIsALoss(t *testing.T) {
	var n atomic.Int32
	r := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		if n.Add(1) == 2 {
			return []clienttest.Reply{{Response: clienttest.OK(req, 600, strings.Replace(regular, "added", "fixed", 1))}}
		}
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, regular)}}
	})
	clock := clockwork.NewFakeClock()
	c, rec := scripted(t, clock, r)
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	clock.Advance(10 * time.Minute)
	lost := rec.wait(t, client.Lost)
	if !strings.Contains(lost.Reason, `register-action="fixed"`) {
		t.Fatalf("lost %v", lost)
	}
	clock.Advance(lost.Backoff)
	rec.wait(t, client.RegisteredEvent)
	reqs := r.Requests()
	if reqs[0].CallID().Value() == reqs[2].CallID().Value() {
		t.Error("the client signed in again with the old Call-ID")
	}
}

func TestResiliencyMode(t *testing.T) {
	r := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, `register-action="added";primary-cluster-type="central";is-connected-to-primary="no";user-services-state=unavailable`)}}
	})
	c, rec := scripted(t, clockwork.NewFakeClock(), r)
	c.Start()
	if reg := rec.wait(t, client.RegisteredEvent); reg.Mode != client.Resiliency || c.Status().Mode != client.Resiliency {
		t.Fatalf("mode %v", reg)
	}
}

func TestRefusalsAreFinal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script clienttest.Script
		want   string
	}{
		{"404", func(req *sip.Request) []clienttest.Reply {
			return []clienttest.Reply{{Response: clienttest.Respond(req, 404, "Not Found", `ms-diagnostics: 1003;reason="User does not exist"`)}}
		}, "404"},
		{"wrong password", func(req *sip.Request) []clienttest.Reply {
			return []clienttest.Reply{{Response: challenge(req, "n", false, "MD5")}}
		}, "credentials rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := clienttest.Start(t, tc.script)
			c, rec := scripted(t, clockwork.NewFakeClock(), r)
			c.Start()
			lost := rec.wait(t, client.Lost)
			if !lost.Final || !strings.Contains(lost.Reason, tc.want) {
				t.Fatalf("lost %v", lost)
			}
			if st := c.Status(); st.State != client.SignedOut {
				t.Fatalf("state %s after a refusal", st.State)
			}
		})
	}
}

func notify(r *clienttest.Responder, n int, body, extra string) string {
	return fmt.Sprintf("NOTIFY sip:alice@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-n%d\r\nFrom: <sip:contoso.com>;tag=x\r\nTo: <sip:alice@contoso.com>\r\nCall-ID: notify%d\r\nCSeq: %d NOTIFY\r\nEvent: registration-notify\r\nSubscription-State: terminated;expires=0\r\nContent-Type: text/registration-event\r\n%sContent-Length: %d\r\n\r\n%s",
		r.Peer(), r.Addr(), n, n, n, extra, len(body), body)
}

func TestRegistrationNotifyFollowsPreferredRegistrar(t *testing.T) {
	home := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, regular)}}
	})
	other := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, strings.Replace(regular, `"yes"`, `"no"`, 1))}}
	})
	clock := clockwork.NewFakeClock()
	c, rec := scripted(t, clock, home)
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	home.Send(notify(home, 1, "deregistered;event=preferred-registrar-change", fmt.Sprintf("P-Preferred-Registrar: <sip:%s;transport=udp>\r\n", other.Addr())))
	lost := rec.wait(t, client.Lost)
	if !strings.Contains(lost.Reason, "preferred-registrar-change") {
		t.Fatalf("lost %v", lost)
	}
	clock.Advance(lost.Backoff)
	reg := rec.wait(t, client.RegisteredEvent)
	if reg.Server.Addr != other.Addr() || reg.Mode != client.Resiliency {
		t.Fatalf("signed in again at %v, want the preferred registrar %s", reg, other.Addr())
	}
}

// registersOnly is a registrar that answers REGISTER with 200 (regular mode) and anything else
// with silence.
func registersOnly(t *testing.T) *clienttest.Responder {
	t.Helper()
	return clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		if req.Method != sip.REGISTER {
			return nil
		}
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, regular)}}
	})
}

func TestNotifyFloodIsPaced(t *testing.T) {
	r := registersOnly(t)
	clock := clockwork.NewFakeClock()
	c, rec := scripted(t, clock, r)
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	for i := 0; i < 300; i++ {
		r.Send(notify(r, i, "deregistered;event=rejected", ""))
	}
	lost := rec.wait(t, client.Lost)
	// Let the NOTIFYs land; the client, signing in, must ignore the rest.
	deadline := time.Now().Add(5 * time.Second)
	for countKind(rec, client.Notified) < 300 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := countKind(rec, client.Lost); n != 1 {
		t.Fatalf("%d losses for one flood, want 1", n)
	}
	if n := len(r.Requests()); n != 1 {
		t.Fatalf("the client sent %d REGISTERs before its backoff ended", n)
	}
	if lost.Backoff > time.Second {
		t.Fatalf("first loss backoff %s", lost.Backoff)
	}
}

func TestAnswersOptions(t *testing.T) {
	r := registersOnly(t)
	c, rec := scripted(t, clockwork.NewFakeClock(), r)
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	r.Send(fmt.Sprintf("OPTIONS sip:alice@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-o1\r\nFrom: <sip:contoso.com>;tag=x\r\nTo: <sip:alice@contoso.com>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", r.Peer(), r.Addr()))
	if e := rec.wait(t, client.Notified); e.Reason != "OPTIONS" {
		t.Fatalf("notified %v", e)
	}
}

func countKind(r *recorder, k client.Kind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}
