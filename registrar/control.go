package registrar

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/eventlog"
	"github.com/fepool/fepool/registrar/fabric"
	"github.com/fepool/fepool/registrar/location"
)

// bindLocked starts a Front End's listeners with an empty memory.
func (r *Registrar) bindLocked(f *fe) error {
	if err := f.sip.Start(); err != nil {
		return fmt.Errorf("start %s: %w", f.top.FQDN, err)
	}
	f.store.Store(location.NewStore())
	f.fresh = true
	r.setState(f, StateStarted)
	return nil
}

func (r *Registrar) setState(f *fe, state string) {
	f.state, f.since = state, r.clock.Now()
}

// fabricLocked runs one fabric change of a pool and everything that follows it: the event log,
// Front Ends the fabric stopped, registration data moved to match the new placement, the next
// timer, and a new snapshot.
func (r *Registrar) fabricLocked(p *pool, change func(now time.Time) ([]fabric.Event, error)) error {
	evs, err := change(r.clock.Now())
	if err != nil {
		return err
	}
	r.afterFabricLocked(p, evs)
	return nil
}

func (r *Registrar) afterFabricLocked(p *pool, evs []fabric.Event) {
	for _, e := range evs {
		r.emit(p, e)
		if e.Kind == fabric.ServicesStopped {
			f := p.fes[e.FE]
			f.sip.Stop(false)
			f.store.Store(nil)
			r.setState(f, StateStopped)
		}
		if e.Kind == fabric.RoutingGroupsClosed {
			for _, f := range p.fes {
				f.sip.DropConnections()
			}
		}
	}
	r.reconcileLocked(p, nil, false)
	r.armLocked(p)
	r.heartbeatLocked()
	r.publish()
}

// reconcileLocked makes every Front End's store match the fabric's placement: a new replica gets
// a copy of the RG's records from a Front End that held it (the old primary first), a Front End
// that no longer holds an RG forgets it. Moved gives, for RGs a reset re-placed, the replica list
// before the reset. dropAll discards every record of the pool (FullReset). A fresh Front End
// (started since the last reconcile) counts as holding nothing, whatever the old placement
// says: it restarted with an empty memory.
func (r *Registrar) reconcileLocked(p *pool, moved map[int][]int, dropAll bool) {
	now := p.fabric.Snapshot()
	idx := p.top.Index
	defer func() {
		for _, f := range p.fes {
			f.fresh = false
		}
	}()
	if dropAll {
		for _, f := range p.fes {
			if s := f.store.Load(); s != nil {
				s.DropRG(func(rg location.RG) bool { return rg.Pool == idx })
			}
		}
	}
	for rg := range now.Replicas {
		old := p.last.Replicas[rg]
		if m, ok := moved[rg]; ok {
			old = m
		}
		old = slices.DeleteFunc(slices.Clone(old), func(i int) bool { return p.fes[i].fresh })
		cur := now.Replicas[rg]
		if slices.Equal(old, cur) {
			continue
		}
		key := location.RG{Pool: idx, Index: rg}
		var src *location.Store
		if !dropAll {
			for _, i := range old {
				if s := p.fes[i].store.Load(); s != nil {
					src = s
					break
				}
			}
		}
		for _, i := range cur {
			dst := p.fes[i].store.Load()
			if dst == nil || dst == src || slices.Contains(old, i) {
				continue
			}
			if src != nil {
				src.CopyRG(key, dst)
			}
		}
		for _, i := range old {
			if slices.Contains(cur, i) {
				continue
			}
			if s := p.fes[i].store.Load(); s != nil {
				s.DropRG(func(x location.RG) bool { return x == key })
			}
		}
	}
	p.last = now
}

// armLocked sets the pool's timer to its fabric's next deadline.
func (r *Registrar) armLocked(p *pool) {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	next, ok := p.fabric.NextDeadline()
	if !ok || r.closed {
		return
	}
	p.timer = r.clock.AfterFunc(max(0, next.Sub(r.clock.Now())), func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			return
		}
		r.afterFabricLocked(p, p.fabric.Tick(r.clock.Now()))
	})
}

