package registrar

import (
	"errors"
	"strings"

	"github.com/fepool/fepool/registrar/fabric"
	"github.com/fepool/fepool/registrar/frontend"
	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/topology"
)

// snapshot is what the SIP path reads: each pool's fabric and its Front Ends' addresses.
type snapshot struct {
	pools []poolView
}

type poolView struct {
	top    *topology.Pool
	fabric *fabric.Snapshot
	backup int // index of the backup pool, -1 when none
	fes    []feView
}

type feView struct {
	top   *topology.FrontEnd
	up    bool // listeners running
	ports topology.Ports
}

// publish rebuilds the snapshot; callers hold r.mu (or own r exclusively, in New).
func (r *Registrar) publish() {
	s := &snapshot{pools: make([]poolView, len(r.pools))}
	for i, p := range r.pools {
		v := poolView{top: p.top, fabric: p.fabric.Snapshot(), backup: -1, fes: make([]feView, len(p.fes))}
		if b := r.top.BackupOf(p.top); b != nil {
			v.backup = b.Index
		}
		for j, f := range p.fes {
			v.fes[j] = feView{top: f.top, up: f.state == StateStarted, ports: f.sip.Ports()}
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

// registrars returns the user's registrar targets: the home pool's RG primary (q=0.7) and the
// backup pool's registrar for the user (q=0.3). ok is false when the home RG has no primary.
func (s *snapshot) registrars(u topology.User, transport string) (targets []frontend.Target, rg location.RG, ok bool) {
	home := s.pool(u.Pool)
	if home == nil {
		return nil, rg, false
	}
	rg = location.RG{Pool: home.top.Index, Index: fabric.RoutingGroupOf(u.AOR, home.top.RoutingGroups)}
	prim, ok := home.fabric.Primary(rg.Index)
	if !ok {
		return nil, rg, false
	}
	targets = append(targets, home.target(prim, transport, "0.7"))
	if home.backup >= 0 {
		b := &s.pools[home.backup]
		if bprim, ok := b.fabric.Primary(fabric.RoutingGroupOf(u.AOR, b.top.RoutingGroups)); ok {
			targets = append(targets, b.target(bprim, transport, "0.3"))
		}
	}
	return targets, rg, true
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
	targets, rg, ok := s.registrars(u, transport)
	if !ok {
		return frontend.Route{Kind: frontend.Unavailable, Diag: frontend.DiagCannotRoute}
	}
	if rg.Pool == self.Pool.Index && targets[0].FQDN == self.FQDN {
		return frontend.Route{Kind: frontend.Serve, RG: rg}
	}
	return frontend.Route{Kind: frontend.Redirect, Targets: targets}
}

// FrontDoorRoute implements frontend.Cluster.
func (r *Registrar) FrontDoorRoute(fd *topology.FrontDoor, aor, transport string) frontend.Route {
	s := r.snap.Load()
	u, known := r.top.LookupUser(aor)
	if known {
		if targets, _, ok := s.registrars(u, transport); ok {
			return frontend.Route{Kind: frontend.Redirect, Targets: targets}
		}
	}
	// An unknown user, or one whose routing group has no registrar: a running Front End of the
	// user's pool (or this front door's) answers properly (challenge then 404, or 503 with why).
	v := &s.pools[fd.Pool.Index]
	if known {
		v = s.pool(u.Pool)
	}
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

// Register implements frontend.Cluster: it applies the REGISTER under the AOR's lock on the
// primary and stores the new record on every secondary before releasing it.
func (r *Registrar) Register(self *topology.FrontEnd, rg location.RG, aor string, req location.Request) (location.Result, bool) {
	f := r.fes[self]
	store := f.store.Load()
	if store == nil {
		return location.Result{}, false
	}
	pol := location.Policy{Min: r.top.SIP.ExpiresMin, Max: r.top.SIP.ExpiresMax, Default: r.top.SIP.ExpiresDefault, MaxEndpoints: r.top.SIP.MaxEndpoints}
	var res location.Result
	err := store.Update(rg, aor, func(old *location.Record) (*location.Record, error) {
		v := r.snap.Load().pools[rg.Pool]
		if prim, ok := v.fabric.Primary(rg.Index); !ok || prim != self.Index || rg.Pool != self.Pool.Index {
			return nil, errNotPrimary
		}
		res = location.Apply(aor, old, req, pol, r.clock.Now())
		if res.Status != 200 {
			return old, nil
		}
		for _, sec := range v.fabric.Replicas[rg.Index][1:] {
			if ss := r.pools[rg.Pool].fes[sec].store.Load(); ss != nil {
				ss.Put(rg, aor, res.Record)
			}
		}
		return res.Record, nil
	})
	if err != nil {
		return location.Result{}, false
	}
	return res, true
}

// Serving implements frontend.Cluster.
func (r *Registrar) Serving(self *topology.FrontEnd) (bool, frontend.Diagnostic) {
	if r.snap.Load().pools[self.Pool.Index].serving(self.Index) {
		return true, frontend.Diagnostic{}
	}
	return false, frontend.DiagCriticalAppsNotRunning
}
