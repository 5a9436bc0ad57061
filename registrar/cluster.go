package registrar

import (
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/fepool/fepool/registrar/fabric"
	"github.com/fepool/fepool/registrar/frontend"
	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/pairing"
	"github.com/fepool/fepool/registrar/topology"
)

// snapshot is what the SIP path reads: each pool's fabric and its Front Ends' addresses.
type snapshot struct {
	version uint64 // bumped by every publish
	pools   []poolView
}

type poolView struct {
	top    *topology.Pool
	fabric *fabric.Snapshot
	backup int // index of the backup pool, -1 when none
	fes    []feView
	// serves: the fabric is started and a Front End runs services.
	serves bool
	// stores are the Front Ends' registrations (nil while down), read during a failback.
	stores []*location.Store
	dr     drView
	// backEndDown, since survivableAt minus the survivable threshold.
	backEndDown  bool
	survivableAt time.Time
}

// drView is the pool's pairing as its backup pool sees it.
type drView struct {
	state    pairing.State
	hearing  bool          // the backup pool hears this pool
	timer    time.Duration // the resiliency timer
	timerEnd time.Time     // when it expires, while not hearing
}

type feView struct {
	top   *topology.FrontEnd
	up    bool // listeners running
	ports topology.Ports
}

// publish rebuilds the snapshot; callers hold r.mu (or own r exclusively, in New).
func (r *Registrar) publish() {
	r.version++
	s := &snapshot{version: r.version, pools: make([]poolView, len(r.pools))}
	for i, p := range r.pools {
		v := poolView{top: p.top, fabric: p.fabric.Snapshot(), backup: -1, fes: make([]feView, len(p.fes))}
		if b := r.top.BackupOf(p.top); b != nil {
			v.backup = b.Index
		}
		v.stores = make([]*location.Store, len(p.fes))
		for j, f := range p.fes {
			v.fes[j] = feView{top: f.top, up: f.state == StateStarted, ports: f.sip.Ports()}
			v.stores[j] = f.store.Load()
		}
		v.serves = r.servesLocked(p)
		if p.pair != nil {
			v.dr.state, _ = p.pair.State()
			hearing, last := p.pair.Hearing()
			v.dr.hearing, v.dr.timer, v.dr.timerEnd = hearing, p.top.ResiliencyTimer, last.Add(p.top.ResiliencyTimer)
		}
		if p.be != nil {
			if up, since := p.be.Up(); !up {
				v.backEndDown, v.survivableAt = true, since.Add(r.top.Pairing.SurvivableAfter)
			}
		}
		s.pools[i] = v
	}
	r.snap.Store(s)
}

func (s *snapshot) pool(fqdn string) *poolView {
	for i := range s.pools {
		if s.pools[i].top.FQDN == fqdn {
			return &s.pools[i]
		}
	}
	return nil
}

// target is how to reach Front End fe of the pool over transport (another one it serves when it
// does not serve that one).
func (v *poolView) target(fe int, transport, q string) frontend.Target {
	f := v.fes[fe]
	tp := strings.ToLower(transport)
	if !f.ports.Has(tp) {
		for _, alt := range []string{topology.UDP, topology.TCP, topology.TLS} {
			if f.ports.Has(alt) {
				tp = alt
				break
			}
		}
	}
	return frontend.Target{FQDN: f.top.FQDN, Addr: addrPort(f.top, f.ports.Port(tp)), Transport: tp, Q: q}
}

// placement is where a user is served now.
type placement struct {
	refuse     *frontend.Route // set when no registrar serves the user now (wait, drop, 503)
	serving    *poolView
	other      *poolView // the other pool of the pair, named second in a redirect
	rg         location.RG
	primary    int
	resiliency bool
	// needsBinding: served at the backup only because the user is still registered there (a
	// failback has not moved them yet).
	needsBinding bool
}

// decide applies the pairing rules to a user of home, as seen from pool at (-1 for a front
// door, which sees the pools as they are; a backup pool sees its home pool only through the
// heartbeat).
func (s *snapshot) decide(home *poolView, aor string, at int, now time.Time) (pairing.Decision, pairing.Situation) {
	sit := pairing.Situation{State: home.dr.state, HomeServing: home.serves, HomeSurvivable: home.survivable(now)}
	if home.backup >= 0 {
		b := &s.pools[home.backup]
		sit.HasBackup, sit.BackupServing, sit.BackupSurvivable = true, b.serves, b.survivable(now)
		if at == home.backup {
			sit.HomeServing = home.dr.hearing
		}
		switch {
		case home.dr.hearing:
			sit.TimerLeft = home.dr.timer
		case !now.Before(home.dr.timerEnd):
			sit.TimerExpired = true
		default:
			sit.TimerLeft = home.dr.timerEnd.Sub(now)
		}
		if home.dr.state == pairing.FailingBack {
			sit.RegisteredAtBackup = b.registered(aor, now)
		}
	}
	return pairing.Decide(sit), sit
}

