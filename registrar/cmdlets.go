package registrar

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/fabric"
	"github.com/fepool/fepool/registrar/frontend"
	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/topology"
)

func addrPort(f *topology.FrontEnd, port int) netip.AddrPort {
	return netip.AddrPortFrom(f.Address, uint16(port))
}

func addrString(a netip.AddrPort) string {
	if !a.IsValid() || a.Port() == 0 {
		return ""
	}
	return a.String()
}

// routingGroupID is a stable GUID for an RG, as Lync shows them.
func routingGroupID(pool string, rg int) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("fepool:%s/rg/%d", pool, rg))).String()
}

// feState derives a Front End's service state: listeners up in a pool that is not (yet) serving
// it show as Starting.
func (r *Registrar) feState(f *fe) string {
	if f.state != StateStarted {
		return f.state
	}
	if f.pool.fabric.State() != fabric.Started || !f.pool.fabric.Running(f.top.Index) {
		return StateStarting
	}
	return StateStarted
}

func (r *Registrar) frontEndInfo(f *fe) admin.FrontEnd {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frontEndInfoLocked(f)
}

func (r *Registrar) frontEndInfoLocked(f *fe) admin.FrontEnd {
	a := f.sip.Addrs()
	out := admin.FrontEnd{
		FQDN: f.top.FQDN, Pool: f.pool.top.FQDN, Index: f.top.Index, State: r.feState(f), Since: f.since,
		Address: f.top.Address.String(), UDP: addrString(a.UDP), TCP: addrString(a.TCP), TLS: addrString(a.TLS),
		Connections: f.sip.Connections(),
	}
	for rg := 0; rg < f.pool.top.RoutingGroups; rg++ {
		reps := f.pool.fabric.Replicas(rg)
		if i := slices.Index(reps, f.top.Index); i >= 0 {
			out.Replicas++
			if i == 0 {
				out.Primaries++
			}
		}
	}
	return out
}

// FrontEnds implements admin.Backend.
func (r *Registrar) FrontEnds() []admin.FrontEnd {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []admin.FrontEnd
	for _, p := range r.pools {
		for _, f := range p.fes {
			out = append(out, r.frontEndInfoLocked(f))
		}
	}
	return out
}

// Pools implements admin.Backend.
func (r *Registrar) Pools() []admin.Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []admin.Pool
	for _, p := range r.pools {
		out = append(out, r.poolInfoLocked(p))
	}
	return out
}

func (r *Registrar) poolInfoLocked(p *pool) admin.Pool {
	snap := p.fabric.Snapshot()
	out := admin.Pool{
		FQDN: p.top.FQDN, Edition: p.top.Edition, BackupPool: p.top.Backup,
		FabricState: snap.State.String(), RunningFrontEnds: p.fabric.RunningCount(),
		QuorumRule: fabric.PoolQuorum(len(p.fes)).String(), ColdStartNeed: fabric.ColdStartNeed(len(p.fes)),
		RoutingGroups: p.top.RoutingGroups, MissingReplicas: snap.MissingReplicas(min(fabric.MaxReplicas, len(p.fes))),
		Users: r.top.Users.CountIn(p.top.FQDN),
	}
	if p.fabric.State() == fabric.QuorumLost {
		at := p.fabric.ShutdownAt()
		out.ShutdownAt = &at
	}
	for _, f := range p.fes {
		out.FrontEnds = append(out.FrontEnds, f.top.FQDN)
	}
	out.RegisteredUsers, out.Endpoints = r.registeredLocked(p, snap)
	if fd := p.top.FrontDoor; fd != nil {
		d := r.door(p.top)
		a := d.Addrs()
		out.FrontDoor = &admin.FrontDoor{FQDN: fd.FQDN, Mode: fd.Mode, UDP: addrString(a.UDP), TCP: addrString(a.TCP), TLS: addrString(a.TLS)}
	}
	out.DisasterRecovery = r.drInfoLocked(p)
	out.BackEnd = r.backEndInfoLocked(p)
	return out
}

func (r *Registrar) door(p *topology.Pool) *frontend.FrontDoor {
	i := 0
	for _, tp := range r.top.Pools {
		if tp.FrontDoor == nil {
			continue
		}
		if tp == p {
			return r.doors[i]
		}
		i++
	}
	return nil
}

// registeredLocked counts users and endpoints registered on each RG's primary.
func (r *Registrar) registeredLocked(p *pool, snap *fabric.Snapshot) (users, endpoints int) {
	now := r.clock.Now()
	for _, f := range p.fes {
		s := f.store.Load()
		if s == nil {
			continue
		}
		u, e := s.Counts(func(rg location.RG) bool {
			prim, ok := snap.Primary(rg.Index)
			return rg.Pool == p.top.Index && ok && prim == f.top.Index
		}, now)
		users += u
		endpoints += e
	}
	return users, endpoints
}

