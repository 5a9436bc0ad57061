package client_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/registrar"
	"github.com/fepool/fepool/registrar/admin"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

// untilRegistered lets the client retry (advancing the shared clock past each backoff) until
// it registers, and returns the registration.
func untilRegistered(t *testing.T, rec *recorder, clock *clockwork.FakeClock) client.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-rec.ch:
			switch e.Kind {
			case client.RegisteredEvent:
				return e
			case client.Lost:
				if e.Final {
					t.Fatalf("gave up: %v", e)
				}
				clock.Advance(e.Backoff)
			}
		case <-deadline:
			t.Fatalf("never registered again; events: %v", rec.kinds())
		}
	}
}

// advanceUntil moves the shared clock by step until the client reports an event whose text
// starts with prefix (timers fire on their own goroutines, so one big step could outrun a
// timer that a callback re-arms).
func advanceUntil(t *testing.T, rec *recorder, clock *clockwork.FakeClock, step time.Duration, prefix string) {
	t.Helper()
	seen := len(rec.kinds())
	waitFor(t, "a "+prefix+" event", func() bool {
		clock.Advance(step)
		for _, k := range rec.kinds()[seen:] {
			if strings.HasPrefix(k, prefix) {
				return true
			}
		}
		return false
	})
}

// TestThroughPoolFailoverAndFailback runs a client and the registrar on one fake clock through
// a pool failure, the resiliency timer, a disaster-mode failover and a failback.
func TestThroughPoolFailoverAndFailback(t *testing.T) {
	clock := clockwork.NewFakeClock()
	env := rt.Start(t, rt.Topology+"pairing: {failback_wait: 1s, failback_pace: {users: 100, per: 1s}}\n", registrar.WithClock(clock))
	c, rec := viaRedirect(t, env, "udp", clock)
	info, _ := env.R.UserPoolInfo(alice)
	home, backup := env.Addr(t, info.PrimaryPoolPrimaryRegistrar, "udp"), env.Addr(t, info.BackupPoolPrimaryRegistrar, "udp")
	ctx := context.Background()
	if err := c.AddContact(ctx, client.Contact{URI: "sip:bob@contoso.com", DisplayName: "Bob & co", Groups: "1"}); err != nil {
		t.Fatalf("AddContact in regular mode: %v", err)
	}

	if _, err := env.R.PoolAction("pool-a.contoso.com", "crash"); err != nil {
		t.Fatal(err)
	}
	// Keep-alives to the dead Front End go unanswered.
	advanceUntil(t, rec, clock, 5*time.Second, "lost")
	// The backup answers 503 until the resiliency timer (120 s) expires, then resiliency mode.
	reg := untilRegistered(t, rec, clock)
	if reg.Server.Addr != backup || reg.Mode != client.Resiliency {
		t.Fatalf("after the timer: %v", reg)
	}
	var se *client.ServiceError
	if err := c.AddContact(ctx, client.Contact{URI: "sip:carol@contoso.com"}); !errors.As(err, &se) || se.Code != 503 || !strings.Contains(se.Diagnostics, "resiliency mode") {
		t.Fatalf("AddContact in resiliency mode: %v", err)
	}

	if _, err := env.R.FailOver("pool-a.contoso.com", admin.FailOverRequest{DisasterMode: true}); err != nil {
		t.Fatal(err)
	}
	if n := rec.wait(t, client.Notified); !strings.Contains(n.Reason, "preferred-registrar-change") {
		t.Fatalf("notified: %v", n)
	}
	if reg := untilRegistered(t, rec, clock); reg.Server.Addr != backup || reg.Mode != client.Regular {
		t.Fatalf("after failover: %v", reg)
	}
	if err := c.AddContact(ctx, client.Contact{URI: "sip:carol@contoso.com"}); err != nil {
		t.Fatalf("AddContact after failover: %v", err)
	}

	if _, err := env.R.PoolAction("pool-a.contoso.com", "start"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.R.FailBack("pool-a.contoso.com", admin.FailBackRequest{}); err != nil {
		t.Fatal(err)
	}
	advanceUntil(t, rec, clock, 200*time.Millisecond, "notified") // the sync, then the move
	// Moved home: in resiliency mode while the failback runs (signed out once more when it
	// completes), or at once in regular mode if it completed meanwhile.
	reg = untilRegistered(t, rec, clock)
	if reg.Server.Addr != home {
		t.Fatalf("moved to %v, want home %s", reg, home)
	}
	if reg.Mode == client.Resiliency {
		reg = untilRegistered(t, rec, clock)
	}
	if reg.Server.Addr != home || reg.Mode != client.Regular {
		t.Fatalf("after failback: %v", reg)
	}
	if err := c.RemoveContact(ctx, "sip:bob@contoso.com"); err != nil {
		t.Fatalf("RemoveContact after failback: %v", err)
	}
	cs, err := env.R.Contacts(alice)
	if err != nil || cs.BackEnd != "pool-a.contoso.com" || len(cs.Contacts) != 1 || cs.Contacts[0].URI != "sip:carol@contoso.com" {
		t.Fatalf("contacts: %+v %v", cs, err)
	}
}

func TestContactChangeNeedsRegistration(t *testing.T) {
	c, _ := newClient(t, client.Config{AOR: "sip:" + alice, Password: "secret", Servers: []client.Server{{Addr: netip.MustParseAddrPort("127.0.0.1:9"), Transport: "udp"}}})
	if err := c.AddContact(context.Background(), client.Contact{URI: "sip:bob@contoso.com"}); !errors.Is(err, client.ErrNotRegistered) {
		t.Fatalf("AddContact signed out: %v", err)
	}
	if err := c.AddContact(context.Background(), client.Contact{}); err == nil {
		t.Fatal("AddContact without a URI")
	}
}