// place finds where a user is served now.
func (s *snapshot) place(u topology.User, at int, now time.Time, before beforeTimer) placement {
	home := s.pool(u.Pool)
	if home == nil {
		return placement{refuse: &frontend.Route{Kind: frontend.Unavailable, Diag: frontend.DiagCannotRoute}}
	}
	d, sit := s.decide(home, u.AOR, at, now)
	pl := placement{resiliency: d.Resiliency}
	pl.needsBinding = sit.State == pairing.FailingBack && d.Where == pairing.Backup && sit.HomeServing && sit.RegisteredAtBackup
	switch d.Where {
	case pairing.Home:
		pl.serving = home
		if home.backup >= 0 {
			pl.other = &s.pools[home.backup]
		}
	case pairing.Backup:
		pl.serving, pl.other = &s.pools[home.backup], home
	case pairing.Wait:
		return placement{refuse: before.route(d.RetryAfter)}
	default:
		return placement{refuse: &frontend.Route{Kind: frontend.Unavailable, Diag: frontend.DiagCannotRoute}}
	}
	pl.rg = location.RG{Pool: pl.serving.top.Index, Index: fabric.RoutingGroupOf(u.AOR, pl.serving.top.RoutingGroups)}
	prim, ok := pl.serving.fabric.Primary(pl.rg.Index)
	if !ok {
		return placement{serving: pl.serving, refuse: &frontend.Route{Kind: frontend.Unavailable, Diag: frontend.DiagCannotRoute}}
	}
	pl.primary = prim
	return pl
}

// targets are the registrars a redirect names: the serving one (q=0.7), then the other pool's
// (q=0.3) when it has one for the user.
func (pl *placement) targets(aor, transport string) []frontend.Target {
	out := []frontend.Target{pl.serving.target(pl.primary, transport, "0.7")}
	if pl.other != nil {
		if op, ok := pl.other.fabric.Primary(fabric.RoutingGroupOf(aor, pl.other.top.RoutingGroups)); ok {
			out = append(out, pl.other.target(op, transport, "0.3"))
		}
	}
	return out
}

// beforeTimer is how a backup pool answers a home pool's user before the resiliency timer
// expired.
type beforeTimer struct {
	answer     string        // topology.Before503, Before480 or BeforeDrop
	retryAfter time.Duration // the most Retry-After says
}

func (b beforeTimer) route(left time.Duration) *frontend.Route {
	if b.answer == topology.BeforeDrop {
		return &frontend.Route{Kind: frontend.Drop}
	}
	route := &frontend.Route{Kind: frontend.Unavailable, Diag: frontend.DiagBeforeResiliencyTimer, RetryAfter: min(left, b.retryAfter)}
	if b.answer == topology.Before480 {
		route.Code = 480
	}
	return route
}

func (r *Registrar) beforeTimer() beforeTimer {
	return beforeTimer{answer: r.top.Pairing.BeforeTimer, retryAfter: r.top.SIP.RetryAfter}
}

// survivable reports whether the pool's Back End has been down past the survivable threshold.
func (v *poolView) survivable(now time.Time) bool {
	return v.backEndDown && !now.Before(v.survivableAt)
}

// registered reports whether the user has an active registration on its routing group's
// primary in this pool.
func (v *poolView) registered(aor string, now time.Time) bool {
	prim, ok := v.fabric.Primary(fabric.RoutingGroupOf(aor, v.top.RoutingGroups))
	if !ok || v.stores[prim] == nil {
		return false
	}
	return len(v.stores[prim].Get(aor).Active(now)) > 0
}

// serving reports whether a Front End of the pool runs services in a started pool.
func (v *poolView) serving(fe int) bool {
	return v.fabric.State == fabric.Started && v.fabric.Running[fe] && v.fes[fe].up
}

