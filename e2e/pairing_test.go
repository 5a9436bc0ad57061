//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/configs"
	"github.com/fepool/fepool/registrar/admin"
)

// The pairing sequence end to end: the real fepool binary on the embedded default topology with
// shortened timers; 2,000 client-library clients homed on pool-a, and baresip (UDP) and
// linphonec (TCP) registered through pool-a's proxy front door, live through a crash of pool-a,
// the registrar resiliency timer, resiliency mode at pool-b, Invoke-CsPoolFailOver
// -DisasterMode, a contact list change, pool-a's restore and Invoke-CsPoolFailBack.

const (
	fleetSize       = 2000
	resiliencyTimer = 20 * time.Second
	poolA, poolB    = "pool-a.contoso.com", "pool-b.contoso.com"
	drSoftphoneRun  = 5 * time.Minute
)

// drTopology is configs/default.yaml with the resiliency timer, heartbeat, registration expiry
// and failback shortened so the sequence takes a couple of minutes.
func drTopology() string {
	s := string(configs.DefaultTopology)
	s = strings.ReplaceAll(s, "    backup: pool-", fmt.Sprintf("    resiliency_timer: %s\n    backup: pool-", resiliencyTimer))
	return s + `
fabric: {failure_detection: 1s}
sip:
  expires: {min: 10s, max: 60s, default: 30s}
pairing:
  heartbeat: 1s
  failback_wait: 2s
  failback_pace: {users: 2000, per: 4s}
`
}

// member is one client of the fleet and what it went through.
type member struct {
	c   *client.Client
	aor string

	mu   sync.Mutex
	regs []client.Event // every RegisteredEvent
	got  map[string]int // responses by "code from address"
}

func (m *member) event(e client.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e.Kind {
	case client.RegisteredEvent:
		m.regs = append(m.regs, e)
	case client.Response:
		m.got[fmt.Sprintf("%d from %s", e.Code, e.Server.Addr)]++
	}
}

type fleet struct {
	pool    *client.Pool
	members []*member
}

// startFleet signs in n users of pool-a, each given pool-a's Front Ends then pool-b's (as DNS
// would list them): a Front End redirects a client to its home registrar and names the backup;
// a client that reached its home registrar at once learns no backup and finds pool-b through
// the list.
func startFleet(t *testing.T, srv *server, n int) *fleet {
	t.Helper()
	byPool := map[string][]client.Server{}
	for _, f := range srv.top.FrontEnds {
		byPool[f.Pool] = append(byPool[f.Pool], client.Server{Addr: mustAddr(t, f.UDP), Transport: client.UDP})
	}
	rotate := func(s []client.Server, i int) []client.Server {
		return append(append([]client.Server{}, s[i%len(s):]...), s[:i%len(s)]...)
	}
	// 64 shared sockets: 2,000 own sockets could exceed a CI runner's open-file limit.
	pool, err := client.NewPool(64, netip.Addr{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{pool: pool}
	t.Cleanup(f.close)
	for i := range n {
		m := &member{aor: fmt.Sprintf("sip:user%05d@contoso.com", i), got: map[string]int{}}
		servers := append(rotate(byPool[poolA], i), rotate(byPool[poolB], i)...)
		m.c, err = client.New(client.Config{
			AOR: m.aor, Password: "secret", Servers: servers,
			KeepAlive: 2 * time.Second, RequestTimeout: 2 * time.Second,
			Backoff: client.Backoff{Min: 500 * time.Millisecond, Max: 5 * time.Second},
		}, client.WithPool(pool), client.WithEvents(m.event))
		if err != nil {
			t.Fatal(err)
		}
		f.members = append(f.members, m)
		if err := m.c.Start(); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(25 * time.Millisecond) // a ramp of about 2,000/s
		}
	}
	return f
}

func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, m := range f.members {
		wg.Add(1)
		go func() { defer wg.Done(); m.c.Close() }()
	}
	wg.Wait()
	f.pool.Close()
}

