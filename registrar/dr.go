package registrar

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/backend"
	"github.com/fepool/fepool/registrar/eventlog"
	"github.com/fepool/fepool/registrar/fabric"
	"github.com/fepool/fepool/registrar/frontend"
	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/pairing"
	"github.com/fepool/fepool/registrar/topology"
)

// This file is pool pairing at run time: each pool's Back End, the heartbeat between paired
// pools, the disaster-recovery state machine (package pairing) driven by the clock and the
// cmdlets, the backup service that keeps both Back Ends in step, and the registration-notify
// batches that move signed-in users between pools.

// Registration-notify events (DESIGN §4).
const (
	eventPreferredRegistrarChange = "preferred-registrar-change"
)

// notifyInFlight bounds the registration-notify requests one batch has outstanding, and
// notifyTimeout how long one waits for its answer.
const (
	notifyInFlight = 64
	notifyTimeout  = 5 * time.Second
)

// setUpPairs opens every pool's Back End, links each pool to its backup and restores the
// disaster-recovery states the Back Ends recorded.
func (r *Registrar) setUpPairs() error {
	for _, p := range r.pools {
		be, err := backend.Open(p.top.BackEndPath, backend.Named(p.top.FQDN))
		if err != nil {
			r.closeBackEnds()
			return fmt.Errorf("pool %s: %w", p.top.FQDN, err)
		}
		p.be = be
	}
	now := r.clock.Now()
	for _, p := range r.pools {
		b := r.top.BackupOf(p.top)
		if b == nil {
			continue
		}
		p.backup = r.pools[b.Index]
		p.pair = pairing.New(pairing.Config{
			Timer: p.top.ResiliencyTimer, FailbackUsers: r.top.Pairing.FailbackUsers, FailbackPer: r.top.Pairing.FailbackPer,
		}, now)
		if err := r.restoreDR(p); err != nil {
			r.closeBackEnds()
			return err
		}
	}
	return nil
}

// restoreDR takes the newest state either Back End recorded for the pool's users.
func (r *Registrar) restoreDR(p *pool) error {
	var best backend.DRState
	found := false
	for _, be := range []*backend.Store{p.be, p.backup.be} {
		d, ok, err := be.LoadDR(p.top.FQDN)
		if err != nil {
			return fmt.Errorf("pool %s: reading its disaster-recovery state from %s: %w", p.top.FQDN, be.Path(), err)
		}
		if ok && (!found || d.Since.After(best.Since)) {
			best, found = d, true
		}
	}
	if !found {
		return nil
	}
	st, err := pairing.ParseState(best.State)
	if err != nil {
		return fmt.Errorf("pool %s: its Back End records %w", p.top.FQDN, err)
	}
	if st == pairing.Active {
		return nil
	}
	p.pair.Restore(st, best.Since)
	r.record(eventlog.Event{Kind: "PoolStateRestored", Pool: p.top.FQDN,
		Message: fmt.Sprintf("restored disaster-recovery state %s (since %s) from the Back End; an interrupted operation completes now", st, best.Since.Format(time.RFC3339))})
	return nil
}

func (r *Registrar) closeBackEnds() {
	for _, p := range r.pools {
		if p.be != nil {
			if err := p.be.Close(); err != nil {
				r.log.Error().Err(err).Str("pool", p.top.FQDN).Msg("closing the Back End")
			}
		}
	}
}

// startPairsLocked completes restored operations and starts the heartbeat. A pairing with a
// Back End on disk is reconciled once (the backup service's pending work is not persisted:
// the master copy is copied to the other Back End at the first heartbeat).
func (r *Registrar) startPairsLocked() {
	now := r.clock.Now()
	for _, p := range r.pools {
		if p.pair != nil && (p.top.BackEndPath != topology.InMemory || p.backup.top.BackEndPath != topology.InMemory) {
			p.unsynced = now
		}
	}
	r.heartbeatLocked()
	paired := false
	for _, p := range r.pools {
		r.drTickLocked(p)
		paired = paired || p.pair != nil
	}
	r.publish()
	if paired {
		r.bg.Add(2)
		go r.heartbeats()
		go r.backupService()
	}
}

// heartbeats checks every pairing each heartbeat interval.
func (r *Registrar) heartbeats() {
	defer r.bg.Done()
	t := r.clock.NewTicker(r.top.Pairing.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.Chan():
			r.mu.Lock()
			if !r.closed && r.heartbeatLocked() {
				r.publish()
			}
			r.mu.Unlock()
		}
	}
}