// emit writes a fabric event to the event log.
func (r *Registrar) emit(p *pool, e fabric.Event) {
	ev := eventlog.Event{EventID: e.ID, Kind: e.Kind.String(), Pool: p.top.FQDN, Count: e.Count, Message: e.Msg}
	if e.FE >= 0 && e.FE < len(p.fes) {
		ev.FrontEnd = p.fes[e.FE].top.FQDN
	}
	if e.RG >= 0 {
		rg := e.RG
		ev.RoutingGroup = &rg
	}
	r.record(ev)
}

func (r *Registrar) record(ev eventlog.Event) {
	r.events.Emit(ev)
	r.metrics.Events.WithLabelValues(ev.Kind).Inc()
}

// FrontEndAction implements admin.Backend: start, stop or crash a Front End.
func (r *Registrar) FrontEndAction(fqdn, action string) (admin.FrontEnd, error) {
	tfe := r.top.FrontEnd(fqdn)
	if tfe == nil {
		return admin.FrontEnd{}, fmt.Errorf("%w: no Front End %q in the topology", admin.ErrNotFound, fqdn)
	}
	f := r.fes[tfe]
	r.mu.Lock()
	var err error
	switch strings.ToLower(action) {
	case "start":
		err = r.startLocked(f)
	case "stop":
		err = r.stopLocked(f, false)
	case "crash":
		err = r.stopLocked(f, true)
	default:
		err = fmt.Errorf("%w: unknown action %q (start, stop or crash)", admin.ErrBadRequest, action)
	}
	r.mu.Unlock()
	if err != nil {
		return admin.FrontEnd{}, err
	}
	return r.frontEndInfo(f), nil
}

func (r *Registrar) startLocked(f *fe) error {
	if r.closed {
		return errClosed
	}
	if f.state == StateStarted {
		return fmt.Errorf("%w: %s is already running", admin.ErrConflict, f.top.FQDN)
	}
	if err := r.bindLocked(f); err != nil {
		return err
	}
	r.record(eventlog.Event{Kind: "FrontEndStarted", Pool: f.pool.top.FQDN, FrontEnd: f.top.FQDN, Message: "Front End services started"})
	return r.fabricLocked(f.pool, func(now time.Time) ([]fabric.Event, error) { return f.pool.fabric.Start(now, f.top.Index) })
}

// stopLocked stops a Front End gracefully (the fabric hands its routing groups over first) or
// crashes it (sockets reset, memory lost at once, the fabric notices after its detection delay).
func (r *Registrar) stopLocked(f *fe, crash bool) error {
	if r.closed {
		return errClosed
	}
	if f.state != StateStarted {
		return fmt.Errorf("%w: %s is not running (%s)", admin.ErrConflict, f.top.FQDN, f.state)
	}
	p := f.pool
	if crash {
		f.sip.Stop(true)
		f.store.Store(nil)
		r.setState(f, StateFailed)
		r.record(eventlog.Event{Kind: "FrontEndCrashed", Pool: p.top.FQDN, FrontEnd: f.top.FQDN, Message: "Front End crashed: connections reset, its memory is lost"})
		return r.fabricLocked(p, func(now time.Time) ([]fabric.Event, error) { return p.fabric.Crash(now, f.top.Index) })
	}
	if err := r.fabricLocked(p, func(now time.Time) ([]fabric.Event, error) { return p.fabric.Stop(now, f.top.Index) }); err != nil {
		return err
	}
	f.sip.Stop(false)
	f.store.Store(nil)
	r.setState(f, StateStopped)
	r.record(eventlog.Event{Kind: "FrontEndStopped", Pool: p.top.FQDN, FrontEnd: f.top.FQDN, Message: "Front End services stopped"})
	r.publish()
	return nil
}
