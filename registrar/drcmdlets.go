package registrar

import (
	"fmt"
	"strings"
	"time"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/eventlog"
	"github.com/fepool/fepool/registrar/fabric"
	"github.com/fepool/fepool/registrar/pairing"
	"github.com/fepool/fepool/registrar/topology"
)

// Pool actions of the admin API (PoolAction).
const (
	ActionCrash       = "crash"
	ActionStop        = "stop"
	ActionStart       = "start"
	ActionBackEndDown = "backend-down"
	ActionBackEndUp   = "backend-up"
	ActionPartition   = "partition"
	ActionHeal        = "heal"
)

// PoolAction implements admin.Backend: a whole pool fails or comes back.
func (r *Registrar) PoolAction(fqdn, action string) (admin.Pool, error) {
	p, err := r.poolByName(fqdn)
	if err != nil {
		return admin.Pool{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return admin.Pool{}, errClosed
	}
	switch strings.ToLower(action) {
	case ActionCrash, ActionStop:
		err = r.poolDownLocked(p, strings.ToLower(action) == ActionCrash)
	case ActionStart:
		err = r.poolUpLocked(p)
	case ActionBackEndDown, ActionBackEndUp:
		err = r.backEndLocked(p, strings.ToLower(action) == ActionBackEndUp)
	case ActionPartition, ActionHeal:
		err = r.partitionLocked(p, strings.ToLower(action) == ActionPartition)
	default:
		err = fmt.Errorf("%w: unknown pool action %q (crash, stop, start, backend-down, backend-up, partition or heal)", admin.ErrBadRequest, action)
	}
	if err != nil {
		return admin.Pool{}, err
	}
	return r.poolInfoLocked(p), nil
}

// poolDownLocked crashes or stops every running Front End of a pool at once.
func (r *Registrar) poolDownLocked(p *pool, crash bool) error {
	var idx []int
	for i, f := range p.fes {
		if f.state == StateStarted {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return fmt.Errorf("%w: no Front End of %s is running", admin.ErrConflict, p.top.FQDN)
	}
	if crash {
		for _, i := range idx {
			f := p.fes[i]
			f.sip.Stop(true)
			f.store.Store(nil)
			r.setState(f, StateFailed)
		}
		r.record(eventlog.Event{Kind: "PoolFrontEndsCrashed", Pool: p.top.FQDN, Count: len(idx),
			Message: fmt.Sprintf("%d Front Ends crashed at once: connections reset, registrations lost", len(idx))})
		return r.fabricLocked(p, func(now time.Time) ([]fabric.Event, error) { return p.fabric.Crash(now, idx...) })
	}
	if err := r.fabricLocked(p, func(now time.Time) ([]fabric.Event, error) { return p.fabric.Stop(now, idx...) }); err != nil {
		return err
	}
	for _, i := range idx {
		f := p.fes[i]
		f.sip.Stop(false)
		f.store.Store(nil)
		r.setState(f, StateStopped)
	}
	r.record(eventlog.Event{Kind: "PoolFrontEndsStopped", Pool: p.top.FQDN, Count: len(idx), Message: fmt.Sprintf("%d Front Ends stopped", len(idx))})
	r.heartbeatLocked()
	r.publish()
	return nil
}

// poolUpLocked starts every Front End of a pool that does not run.
func (r *Registrar) poolUpLocked(p *pool) error {
	var idx []int
	for i, f := range p.fes {
		if f.state == StateStarted {
			continue
		}
		prev := f.state
		if err := r.bindLocked(f); err != nil {
			for _, j := range idx { // undo: no Front End stays half-started
				p.fes[j].sip.Stop(false)
				p.fes[j].store.Store(nil)
				r.setState(p.fes[j], prev)
			}
			return err
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return fmt.Errorf("%w: every Front End of %s is already running", admin.ErrConflict, p.top.FQDN)
	}
	r.record(eventlog.Event{Kind: "PoolFrontEndsStarted", Pool: p.top.FQDN, Count: len(idx), Message: fmt.Sprintf("%d Front Ends started", len(idx))})
	return r.fabricLocked(p, func(now time.Time) ([]fabric.Event, error) { return p.fabric.Start(now, idx...) })
}

// backEndLocked takes a pool's Back End down (limited functionality: registration works,
// persistent changes fail; survivable mode after the threshold) or brings it back.
func (r *Registrar) backEndLocked(p *pool, up bool) error {
	now := r.clock.Now()
	if was, _ := p.be.Up(); was == up {
		state := "up"
		if !up {
			state = "down"
		}
		return fmt.Errorf("%w: the Back End of %s is already %s", admin.ErrConflict, p.top.FQDN, state)
	}
	p.be.SetUp(up, now)
	if up {
		r.record(eventlog.Event{Kind: "BackEndAvailable", Pool: p.top.FQDN, Message: "the Back End is available again: persistent changes work"})
		if p.survivable {
			p.survivable = false
			r.record(eventlog.Event{Kind: "SurvivableModeEnded", Pool: p.top.FQDN, Message: "survivable mode ended: users get regular mode at their next sign-in or refresh"})
		}
	} else {
		r.record(eventlog.Event{Kind: "BackEndUnavailable", Pool: p.top.FQDN,
			Message: fmt.Sprintf("the Back End is unavailable: limited functionality (registration works, persistent changes fail); survivable mode in %s", r.top.Pairing.SurvivableAfter)})
	}
	// With two Front Ends the Back End is the fabric's quorum witness.
	r.afterFabricLocked(p, p.fabric.SetBackEnd(up, now))
	r.kickBackupServiceLocked()
	r.drTickLocked(p)
	r.publish()
	return nil
}

// partitionLocked cuts or heals the heartbeat link between a pool and its backup pool: both
// keep running, and each decides alone.
func (r *Registrar) partitionLocked(p *pool, cut bool) error {
	if p.backup == nil {
		return errNoBackup(p)
	}
	link := linkOf(p, p.backup)
	if r.cut[link] == cut {
		if cut {
			return fmt.Errorf("%w: %s and %s are already partitioned", admin.ErrConflict, p.top.FQDN, p.backup.top.FQDN)
		}
		return fmt.Errorf("%w: %s and %s are not partitioned", admin.ErrConflict, p.top.FQDN, p.backup.top.FQDN)
	}
	if cut {
		r.cut[link] = true
		r.record(eventlog.Event{Kind: "PoolsPartitioned", Pool: p.top.FQDN,
			Message: fmt.Sprintf("the link between %s and %s is cut: no heartbeat, no backup service; both keep running", p.top.FQDN, p.backup.top.FQDN)})
	} else {
		delete(r.cut, link)
		r.record(eventlog.Event{Kind: "PartitionHealed", Pool: p.top.FQDN,
			Message: fmt.Sprintf("the link between %s and %s is back", p.top.FQDN, p.backup.top.FQDN)})
	}
	r.heartbeatLocked()
	r.publish()
	return nil
}

// parseWait reads an optional -WaitTime.
func parseWait(s string, def time.Duration) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	d, err := admin.ParseWaitTime(s)
	if err != nil {
		return 0, fmt.Errorf("%w: -WaitTime: %v", admin.ErrBadRequest, err)
	}
	return d, nil
}

// sidesLocked is a pool's pairing in both directions, as pairing.Allow judges an operation on
// the pool: its own users' state, and its partner's users' when the partner names it as backup.
func (r *Registrar) sidesLocked(p *pool) pairing.Sides {
	s := pairing.Sides{Pool: p.top.FQDN, Partner: p.backup.top.FQDN}
	s.Own, _ = p.pair.State()
	if q := p.backup; q.pair != nil && q.backup == p {
		s.Paired = true
		s.PartnerUsers, _ = q.pair.State()
	}
	return s
}

func (r *Registrar) pairedPool(fqdn string) (*pool, error) {
	p, err := r.poolByName(fqdn)
	if err != nil {
		return nil, err
	}
	if p.pair == nil {
		return nil, errNoBackup(p)
	}
	return p, nil
}

// FailOver implements admin.Backend (Invoke-CsPoolFailOver).
func (r *Registrar) FailOver(fqdn string, req admin.FailOverRequest) (admin.DRResult, error) {
	p, err := r.pairedPool(fqdn)
	if err != nil {
		return admin.DRResult{}, err
	}
	wait, err := parseWait(req.WaitTime, r.top.Pairing.FailoverWait)
	if err != nil {
		return admin.DRResult{}, err
	}
	o := pairing.FailOverOptions{DisasterMode: req.DisasterMode, WaitTime: wait, SkipDataVerification: req.SkipDataVerification,
		Force: req.Force, FlushStorageService: req.FlushStorageService, WhatIf: req.WhatIf}
	if err := r.cmdletDataLock(p, "Invoke-CsPoolFailOver"); err != nil { // its data sync: no contact change of its users interleaves
		return admin.DRResult{}, err
	}
	defer p.data.unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return admin.DRResult{}, errClosed
	}
	out := admin.DRResult{PoolFqdn: p.top.FQDN, BackupPoolFqdn: p.backup.top.FQDN, WhatIf: o.WhatIf}
	if err := pairing.Allow(pairing.OpFailOver, r.sidesLocked(p)); err != nil {
		return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailOver -PoolFqdn %s: %w", admin.ErrConflict, p.top.FQDN, err)
	}
	homeUp := r.servesLocked(p) && !r.cutLocked(p)
	if err := p.pair.CheckFailOver(o, homeUp, r.servesLocked(p.backup)); err != nil {
		return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailOver -PoolFqdn %s: %w", admin.ErrConflict, p.top.FQDN, err)
	}
	if !o.DisasterMode {
		for _, q := range []*pool{p, p.backup} {
			if up, _ := q.be.Up(); !up {
				return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailOver -PoolFqdn %s: the data sync needs the Back End of %s, which is down; nothing changed: bring it back or use -DisasterMode", admin.ErrConflict, p.top.FQDN, q.top.FQDN)
			}
		}
	}
	plan := o.Plan(p.top.FQDN, p.backup.top.FQDN)
	if o.WhatIf {
		st, _ := p.pair.State()
		out.State, out.Message = st.String(), "What if: "+plan
		return out, nil
	}
	now := r.clock.Now()
	if !o.DisasterMode {
		n, err := p.be.SyncUsers(p.backup.be, p.top.FQDN)
		if err != nil {
			return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailOver -PoolFqdn %s: the data sync to %s failed (%v); nothing changed: bring the Back End back or use -DisasterMode", admin.ErrConflict, p.top.FQDN, p.backup.top.FQDN, err)
		}
		p.unsynced = time.Time{}
		r.record(eventlog.Event{Kind: "BackupServiceSynced", Pool: p.top.FQDN, Count: n,
			Message: fmt.Sprintf("planned failover: the contact lists of the pool's users (%d contacts) synced to %s", n, p.backup.top.FQDN)})
	} else if !p.unsynced.IsZero() {
		r.record(eventlog.Event{Kind: "FailoverDataNotSynced", Pool: p.top.FQDN,
			Message: fmt.Sprintf("disaster mode: contact changes made since %s had not reached %s's Back End; the backup pool serves what it holds, and the backup service will copy that over the home pool's Back End", p.unsynced.Format(time.RFC3339), p.backup.top.FQDN)})
	}
	if o.FlushStorageService {
		r.record(eventlog.Event{Kind: "StorageServiceFlushed", Pool: p.top.FQDN, Message: "-FlushStorageService: the storage service of every running Front End flushed its queue"})
	}
	evs, err := p.pair.FailOver(now, o, homeUp, r.servesLocked(p.backup))
	if err != nil {
		return admin.DRResult{}, fmt.Errorf("%w: %w", admin.ErrConflict, err)
	}
	r.drEventsLocked(p, evs)
	// Users still signed in at home move now; the backup serves them (resiliency mode until
	// the failover completes).
	r.signOutLocked(p, p, p.backup, r.usersAtLocked(p, p))
	r.armDRLocked(p)
	r.publish()
	st, _ := p.pair.State()
	out.State, out.Message = st.String(), plan
	return out, nil
}

// FailBack implements admin.Backend (Invoke-CsPoolFailBack).
func (r *Registrar) FailBack(fqdn string, req admin.FailBackRequest) (admin.DRResult, error) {
	p, err := r.pairedPool(fqdn)
	if err != nil {
		return admin.DRResult{}, err
	}
	wait, err := parseWait(req.WaitTime, r.top.Pairing.FailbackWait)
	if err != nil {
		return admin.DRResult{}, err
	}
	if err := r.cmdletDataLock(p, "Invoke-CsPoolFailBack"); err != nil { // its data sync back: no contact change of its users interleaves
		return admin.DRResult{}, err
	}
	defer p.data.unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return admin.DRResult{}, errClosed
	}
	out := admin.DRResult{PoolFqdn: p.top.FQDN, BackupPoolFqdn: p.backup.top.FQDN, WhatIf: req.WhatIf}
	if err := pairing.Allow(pairing.OpFailBack, r.sidesLocked(p)); err != nil {
		return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailBack -PoolFqdn %s: %w", admin.ErrConflict, p.top.FQDN, err)
	}
	homeUp := r.servesLocked(p)
	if err := p.pair.CheckFailBack(homeUp); err != nil {
		return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailBack -PoolFqdn %s: %w", admin.ErrConflict, p.top.FQDN, err)
	}
	plan := fmt.Sprintf("Fail back the users of %s from %s: their data is synced back (wait %s), then signed-in users move home at %d users per %s, each signed out once with a registration-notify and in resiliency mode at home until the failback completes; new sign-ins go home in resiliency mode.",
		p.top.FQDN, p.backup.top.FQDN, wait, r.top.Pairing.FailbackUsers, r.top.Pairing.FailbackPer)
	if r.cutLocked(p) {
		return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailBack -PoolFqdn %s: the link to %s is cut; heal it first", admin.ErrConflict, p.top.FQDN, p.backup.top.FQDN)
	}
	for _, q := range []*pool{p, p.backup} {
		if up, _ := q.be.Up(); !up {
			return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailBack -PoolFqdn %s: the data sync back needs the Back End of %s, which is down; nothing changed", admin.ErrConflict, p.top.FQDN, q.top.FQDN)
		}
	}
	if req.WhatIf {
		st, _ := p.pair.State()
		out.State, out.Message = st.String(), "What if: "+plan
		return out, nil
	}
	n, err := p.backup.be.SyncUsers(p.be, p.top.FQDN)
	if err != nil {
		return admin.DRResult{}, fmt.Errorf("%w: Invoke-CsPoolFailBack -PoolFqdn %s: the data sync back from %s failed (%v); nothing changed", admin.ErrConflict, p.top.FQDN, p.backup.top.FQDN, err)
	}
	p.unsynced = time.Time{}
	r.record(eventlog.Event{Kind: "BackupServiceSynced", Pool: p.top.FQDN, Count: n,
		Message: fmt.Sprintf("failback: the contact lists of the pool's users (%d contacts) synced back from %s", n, p.backup.top.FQDN)})
	evs, err := p.pair.FailBack(r.clock.Now(), wait, homeUp)
	if err != nil {
		return admin.DRResult{}, fmt.Errorf("%w: %w", admin.ErrConflict, err)
	}
	r.drEventsLocked(p, evs)
	r.armDRLocked(p)
	r.publish()
	st, _ := p.pair.State()
	out.State, out.Message = st.String(), plan
	return out, nil
}