// servesLocked reports whether a pool gives service: its fabric is started and at least one
// of its Front Ends runs services.
func (r *Registrar) servesLocked(p *pool) bool {
	if p.fabric.State() != fabric.Started {
		return false
	}
	for i, f := range p.fes {
		if f.state == StateStarted && p.fabric.Running(i) {
			return true
		}
	}
	return false
}

func linkOf(a, b *pool) [2]int {
	return [2]int{min(a.top.Index, b.top.Index), max(a.top.Index, b.top.Index)}
}

func (r *Registrar) cutLocked(p *pool) bool { return p.backup != nil && r.cut[linkOf(p, p.backup)] }

// heartbeatLocked records whether each backup pool hears its home pool now. It runs every
// heartbeat interval and after every change of a pool's state, and reports whether anything
// changed.
func (r *Registrar) heartbeatLocked() (changed bool) {
	if !r.started || r.closed {
		return false
	}
	now := r.clock.Now()
	for _, p := range r.pools {
		if p.pair == nil {
			continue
		}
		// A failover or failback whose destination stops serving cannot complete: it is
		// aborted, and the users stay with the pool that serves them (pairing.Allow).
		switch st, _ := p.pair.State(); {
		case st == pairing.FailingBack && !r.servesLocked(p):
			r.drEventsLocked(p, p.pair.AbortFailBack(now))
			changed = true
		case st == pairing.FailingOver && !r.servesLocked(p.backup):
			r.drEventsLocked(p, p.pair.AbortFailOver(now))
			changed = true
		}
		before, _ := p.pair.Hearing()
		if !r.servesLocked(p.backup) {
			p.pair.Unobserved(now) // a backup pool that is down runs no timer
		} else {
			evs := p.pair.Observe(now, r.servesLocked(p) && !r.cutLocked(p))
			changed = changed || len(evs) > 0
			r.drEventsLocked(p, evs)
		}
		if after, _ := p.pair.Hearing(); after != before {
			changed = true
		}
		if !p.unsynced.IsZero() {
			r.kickBackupServiceLocked()
		}
		r.armDRLocked(p)
	}
	return changed
}

// drTickLocked does what is due for a pool: the pairing's deadlines, the next users a failback
// moves, and the Back End's survivable-mode threshold.
func (r *Registrar) drTickLocked(p *pool) {
	now := r.clock.Now()
	if p.pair != nil {
		r.drEventsLocked(p, p.pair.Tick(now))
		if st, _ := p.pair.State(); st == pairing.FailingBack && p.pair.Progress().Moving {
			// Users gone from the backup meanwhile (signed out, expired) take no place in the pace.
			due := p.pair.Due(now)
			moved := 0
			for due > moved && len(p.toMove) > 0 {
				aor := p.toMove[0]
				p.toMove = p.toMove[1:]
				if r.registeredAtLocked(p.backup, aor, now) {
					r.signOutLocked(p, p.backup, p, []string{aor})
					moved++
				}
			}
			if moved > 0 || len(p.toMove) == 0 {
				r.drEventsLocked(p, p.pair.Moved(now, moved, len(p.toMove)))
			}
		}
	}
	if up, since := p.be.Up(); !up && !p.survivable && !now.Before(since.Add(r.top.Pairing.SurvivableAfter)) {
		p.survivable = true
		r.record(eventlog.Event{Kind: "SurvivableModeStarted", Pool: p.top.FQDN,
			Message: fmt.Sprintf("the Back End has been unavailable for %s: the pool's users get resiliency mode (survivable mode) until it returns", r.top.Pairing.SurvivableAfter)})
	}
	r.armDRLocked(p)
}

// armDRLocked sets the pool's disaster-recovery timer to its next deadline.
func (r *Registrar) armDRLocked(p *pool) {
	if p.drTimer != nil {
		p.drTimer.Stop()
		p.drTimer = nil
	}
	if r.closed {
		return
	}
	var next time.Time
	if p.pair != nil {
		next, _ = p.pair.NextDeadline()
	}
	if up, since := p.be.Up(); !up && !p.survivable {
		if at := since.Add(r.top.Pairing.SurvivableAfter); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() {
		return
	}
	p.drTimer = r.clock.AfterFunc(max(0, next.Sub(r.clock.Now())), func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			return
		}
		r.drTickLocked(p)
		r.publish()
	})
}

