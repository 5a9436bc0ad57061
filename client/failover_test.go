package client_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/registrar/admin"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

const alice = "user00042@contoso.com"

// viaRedirect signs a client in through a Front End that is not the user's primary, so it
// learns the home (primary) and backup (pool-b) registrars. Client timers run on clock.
func viaRedirect(t *testing.T, env *rt.Env, transport string, clock clockwork.Clock) (*client.Client, *recorder) {
	t.Helper()
	c, rec := newClient(t, client.Config{
		AOR: "sip:" + alice, Password: "secret",
		Servers:        []client.Server{{Addr: env.Addr(t, env.NonPrimary(t, alice), transport), Transport: transport}},
		RequestTimeout: 500 * time.Millisecond,
	}, client.WithClock(clock))
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	reg := rec.wait(t, client.RegisteredEvent)
	if reg.Server.Addr != env.Addr(t, env.Primary(t, alice), transport) {
		t.Fatalf("registered with %v, want the primary", reg.Server)
	}
	return c, rec
}

func TestCrashedPrimaryNoticedByKeepAliveThenSignInAgain(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	clock := clockwork.NewFakeClock()
	c, rec := viaRedirect(t, env, "udp", clock)
	primary := env.Primary(t, alice)
	clock.Advance(30 * time.Second) // a STUN keep-alive, answered
	waitFor(t, "the STUN keep-alive to be answered", func() bool { return !client.KeepAlivePending(c) })
	if _, err := env.R.FrontEndAction(primary, "crash"); err != nil {
		t.Fatal(err)
	}
	// A keep-alive to the dead Front End, then the next finds it unanswered. The clock moves
	// in steps: each keep-alive arms the next from its own goroutine.
	advanceUntil(t, rec, clock, 5*time.Second, "lost")
	lost := rec.wait(t, client.Lost)
	if !strings.Contains(lost.Reason, "keep-alive unanswered") || lost.Final {
		t.Fatalf("lost %v", lost)
	}
	clock.Advance(lost.Backoff)
	// Home (dead) times out, then the backup pool's registrar redirects to the new primary.
	reg := rec.wait(t, client.RegisteredEvent)
	if np := env.Primary(t, alice); np == primary || reg.Server.Addr != env.Addr(t, np, "udp") {
		t.Fatalf("registered with %v; new primary %s", reg.Server, np)
	}
}

func TestClosedConnectionNoticed(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	clock := clockwork.NewFakeClock()
	_, rec := viaRedirect(t, env, "tcp", clock)
	if _, err := env.R.FrontEndAction(env.Primary(t, alice), "crash"); err != nil {
		t.Fatal(err)
	}
	// The crash resets the connection; the next flow check (1 s) sees it gone.
	waitFor(t, "the connection to close", func() bool {
		clock.Advance(time.Second)
		select {
		case e := <-rec.ch:
			if e.Kind == client.Lost {
				if !strings.Contains(e.Reason, "connection to the registrar closed") {
					t.Fatalf("lost %v", e)
				}
				return true
			}
		default:
		}
		return false
	})
}

func TestQuorumLossAnswers503RetryAfter(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	clock := clockwork.NewFakeClock()
	_, rec := viaRedirect(t, env, "udp", clock)
	primary := env.Primary(t, alice)
	for _, f := range env.R.FrontEnds() {
		if f.Pool == "pool-a.contoso.com" && f.FQDN != primary {
			if _, err := env.R.FrontEndAction(f.FQDN, "stop"); err != nil {
				t.Fatal(err)
			}
		}
	}
	clock.Advance(10 * time.Minute) // the refresh reaches a pool without quorum
	lost := rec.wait(t, client.Lost)
	if !strings.Contains(lost.Reason, "503") || !strings.Contains(lost.Reason, "5000") || lost.Backoff < 30*time.Second {
		t.Fatalf("lost %v", lost)
	}
}

func TestRefreshAfterFullResetIsALoss(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	clock := clockwork.NewFakeClock()
	_, rec := viaRedirect(t, env, "udp", clock)
	if _, err := env.R.ResetRegistrarState("pool-a.contoso.com", admin.ResetRequest{ResetType: "FullReset"}); err != nil {
		t.Fatal(err)
	}
	primary := env.Primary(t, alice)
	clock.Advance(10 * time.Minute)
	lost := rec.wait(t, client.Lost)
	if !strings.Contains(lost.Reason, `register-action="added"`) {
		t.Fatalf("lost %v", lost)
	}
	clock.Advance(lost.Backoff)
	if reg := rec.wait(t, client.RegisteredEvent); reg.Server.Addr != env.Addr(t, primary, "udp") {
		t.Fatalf("signed in again at %v", reg.Server)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
