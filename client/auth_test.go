package client_test

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/client"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

// TestRefreshesTakeNoChallenge: against the registrar, which refuses a nonce-count it has seen,
// the client refreshes on the nonce it was given (qop=auth, nc going up): one challenge at sign-in,
// none for each refresh.
func TestRefreshesTakeNoChallenge(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	clock := clockwork.NewFakeClock()
	c, rec := newClient(t, client.Config{
		AOR: "sip:user00042@contoso.com", Password: "secret",
		Servers:        []client.Server{server(t, env.Addr(t, env.Primary(t, "user00042@contoso.com"), "udp"), "udp")},
		RequestTimeout: 2 * time.Second, KeepAlive: -1,
	}, client.WithClock(clock))
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, client.RegisteredEvent)
	for i := range 3 {
		clock.Advance(10 * time.Minute)
		if e := rec.wait(t, client.RegisteredEvent); !e.Refresh {
			t.Fatalf("registration %d is not a refresh: %v", i+2, e)
		}
	}
	challenged := 0
	rec.mu.Lock()
	for _, e := range rec.evs {
		if e.Kind == client.Challenged {
			challenged++
		}
	}
	rec.mu.Unlock()
	if challenged != 1 {
		t.Fatalf("%d challenges for a sign-in and three refreshes, want 1: %v", challenged, rec.kinds())
	}
}