// drEventsLocked logs a pairing's events and does what each transition entails.
func (r *Registrar) drEventsLocked(p *pool, evs []pairing.Event) {
	for _, e := range evs {
		r.record(eventlog.Event{Kind: e.Kind.String(), Pool: p.top.FQDN, Message: e.Msg})
		switch e.Kind {
		case pairing.FailoverStarted, pairing.FailbackStarted:
			r.saveDRLocked(p)
		case pairing.FailbackAborted:
			p.toMove = nil
			r.saveDRLocked(p)
		case pairing.FailoverAborted:
			r.saveDRLocked(p)
		case pairing.FailedOverEvent:
			r.saveDRLocked(p)
			// Users signed in to the backup in resiliency mode sign in again to get full service.
			r.signOutLocked(p, p.backup, p.backup, r.usersAtLocked(p.backup, p))
		case pairing.FailbackMoving:
			p.toMove = r.usersAtLocked(p.backup, p)
		case pairing.FailedBack:
			p.toMove = nil
			r.saveDRLocked(p)
			// Users moved home in resiliency mode sign in again to get full service.
			r.signOutLocked(p, p, p, r.usersAtLocked(p, p))
		}
	}
}

// saveDRLocked records the pool's disaster-recovery state in both Back Ends (whatever outage is
// emulated: it is the emulator's bookkeeping), so a restarted emulator resumes it.
func (r *Registrar) saveDRLocked(p *pool) {
	st, since := p.pair.State()
	d := backend.DRState{Pool: p.top.FQDN, State: st.String(), Since: since}
	for _, be := range []*backend.Store{p.be, p.backup.be} {
		if err := be.SaveDR(d); err != nil {
			r.log.Error().Err(err).Str("pool", p.top.FQDN).Str("backEnd", be.Path()).Msg("recording the disaster-recovery state")
		}
	}
}

// usersAtLocked lists, sorted, the users homed on home with an active registration on the
// primaries of pool at. It publishes the state first: a REGISTER decided before that fails
// its version check and is decided again, so a registration either is listed here or was
// made under the new state.
func (r *Registrar) usersAtLocked(at, home *pool) []string {
	r.publish()
	now := r.clock.Now()
	snap := at.fabric.Snapshot()
	var out []string
	for _, f := range at.fes {
		s := f.store.Load()
		if s == nil {
			continue
		}
		s.Each(func(rg location.RG) bool {
			prim, ok := snap.Primary(rg.Index)
			return rg.Pool == at.top.Index && ok && prim == f.top.Index
		}, func(_ location.RG, rec *location.Record) bool {
			if len(rec.Active(now)) > 0 {
				if u, ok := r.top.LookupUser(rec.AOR); ok && u.Pool == home.top.FQDN {
					out = append(out, rec.AOR)
				}
			}
			return true
		})
	}
	slices.Sort(out)
	return out
}

// notice is one registration-notify to send.
type notice struct {
	from      *frontend.FrontEnd
	aor       string
	binding   location.Binding
	preferred *frontend.Target
}

// signOutLocked signs users of home out of pool from: their registration there is removed and
// each endpoint gets a registration-notify (deregistered;event=preferred-registrar-change)
// naming its registrar in pool to.
func (r *Registrar) signOutLocked(home, from, to *pool, aors []string) {
	if len(aors) == 0 {
		return
	}
	now := r.clock.Now()
	snap := r.snap.Load()
	var batch []notice
	users := 0
	for _, aor := range aors {
		bindings, sender := r.takeLocked(from, aor, now)
		if len(bindings) == 0 {
			continue
		}
		users++
		rg := fabric.RoutingGroupOf(aor, to.top.RoutingGroups)
		reps := to.fabric.Replicas(rg)
		for _, b := range bindings {
			n := notice{from: sender, aor: aor, binding: b}
			if f := r.feAtLocked(from, b.Flow.Local); f != nil {
				n.from = f
			}
			if len(reps) > 0 {
				t := snap.pools[to.top.Index].target(reps[0], b.Flow.Transport, "")
				n.preferred = &t
			}
			if n.from != nil {
				batch = append(batch, n)
			}
		}
	}
	if users == 0 {
		return
	}
	r.record(eventlog.Event{Kind: "UsersSignedOut", Pool: home.top.FQDN, Count: users,
		Message: fmt.Sprintf("%d users signed out of %s (registration-notify %s to %d endpoints): they sign in at %s", users, from.top.FQDN, eventPreferredRegistrarChange, len(batch), to.top.FQDN)})
	r.sendLocked(batch)
}