// Topology implements admin.Backend.
func (r *Registrar) Topology() admin.Topology {
	out := admin.Topology{Source: r.top.Source, Domain: r.top.Domain, Realm: r.top.Realm, Users: r.top.Users.Count()}
	if r.adminAt != nil {
		out.Admin = r.adminAt.String()
	}
	out.Pools = r.Pools()
	out.FrontEnds = r.FrontEnds()
	return out
}

func (r *Registrar) poolByName(fqdn string) (*pool, error) {
	tp := r.top.Pool(fqdn)
	if tp == nil {
		return nil, fmt.Errorf("%w: no pool %q in the topology", admin.ErrNotFound, fqdn)
	}
	return r.pools[tp.Index], nil
}

func (r *Registrar) user(identity string) (topology.User, error) {
	u, ok := r.top.LookupUser(identity)
	if !ok {
		if topology.NormalizeAOR(identity) == "" {
			return u, fmt.Errorf("%w: %q is not a SIP address such as sip:user00042@contoso.com", admin.ErrBadRequest, identity)
		}
		return u, fmt.Errorf("%w: no user %q in the topology", admin.ErrNotFound, identity)
	}
	return u, nil
}

// UserPoolInfo implements admin.Backend (Get-CsUserPoolInfo).
func (r *Registrar) UserPoolInfo(identity string) (admin.UserPoolInfo, error) {
	u, err := r.user(identity)
	if err != nil {
		return admin.UserPoolInfo{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	home := r.pools[r.top.Pool(u.Pool).Index]
	rg := fabric.RoutingGroupOf(u.AOR, home.top.RoutingGroups)
	out := admin.UserPoolInfo{
		Identity: u.URI(), PrimaryPoolFqdn: home.top.FQDN, UserServicesPoolFqdn: home.top.FQDN,
		RoutingGroup: rg, RoutingGroupId: routingGroupID(home.top.FQDN, rg),
	}
	out.PrimaryPoolPrimaryRegistrar, out.PrimaryPoolBackupRegistrars, out.PrimaryPoolMachinesInPreferredOrder = registrarsOf(home, rg)
	if b := r.top.BackupOf(home.top); b != nil {
		bp := r.pools[b.Index]
		out.BackupPoolFqdn = b.FQDN
		out.BackupPoolPrimaryRegistrar, out.BackupPoolBackupRegistrars, out.BackupPoolMachinesInPreferredOrder = registrarsOf(bp, fabric.RoutingGroupOf(u.AOR, b.RoutingGroups))
	}
	r.userPlacementLocked(u, home, &out)
	return out, nil
}

// registrarsOf lists an RG's primary, its backups, and every Front End of the pool in preferred
// order (the replicas first, then the others in topology order).
func registrarsOf(p *pool, rg int) (primary string, backups, preferred []string) {
	reps := p.fabric.Replicas(rg)
	backups, preferred = []string{}, []string{}
	for i, fe := range reps {
		name := p.fes[fe].top.FQDN
		if i == 0 {
			primary = name
		} else {
			backups = append(backups, name)
		}
		preferred = append(preferred, name)
	}
	for i, f := range p.fes {
		if !slices.Contains(reps, i) {
			preferred = append(preferred, f.top.FQDN)
		}
	}
	return primary, backups, preferred
}

// FabricState implements admin.Backend (Get-CsPoolFabricState).
func (r *Registrar) FabricState(fqdn string, verbose bool) (admin.FabricState, error) {
	p, err := r.poolByName(fqdn)
	if err != nil {
		return admin.FabricState{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	snap := p.fabric.Snapshot()
	want := min(fabric.MaxReplicas, len(p.fes))
	out := admin.FabricState{PoolFqdn: p.top.FQDN, State: snap.State.String(), WantedReplicas: want, RoutingGroups: []admin.RoutingGroup{}}
	users := make([]int, len(snap.Replicas))
	now := r.clock.Now()
	for _, f := range p.fes {
		if s := f.store.Load(); s != nil {
			s.Each(func(rg location.RG) bool {
				prim, ok := snap.Primary(rg.Index)
				return rg.Pool == p.top.Index && ok && prim == f.top.Index
			}, func(rg location.RG, rec *location.Record) bool {
				if len(rec.Active(now)) > 0 {
					users[rg.Index]++
				}
				return true
			})
		}
	}
	for rg, reps := range snap.Replicas {
		g := admin.RoutingGroup{Index: rg, ID: routingGroupID(p.top.FQDN, rg), Secondaries: []string{}, Users: users[rg]}
		for i, fe := range reps {
			if i == 0 {
				g.Primary = p.fes[fe].top.FQDN
			} else {
				g.Secondaries = append(g.Secondaries, p.fes[fe].top.FQDN)
			}
		}
		out.RoutingGroups = append(out.RoutingGroups, g)
		if verbose && len(reps) < want {
			out.MissingReplicas = append(out.MissingReplicas, g)
		}
	}
	return out, nil
}

// ResetRegistrarState implements admin.Backend (Reset-CsPoolRegistrarState).
func (r *Registrar) ResetRegistrarState(fqdn string, req admin.ResetRequest) (admin.ResetResult, error) {
	p, err := r.poolByName(fqdn)
	if err != nil {
		return admin.ResetResult{}, err
	}
	if req.ResetType == "" {
		req.ResetType = string(fabric.ServiceReset)
	}
	t, err := fabric.ParseResetType(req.ResetType)
	if err != nil {
		return admin.ResetResult{}, fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	machine := -1
	if t == fabric.MachineStateRemoved {
		if req.MachineFqdn == "" {
			return admin.ResetResult{}, fmt.Errorf("%w: MachineStateRemoved needs -MachineFqdn", admin.ErrBadRequest)
		}
		fe := r.top.FrontEnd(req.MachineFqdn)
		if fe == nil || fe.Pool != p.top {
			return admin.ResetResult{}, fmt.Errorf("%w: %s is not a Front End of %s", admin.ErrBadRequest, req.MachineFqdn, p.top.FQDN)
		}
		machine = fe.Index
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return admin.ResetResult{}, errClosed
	}
	res, err := p.fabric.Reset(t, machine, r.clock.Now())
	if err != nil {
		return admin.ResetResult{}, fmt.Errorf("%w: %s: %v", admin.ErrConflict, t, err)
	}
	for _, e := range res.Events {
		r.emit(p, e)
	}
	r.reconcileLocked(p, res.Moved, res.DropAll)
	r.armLocked(p)
	r.publish()
	msg := make([]string, 0, len(res.Events))
	for _, e := range res.Events {
		msg = append(msg, e.Msg)
	}
	return admin.ResetResult{PoolFqdn: p.top.FQDN, ResetType: string(t), Message: strings.Join(msg, "; ")}, nil
}

// Registrations implements admin.Backend: the user's bindings on the routing group primary
// that holds them: where the user is served now, else at home, else at the backup pool.
func (r *Registrar) Registrations(identity string) (admin.Registrations, error) {
	u, err := r.user(identity)
	if err != nil {
		return admin.Registrations{}, err
	}
	s := r.snap.Load()
	now := r.clock.Now()
	home := s.pool(u.Pool)
	candidates := []*poolView{home}
	if pl := s.place(u, -1, now, r.beforeTimer()); pl.serving != nil && pl.serving != home {
		candidates = []*poolView{pl.serving, home}
	} else if home.backup >= 0 {
		candidates = append(candidates, &s.pools[home.backup])
	}
	var first *admin.Registrations
	for _, v := range candidates {
		rg := fabric.RoutingGroupOf(u.AOR, v.top.RoutingGroups)
		out := admin.Registrations{Identity: u.URI(), Pool: u.Pool, RegisteredAt: v.top.FQDN, RoutingGroup: rg, Bindings: []admin.Binding{}}
		if prim, ok := v.fabric.Primary(rg); ok {
			out.Registrar = v.fes[prim].top.FQDN
			if store := v.stores[prim]; store != nil {
				for _, b := range store.Get(u.AOR).Active(now) {
					out.Bindings = append(out.Bindings, admin.Binding{
						Contact: b.Contact, Instance: b.Instance, RegID: b.RegID, ExpiresIn: b.ExpiresIn(now),
						Transport: b.Flow.Transport, Source: b.Flow.Remote, CallID: b.CallID, CSeq: b.CSeq,
						UserAgent: b.UserAgent, Path: b.Path, Registered: b.Added,
					})
				}
			}
		}
		if len(out.Bindings) > 0 {
			return out, nil
		}
		if first == nil {
			first = &out
		}
	}
	return *first, nil
}

// MetricsHandler implements admin.Backend.
func (r *Registrar) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(r.metrics.Registry, promhttp.HandlerOpts{Registry: r.metrics.Registry})
}

// Health implements admin.Backend: healthy when every pool is started and no listener died.
func (r *Registrar) Health() admin.Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return admin.Health{OK: false, Status: "shutting down"}
	}
	ok := true
	var parts []string
	for _, p := range r.pools {
		st := p.fabric.State()
		ok = ok && st == fabric.Started
		parts = append(parts, fmt.Sprintf("%s %s (%d/%d Front Ends)", p.top.FQDN, st, p.fabric.RunningCount(), len(p.fes)))
		for _, f := range p.fes {
			if dead := f.sip.DeadListeners(); len(dead) > 0 {
				ok = false
				parts = append(parts, fmt.Sprintf("%s: %s listener dead", f.top.FQDN, strings.Join(dead, ", ")))
			}
		}
	}
	for _, d := range r.doors {
		if dead := d.DeadListeners(); len(dead) > 0 {
			ok = false
			parts = append(parts, fmt.Sprintf("front door %s: %s listener dead", d.FQDN(), strings.Join(dead, ", ")))
		}
	}
	return admin.Health{OK: ok, Status: strings.Join(parts, ", ")}
}

var _ admin.Backend = (*Registrar)(nil)
var _ frontend.Cluster = (*Registrar)(nil)