// Route implements frontend.Cluster.
func (r *Registrar) Route(self *topology.FrontEnd, u topology.User, transport string) frontend.Route {
	s := r.snap.Load()
	if !s.pools[self.Pool.Index].serving(self.Index) {
		return frontend.Route{Kind: frontend.Unavailable, Diag: frontend.DiagCriticalAppsNotRunning}
	}
	pl := s.place(u, self.Pool.Index, r.clock.Now(), r.beforeTimer())
	if pl.refuse != nil {
		return *pl.refuse
	}
	if pl.rg.Pool == self.Pool.Index && pl.primary == self.Index {
		return frontend.Route{Kind: frontend.Serve, RG: pl.rg, Resiliency: pl.resiliency, Version: s.version, NeedsBinding: pl.needsBinding}
	}
	return frontend.Route{Kind: frontend.Redirect, Targets: pl.targets(u.AOR, transport)}
}

// FrontDoorRoute implements frontend.Cluster.
func (r *Registrar) FrontDoorRoute(fd *topology.FrontDoor, aor, transport string) frontend.Route {
	s := r.snap.Load()
	u, known := r.top.LookupUser(aor)
	v := &s.pools[fd.Pool.Index]
	if known {
		pl := s.place(u, -1, r.clock.Now(), r.beforeTimer())
		switch {
		case pl.refuse == nil:
			return frontend.Route{Kind: frontend.Redirect, Targets: pl.targets(u.AOR, transport)}
		case pl.serving == nil:
			return *pl.refuse
		}
		v = pl.serving
	}
	// An unknown user, or one whose routing group has no registrar: a running Front End of the
	// user's pool (or this front door's) answers properly (challenge then 404, or 503 with why).
	for i := range v.fes {
		if v.serving(i) {
			return frontend.Route{Kind: frontend.Forward, Targets: []frontend.Target{v.target(i, transport, "")}}
		}
	}
	if known {
		return frontend.Route{Kind: frontend.Unavailable, Diag: frontend.DiagCannotRoute}
	}
	return frontend.Route{Kind: frontend.Unavailable, Diag: frontend.DiagCriticalAppsNotRunning}
}

var errNotPrimary = errors.New("not the primary")

// Register implements frontend.Cluster: it applies the REGISTER on the primary under the
// AOR's lock there, then stores the new record on every secondary, all under the AOR's
// stripe lock so replicas see one AOR's updates in order. No store lock is held while another
// is taken: Front Ends replicating to each other cannot deadlock.
func (r *Registrar) Register(self *topology.FrontEnd, route frontend.Route, aor string, req location.Request) (location.Result, bool) {
	rg := route.RG
	f := r.fes[self]
	store := f.store.Load()
	if store == nil {
		return location.Result{}, false
	}
	pol := location.Policy{Min: r.top.SIP.ExpiresMin, Max: r.top.SIP.ExpiresMax, Default: r.top.SIP.ExpiresDefault, MaxEndpoints: r.top.SIP.MaxEndpoints}
	mu := r.stripe(aor)
	mu.Lock()
	defer mu.Unlock()
	var res location.Result
	var secondaries []int
	err := store.Update(rg, aor, func(old *location.Record) (*location.Record, error) {
		s := r.snap.Load()
		if s.version != route.Version {
			// The cluster changed since the decision: a control-plane change publishes its
			// snapshot before it scans registrations, so deciding again here guarantees that
			// it either sees this record or this request sees the change.
			return nil, errNotPrimary
		}
		v := s.pools[rg.Pool]
		if prim, ok := v.fabric.Primary(rg.Index); !ok || prim != self.Index || rg.Pool != self.Pool.Index {
			return nil, errNotPrimary
		}
		now := r.clock.Now()
		if route.NeedsBinding && len(old.Active(now)) == 0 {
			return nil, errNotPrimary // a failback moved the user meanwhile
		}
		res = location.Apply(aor, old, req, pol, now)
		if res.Status != 200 {
			return old, nil
		}
		secondaries = v.fabric.Replicas[rg.Index][1:]
		return res.Record, nil
	})
	if err != nil {
		return location.Result{}, false
	}
	for _, sec := range secondaries {
		if ss := r.pools[rg.Pool].fes[sec].store.Load(); ss != nil {
			ss.Put(rg, aor, res.Record)
		}
	}
	return res, true
}

// stripe is the lock that orders the replication of one AOR's updates.
func (r *Registrar) stripe(aor string) *sync.Mutex {
	return &r.stripes[maphash.String(r.stripeSeed, aor)%uint64(len(r.stripes))]
}

// Serving implements frontend.Cluster.
func (r *Registrar) Serving(self *topology.FrontEnd) (bool, frontend.Diagnostic) {
	if r.snap.Load().pools[self.Pool.Index].serving(self.Index) {
		return true, frontend.Diagnostic{}
	}
	return false, frontend.DiagCriticalAppsNotRunning
}