// takeLocked removes a user's record from a pool's routing group replicas and returns its
// active bindings and the primary's Front End (nil when none runs).
func (r *Registrar) takeLocked(p *pool, aor string, now time.Time) ([]location.Binding, *frontend.FrontEnd) {
	rg := fabric.RoutingGroupOf(aor, p.top.RoutingGroups)
	reps := p.fabric.Replicas(rg)
	if len(reps) == 0 {
		return nil, nil
	}
	key := location.RG{Pool: p.top.Index, Index: rg}
	prim := p.fes[reps[0]]
	var got []location.Binding
	mu := r.stripe(aor) // as Register: no store lock is held while another is taken
	mu.Lock()
	if s := prim.store.Load(); s != nil {
		_ = s.Update(key, aor, func(old *location.Record) (*location.Record, error) {
			got = old.Active(now)
			return nil, nil
		})
	}
	for _, sec := range reps[1:] {
		if ss := p.fes[sec].store.Load(); ss != nil {
			ss.Put(key, aor, nil)
		}
	}
	mu.Unlock()
	if prim.state != StateStarted {
		return got, nil
	}
	return got, prim.sip
}

// registeredAtLocked reports whether aor has an active registration on its routing group's
// primary in pool p.
func (r *Registrar) registeredAtLocked(p *pool, aor string, now time.Time) bool {
	reps := p.fabric.Replicas(fabric.RoutingGroupOf(aor, p.top.RoutingGroups))
	if len(reps) == 0 {
		return false
	}
	s := p.fes[reps[0]].store.Load()
	return s != nil && len(s.Get(aor).Active(now)) > 0
}

// feAtLocked returns the running Front End of the pool listening at local (ip:port).
func (r *Registrar) feAtLocked(p *pool, local string) *frontend.FrontEnd {
	for _, f := range p.fes {
		if f.state != StateStarted {
			continue
		}
		a := f.sip.Addrs()
		for _, ap := range []string{addrString(a.UDP), addrString(a.TCP), addrString(a.TLS)} {
			if ap != "" && ap == local {
				return f.sip
			}
		}
	}
	return nil
}

// sendLocked sends a batch of registration-notify requests in the background, a bounded
// number at a time; Close ends it.
func (r *Registrar) sendLocked(batch []notice) {
	if len(batch) == 0 || r.closed {
		return
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		var failed atomic.Int64
		var wg sync.WaitGroup
		slots := make(chan struct{}, notifyInFlight)
		sent := 0
	loop:
		for _, n := range batch {
			select {
			case slots <- struct{}{}:
			case <-r.notifyCtx.Done():
				break loop
			}
			sent++
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				ctx, cancel := context.WithTimeout(r.notifyCtx, notifyTimeout)
				defer cancel()
				if err := n.from.Notify(ctx, n.aor, n.binding, eventPreferredRegistrarChange, n.preferred); err != nil {
					failed.Add(1)
					r.log.Debug().Err(err).Str("user", n.aor).Str("contact", n.binding.Contact).Msg("registration-notify not answered")
				}
			}()
		}
		wg.Wait()
		r.metrics.Notifies.WithLabelValues("answered").Add(float64(int64(sent) - failed.Load()))
		r.metrics.Notifies.WithLabelValues("unanswered").Add(float64(failed.Load()))
		r.log.Info().Int("sent", sent).Int("unsent", len(batch)-sent).Int64("unanswered", failed.Load()).Msg("registration-notify batch done")
	}()
}

// kickBackupServiceLocked has the backup service try the pending copies now.
func (r *Registrar) kickBackupServiceLocked() {
	select {
	case r.syncKick <- struct{}{}:
	default: // a pass is due already
	}
}

// backupService is the goroutine that copies a pool's users' contact lists to the other pool of
// the pair after a change could not reach it (the Lync Backup Service's job), whenever the
// heartbeat or a Back End's return asks it to. It runs the copies outside the control-plane
// lock: a Back End that is locked or slow must not stall the cluster and the admin API.
func (r *Registrar) backupService() {
	defer r.bg.Done()
	for {
		select {
		case <-r.stop:
			return
		case <-r.syncKick:
			for _, p := range r.pools {
				r.backupSync(p)
			}
		}
	}
}