// waitAll waits until every client's status satisfies ok.
func (f *fleet) waitAll(t *testing.T, what string, timeout time.Duration, ok func(client.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var bad []string
		for _, m := range f.members {
			if st := m.c.Status(); !ok(st) {
				bad = append(bad, fmt.Sprintf("%s: %s %s at %s", m.aor, st.State, st.Mode, st.Registrar))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d clients are not %s after %s, such as:\n%s", len(bad), len(f.members), what, timeout, strings.Join(bad[:min(5, len(bad))], "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// registeredAt returns a status check: registered, in mode, with a Front End of pool.
func registeredAt(srv *server, pool string, mode client.Mode) func(client.Status) bool {
	in := map[netip.AddrPort]bool{}
	for _, f := range srv.top.FrontEnds {
		if f.Pool == pool {
			a, _ := netip.ParseAddrPort(f.UDP)
			in[a] = true
		}
	}
	return func(st client.Status) bool {
		return st.State == client.Registered && st.Mode == mode && in[st.Registrar.Addr]
	}
}

func (s *server) pool(t *testing.T, fqdn string) admin.Pool {
	t.Helper()
	pools, err := s.admin.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		if p.FQDN == fqdn {
			return p
		}
	}
	t.Fatalf("no pool %s", fqdn)
	return admin.Pool{}
}

// softphone is a real softphone registered through pool-a's front door.
type softphone struct {
	name  string
	aor   string
	match func(admin.Binding) bool
}

// waitSoftphone waits until the softphone's binding is held in pool, registered after since.
func waitSoftphone(t *testing.T, srv *server, p softphone, pool string, since time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		regs := srv.registrations(t, p.aor)
		if regs.RegisteredAt == pool {
			for _, b := range regs.Bindings {
				if p.match(b) && !b.Registered.Before(since) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not registered at %s (since %s) after %s: %+v", p.name, pool, since.Format(time.TimeOnly), timeout, regs)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestPoolFailureFailoverFailback(t *testing.T) {
	need(t, "baresip", "linphonec")
	srv := serve(t, drTopology())
	ctx := context.Background()
	door := srv.door(t, poolA, "udp")
	doorTCP := srv.door(t, poolA, "tcp")

	// The softphones sign in through the proxy front door.
	b := startBaresipFor(t, drSoftphoneRun)
	b.command(t, "uanew", fmt.Sprintf(`<sip:user05000@contoso.com>;auth_pass=secret;outbound="sip:%s";regint=10;mwi=no`, door))
	l := startLinphonecFor(t, linphoneRC{TCPPort: freePort(t), User: "user05001", Identity: "sip:user05001@contoso.com", Expires: 10,
		Proxy: fmt.Sprintf("sip:%s;transport=tcp", doorTCP)}, drSoftphoneRun)
	phones := []softphone{
		{"baresip", "sip:user05000@contoso.com", isBaresip},
		{"linphonec", "sip:user05001@contoso.com", isLinphone},
	}
	start := time.Now()
	for _, p := range phones {
		waitSoftphone(t, srv, p, poolA, start.Add(-time.Minute), registerWait)
	}

	f := startFleet(t, srv, fleetSize)
	f.waitAll(t, "registered at pool-a in regular mode", time.Minute, registeredAt(srv, poolA, client.Regular))
	t.Logf("%d clients and 2 softphones registered at pool-a in %s", fleetSize, time.Since(start).Round(time.Millisecond))

	// pool-a crashes. Until the resiliency timer expires, pool-b accepts none of its users.
	crashed := time.Now()
	srv.ctl(t, "ctl", "pool-crash", poolA)
	var expiry time.Time
	for {
		p := srv.pool(t, poolB)
		if p.RegisteredUsers != 0 {
			t.Fatalf("pool-b holds %d registrations %s after pool-a crashed, before the resiliency timer", p.RegisteredUsers, time.Since(crashed))
		}
		dr := srv.pool(t, poolA).DisasterRecovery
		if !dr.Heard && expiry.IsZero() {
			expiry = dr.LastHeard.Add(resiliencyTimer)
		}
		if dr.TimerExpired {
			break
		}
		if time.Since(crashed) > resiliencyTimer+10*time.Second {
			t.Fatalf("the resiliency timer never expired: %+v", dr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.waitAll(t, "registered at pool-b in resiliency mode", time.Minute, registeredAt(srv, poolB, client.Resiliency))
	t.Logf("all signed in at pool-b in resiliency mode %s after the crash (timer %s)", time.Since(crashed).Round(time.Millisecond), resiliencyTimer)
	refused := 0
	atB := registeredAt(srv, poolB, client.Resiliency)
	for _, m := range f.members {
		m.mu.Lock()
		for _, r := range m.regs {
			if atB(client.Status{State: client.Registered, Mode: client.Resiliency, Registrar: r.Server}) && r.Time.Before(expiry.Add(-50*time.Millisecond)) {
				t.Errorf("%s registered at %s at %s, before the resiliency timer expired at %s", m.aor, r.Server, r.Time.Format(time.StampMilli), expiry.Format(time.StampMilli))
			}
		}
		for k, n := range m.got {
			if strings.HasPrefix(k, "503 from 127.0.2.") {
				refused += n
			}
		}
		m.mu.Unlock()
	}
	if refused == 0 {
		t.Error("no client was refused by pool-b before the timer: the test did not exercise the wait")
	}
	t.Logf("pool-b answered 503 %d times before the timer", refused)
	// Resiliency mode refuses persistent changes.
	for _, m := range f.members[:20] {
		var se *client.ServiceError
		if err := m.c.AddContact(ctx, client.Contact{URI: "sip:user19999@contoso.com"}); !errors.As(err, &se) || se.Code != 503 {
			t.Fatalf("%s AddContact in resiliency mode: %v", m.aor, err)
		}
	}
	for _, p := range phones {
		waitSoftphone(t, srv, p, poolB, crashed, 2*time.Minute)
	}

	// Failover in disaster mode: regular mode at pool-b, and contact lists can change.
	failedOver := time.Now()
	if out := srv.ctl(t, "ctl", "Invoke-CsPoolFailOver", "-PoolFqdn", poolA, "-DisasterMode", "-Force"); !strings.Contains(out, "FailedOver") {
		t.Fatalf("failover: %s", out)
	}
	f.waitAll(t, "registered at pool-b in regular mode", time.Minute, registeredAt(srv, poolB, client.Regular))
	t.Logf("all in regular mode at pool-b %s after Invoke-CsPoolFailOver", time.Since(failedOver).Round(time.Millisecond))
	added := f.members[:100]
	for i, m := range added {
		if err := m.c.AddContact(ctx, client.Contact{URI: fmt.Sprintf("sip:user%05d@contoso.com", 10000+i), DisplayName: "friend"}); err != nil {
			t.Fatalf("%s AddContact after failover: %v", m.aor, err)
		}
	}
	for _, p := range phones {
		waitSoftphone(t, srv, p, poolB, failedOver, time.Minute)
	}

	// pool-a is restored and the users fail back home.
	srv.ctl(t, "ctl", "pool-start", poolA)
	failingBack := time.Now()
	out := srv.ctl(t, "ctl", "Invoke-CsPoolFailBack", "-PoolFqdn", poolA, "--wait")
	if !strings.Contains(out, "FailingBack") || !strings.Contains(out, "Active") {
		t.Fatalf("failback: %s", out)
	}
	t.Logf("Invoke-CsPoolFailBack --wait:\n%s", out)
	f.waitAll(t, "registered at pool-a in regular mode", time.Minute, registeredAt(srv, poolA, client.Regular))
	t.Logf("all home in regular mode %s after Invoke-CsPoolFailBack", time.Since(failingBack).Round(time.Millisecond))
	for _, p := range phones {
		waitSoftphone(t, srv, p, poolA, failingBack, time.Minute)
	}
	if info := srv.userInfo(t, "sip:user00000@contoso.com"); info.PrimaryPoolFqdn != poolA || info.RegisteredAtPoolFqdn != poolA || info.Mode != "regular" {
		t.Errorf("Get-CsUserPoolInfo after failback: %+v", info)
	}

	// Every contact added at pool-b survived the failback.
	for i, m := range added {
		cs, err := srv.admin.Contacts(ctx, m.aor)
		want := fmt.Sprintf("sip:user%05d@contoso.com", 10000+i)
		if err != nil || cs.BackEnd != poolA || len(cs.Contacts) != 1 || cs.Contacts[0].URI != want {
			t.Fatalf("%s contacts after failback: %+v %v (want %s)", m.aor, cs, err, want)
		}
	}
	b.quit(t)
	l.quit(t)
}

// TestDemo runs `fepool demo` (the README's main command) with fewer clients: it must finish,
// pass its thresholds and leave a report, well within 3 minutes.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	out, code := run(t, 3*time.Minute, dir, fepoolBin, "demo", "--clients", "500", "--quiet")
	if code != 0 || !strings.Contains(out, "PASS never_recovered == 0") || !strings.Contains(out, "Report: ") {
		t.Fatalf("fepool demo exited %d:\n%s", code, tail(out, 60))
	}
	t.Logf("fepool demo with 500 clients took %s", time.Since(start).Round(time.Second))
}
