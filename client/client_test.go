package client_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fepool/fepool/client"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

// Idle timer workers end on their own a moment after the last client work.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/fepool/fepool/client.(*workers).work"))
}

// recorder collects a client's events.
type recorder struct {
	mu  sync.Mutex
	evs []client.Event
	ch  chan client.Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan client.Event, 1024)} }

func (r *recorder) add(e client.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
	select {
	case r.ch <- e:
	default:
	}
}

// wait returns the next event of kind k, failing after 10 s.
func (r *recorder) wait(t *testing.T, k client.Kind) client.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-r.ch:
			if e.Kind == k {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event; got %v", k, r.kinds())
			return client.Event{}
		}
	}
}

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.evs {
		out = append(out, e.String())
	}
	return out
}

func server(t *testing.T, a netip.AddrPort, transport string) client.Server {
	t.Helper()
	return client.Server{Addr: a, Transport: transport}
}

func newClient(t *testing.T, cfg client.Config, opts ...client.Option) (*client.Client, *recorder) {
	t.Helper()
	rec := newRecorder()
	c, err := client.New(cfg, append([]client.Option{client.WithEvents(rec.add)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, rec
}

func TestSignInThroughFrontDoorAndByRedirect(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	for _, tc := range []struct {
		name, transport string
		via             func() netip.AddrPort
	}{
		{"front door udp", "udp", func() netip.AddrPort { return env.DoorAddr(t, "pool-a.contoso.com", "udp") }},
		{"front door tcp", "tcp", func() netip.AddrPort { return env.DoorAddr(t, "pool-a.contoso.com", "tcp") }},
		{"redirect udp", "udp", func() netip.AddrPort { return env.Addr(t, env.NonPrimary(t, "user00042@contoso.com"), "udp") }},
		{"redirect tcp", "tcp", func() netip.AddrPort { return env.Addr(t, env.NonPrimary(t, "user00042@contoso.com"), "tcp") }},
		{"redirect tls", "tls", func() netip.AddrPort { return env.Addr(t, env.NonPrimary(t, "user00042@contoso.com"), "tls") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rec := newClient(t, client.Config{
				AOR: "sip:user00042@contoso.com", Password: "secret",
				Servers: []client.Server{server(t, tc.via(), tc.transport)},
			})
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			reg := rec.wait(t, client.RegisteredEvent)
			if reg.Mode != client.Regular || reg.Expires != 600*time.Second {
				t.Fatalf("registered %v", reg)
			}
			st := c.Status()
			if st.State != client.Registered {
				t.Fatalf("status %+v", st)
			}
			regs, _ := env.R.Registrations("user00042@contoso.com")
			found := false
			for _, b := range regs.Bindings {
				found = found || b.Transport == map[string]string{"udp": "UDP", "tcp": "TCP", "tls": "TLS"}[tc.transport]
			}
			if !found {
				t.Fatalf("registrar holds %+v", regs)
			}
			if err := c.Stop(context.Background()); err != nil {
				t.Fatalf("stop: %v", err)
			}
			rec.wait(t, client.SignedOutEvent)
			if regs, _ := env.R.Registrations("user00042@contoso.com"); len(regs.Bindings) != 0 {
				t.Fatalf("binding left after Stop: %+v", regs)
			}
		})
	}
}