// backupSync copies the master copy of home's users' data over the other pool's, under home's
// data lock (no contact change or cmdlet sync of those users interleaves) but not r.mu.
func (r *Registrar) backupSync(home *pool) {
	if home.pair == nil {
		return
	}
	home.data.lock()
	defer home.data.unlock()
	r.mu.Lock()
	if r.closed || home.unsynced.IsZero() || r.cutLocked(home) {
		r.mu.Unlock()
		return
	}
	src, dst := r.userServicesLocked(home)
	since := home.unsynced
	r.mu.Unlock()

	n, err := src.be.SyncUsers(dst.be, home.top.FQDN)
	if err != nil {
		r.log.Debug().Err(err).Str("pool", home.top.FQDN).Msg("backup service: copy failed; retried at the next heartbeat")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if master, _ := r.userServicesLocked(home); r.closed || master != src || !home.unsynced.Equal(since) {
		return // the master copy moved meanwhile (an aborted failover or failback): next heartbeat
	}
	r.record(eventlog.Event{Kind: "BackupServiceSynced", Pool: home.top.FQDN, Count: n,
		Message: fmt.Sprintf("backup service: the contact lists of the pool's users (%d contacts) copied from %s to %s; pending since %s", n, src.top.FQDN, dst.top.FQDN, since.Format(time.RFC3339))})
	home.unsynced = time.Time{}
}

// userServicesLocked returns the pool whose Back End holds the master copy of a home pool's
// users' data (the backup pool while failed over) and the other pool of the pair.
func (r *Registrar) userServicesLocked(home *pool) (master, other *pool) {
	if home.pair == nil {
		return home, nil
	}
	if st, _ := home.pair.State(); st == pairing.FailingOver || st == pairing.FailedOver {
		return home.backup, home
	}
	return home, home.backup
}

// ChangeContacts implements frontend.Cluster: it writes the change to the Back End of the pool
// that gives the user services, then to the other pool's Back End (or marks it for the backup
// service when that one cannot be reached). The Back End calls run under the home pool's data
// lock, never under r.mu (see the package doc): a locked Back End fails this request with
// ErrUnavailable after backend.BusyTimeout and stalls nothing else.
func (r *Registrar) ChangeContacts(u topology.User, set []backend.Contact, remove []string) error {
	home := r.pools[r.top.Pool(u.Pool).Index]
	// Real time, not r.clock: this bounds a wait for the database, which runs on real time.
	if !home.data.lockWithin(backend.OpTimeout) {
		r.mu.Lock()
		master, _ := r.userServicesLocked(home)
		r.mu.Unlock()
		return &backend.Error{BackEnd: master.be.Name(), Op: "contact change", Reason: "is busy: the changes ahead of this one are still waiting for it", Err: backend.ErrUnavailable}
	}
	defer home.data.unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("%w: shutting down", backend.ErrUnavailable)
	}
	master, other := r.userServicesLocked(home)
	cut := r.cutLocked(home)
	r.mu.Unlock()

	apply := func(be *backend.Store) error {
		for _, c := range set {
			if err := be.SetContact(u.AOR, u.Pool, c); err != nil {
				return err
			}
		}
		for _, uri := range remove {
			if err := be.DeleteContact(u.AOR, uri); err != nil {
				return err
			}
		}
		return nil
	}
	if err := apply(master.be); err != nil {
		return err
	}
	if other == nil {
		return nil
	}
	var missed error // the other pool's Back End did not get the change
	if cut {
		missed = &backend.Error{BackEnd: other.be.Name(), Op: "contact change", Reason: "is unreachable: the pools are partitioned", Err: backend.ErrUnavailable}
	} else {
		missed = apply(other.be)
	}
	if missed == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now, _ := r.userServicesLocked(home); now != master {
		// A failover or failback aborted meanwhile moved the master copy to the Back End that
		// missed the change: it is not where the user's data lives now.
		return missed
	}
	if home.unsynced.IsZero() {
		home.unsynced = r.clock.Now()
	}
	return nil
}

// contactsOf returns a user's contact list from the Back End that serves them, and its pool.
func (r *Registrar) contactsOf(u topology.User) (string, []backend.Contact, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return "", nil, errClosed
	}
	master, _ := r.userServicesLocked(r.pools[r.top.Pool(u.Pool).Index])
	r.mu.Unlock()
	cs, err := master.be.Contacts(u.AOR) // outside r.mu: the database may be slow
	return master.top.FQDN, cs, err
}

// errNoBackup is the refusal of a pairing cmdlet on a pool without a backup pool.
func errNoBackup(p *pool) error {
	return fmt.Errorf("%w: %s has no backup pool (pools[].backup in the topology names it)", admin.ErrBadRequest, p.top.FQDN)
}