// BackupRelationship implements admin.Backend (Get-CsPoolBackupRelationship).
func (r *Registrar) BackupRelationship(fqdn string) (admin.BackupRelationship, error) {
	p, err := r.pairedPool(fqdn)
	if err != nil {
		return admin.BackupRelationship{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, _ := p.pair.State()
	out := admin.BackupRelationship{PoolFqdn: p.top.FQDN, BackupPoolFqdn: p.backup.top.FQDN, BackupModules: []string{"UserData"}, State: st.String()}
	if p.backup.pair != nil && p.backup.backup == p {
		bst, _ := p.backup.pair.State()
		out.BackupPoolState = bst.String()
	}
	heard, last := p.pair.Hearing()
	switch {
	case r.cutLocked(p):
		out.Heartbeat = "partitioned since the link was cut; last heard " + last.Format(time.RFC3339)
	case heard:
		out.Heartbeat = "heard"
	default:
		out.Heartbeat = "not heard since " + last.Format(time.RFC3339)
	}
	return out, nil
}

// upgradeDomains is how many upgrade domains a pool's Front Ends are spread over (our choice:
// one per Front End, at most 8).
func upgradeDomains(fes int) int { return min(fes, 8) }

// UpgradeReadiness implements admin.Backend (Get-CsPoolUpgradeReadinessState): Ready when the
// pool is started, every Front End runs and every routing group has a primary and at least one
// secondary, so the next upgrade domain can go down without users losing service.
func (r *Registrar) UpgradeReadiness(fqdn string) (admin.UpgradeReadiness, error) {
	p, err := r.poolByName(fqdn)
	if err != nil {
		return admin.UpgradeReadiness{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	snap := p.fabric.Snapshot()
	out := admin.UpgradeReadiness{PoolFqdn: p.top.FQDN, TotalFrontEnds: len(p.fes), State: "NotReady", UpgradeDomains: []admin.UpgradeDomain{}}
	n := upgradeDomains(len(p.fes))
	for d := 0; d < n; d++ {
		out.UpgradeDomains = append(out.UpgradeDomains, admin.UpgradeDomain{Name: fmt.Sprintf("UpgradeDomain%d", d+1), FrontEnds: []string{}})
	}
	for i, f := range p.fes {
		ud := &out.UpgradeDomains[i%n]
		ud.FrontEnds = append(ud.FrontEnds, f.top.FQDN)
		if f.state == StateStarted && p.fabric.Running(i) {
			ud.Active++
			out.ActiveFrontEnds++
		}
	}
	single := 0
	for _, reps := range snap.Replicas {
		if len(reps) < 2 {
			single++
		}
	}
	switch {
	case snap.State != fabric.Started:
		out.Reason = "the pool is " + snap.State.String()
	case len(p.fes) == 1:
		out.Reason = "a Standard Edition server has no second replica: upgrading it stops service"
	case out.ActiveFrontEnds < len(p.fes):
		out.Reason = fmt.Sprintf("%d of %d Front Ends are not running: finish the upgrade domain in progress first", len(p.fes)-out.ActiveFrontEnds, len(p.fes))
	case single > 0:
		out.Reason = fmt.Sprintf("%d routing groups have no secondary", single)
	default:
		out.IsReadyForUpgrade, out.State = true, "Ready"
	}
	return out, nil
}

// Contacts implements admin.Backend: a user's contact list.
func (r *Registrar) Contacts(identity string) (admin.Contacts, error) {
	u, err := r.user(identity)
	if err != nil {
		return admin.Contacts{}, err
	}
	pool, cs, err := r.contactsOf(u)
	if err != nil {
		return admin.Contacts{}, err
	}
	out := admin.Contacts{Identity: u.URI(), BackEnd: pool, Contacts: []admin.Contact{}}
	for _, c := range cs {
		out.Contacts = append(out.Contacts, admin.Contact{URI: c.URI, DisplayName: c.DisplayName, Groups: c.Groups})
	}
	return out, nil
}

// drInfoLocked is a pool's pairing state for the admin API.
func (r *Registrar) drInfoLocked(p *pool) *admin.DisasterRecovery {
	if p.pair == nil {
		return nil
	}
	now := r.clock.Now()
	st, since := p.pair.State()
	heard, last := p.pair.Hearing()
	pr := p.pair.Progress()
	out := &admin.DisasterRecovery{
		State: st.String(), Since: since, Heard: heard, LastHeard: last, Partitioned: r.cutLocked(p),
		ResiliencyTimer: p.top.ResiliencyTimer.String(), TimerExpired: p.pair.TimerExpired(),
		TimerLeft: p.pair.TimerLeft(now).Seconds(), UsersMoved: pr.Moved, UsersToMove: len(p.toMove), PercentComplete: pr.Percent,
	}
	if !p.unsynced.IsZero() {
		t := p.unsynced
		out.UnsyncedSince = &t
	}
	out.UsersServedBy, out.Mode = r.servedByLocked(p)
	return out
}

// servedByLocked says which pool serves a home pool's users now and in which mode, as a front
// door sees it.
func (r *Registrar) servedByLocked(p *pool) (pool string, mode string) {
	s := r.snap.Load()
	home := &s.pools[p.top.Index]
	d, _ := s.decide(home, "", -1, r.clock.Now())
	return whereMode(s, home, d)
}

func whereMode(s *snapshot, home *poolView, d pairing.Decision) (pool string, mode string) {
	mode = "regular"
	if d.Resiliency {
		mode = "resiliency"
	}
	switch d.Where {
	case pairing.Home:
		return home.top.FQDN, mode
	case pairing.Backup:
		return s.pools[home.backup].top.FQDN, mode
	case pairing.Wait:
		return "", fmt.Sprintf("waiting for the resiliency timer (%s left)", d.RetryAfter.Round(time.Second))
	}
	return "", "unavailable"
}

// backEndInfoLocked is a pool's Back End state for the admin API.
func (r *Registrar) backEndInfoLocked(p *pool) admin.BackEnd {
	up, since := p.be.Up()
	out := admin.BackEnd{Path: p.be.Path(), Up: up, Survivable: p.survivable}
	if !up {
		out.DownSince = &since
	}
	return out
}

// userPlacementLocked fills Get-CsUserPoolInfo's disaster-recovery view: the pool holding the
// user's services (the backup pool once failed over), where the user is registered now and how.
func (r *Registrar) userPlacementLocked(u topology.User, home *pool, out *admin.UserPoolInfo) {
	master, _ := r.userServicesLocked(home)
	out.UserServicesPoolFqdn = master.top.FQDN
	s := r.snap.Load()
	hv := &s.pools[home.top.Index]
	d, _ := s.decide(hv, u.AOR, -1, r.clock.Now())
	out.RegisteredAtPoolFqdn, out.Mode = whereMode(s, hv, d)
	if home.pair != nil {
		st, _ := home.pair.State()
		out.DisasterRecoveryState = st.String()
	}
}

// cmdletWait bounds how long a failover or failback cmdlet waits for its pool's data lock: a
// contact change takes at most a Back End call's deadline, but the backup service's copy of a
// whole pool has no overall one, and a cmdlet must not hang the admin API behind it.
var cmdletWait = 5 * time.Second // a variable for the test

// cmdletDataLock takes the pool's data lock for a cmdlet, or says why it cannot now.
func (r *Registrar) cmdletDataLock(p *pool, cmdlet string) error {
	if !p.data.lockWithin(cmdletWait) {
		return fmt.Errorf("%w: %s -PoolFqdn %s: the Back End of %s is busy (the backup service is copying contact lists, or a change waits on a locked database) for more than %s; nothing changed: try again", admin.ErrConflict, cmdlet, p.top.FQDN, p.top.FQDN, cmdletWait)
	}
	return nil
}
