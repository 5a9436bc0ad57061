// Package pairing is pool pairing as pure logic: the disaster-recovery state of a home pool's
// users (Active, FailingOver, FailedOver, FailingBack), the registrar resiliency timer (the
// backup pool missing the home pool's heartbeat for the failure detection interval), the rules
// of Invoke-CsPoolFailOver and Invoke-CsPoolFailBack, which operations the two directions of a
// pairing allow together (Allow: a pool that serves its partner's users cannot fail over to
// it), the pace of a failback, and where a user is served at any moment (Decide).
//
// Nothing here reads a clock: inputs carry the time, NextDeadline says when Tick is due, and
// changes return the events they caused. A Pair is not safe for concurrent use.
package pairing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// State is the disaster-recovery state of a home pool's users.
type State int

const (
	// Active: users are served by their home pool (or, after the resiliency timer, by the
	// backup in resiliency mode).
	Active State = iota
	// FailingOver: Invoke-CsPoolFailOver runs; users sign in to the backup in resiliency mode.
	FailingOver
	// FailedOver: the backup pool gives users full service (regular mode).
	FailedOver
	// FailingBack: Invoke-CsPoolFailBack runs; users move home and are in resiliency mode there
	// until it completes.
	FailingBack
)

func (s State) String() string {
	switch s {
	case FailingOver:
		return "FailingOver"
	case FailedOver:
		return "FailedOver"
	case FailingBack:
		return "FailingBack"
	}
	return "Active"
}

// ParseState reads a State's name.
func ParseState(s string) (State, error) {
	for _, st := range []State{Active, FailingOver, FailedOver, FailingBack} {
		if st.String() == s {
			return st, nil
		}
	}
	return Active, fmt.Errorf("unknown disaster-recovery state %q", s)
}

// Config is one pairing's settings.
type Config struct {
	// Timer is the home pool's failure detection interval (the registrar resiliency timer).
	Timer time.Duration
	// FailbackUsers per FailbackPer is the failback pace.
	FailbackUsers int
	FailbackPer   time.Duration
}

// Kind says what happened.
type Kind int

// Event kinds.
const (
	HeartbeatLost Kind = iota + 1
	HeartbeatRestored
	TimerExpired
	FailoverStarted
	FailedOverEvent
	FailbackStarted
	FailbackMoving
	FailbackProgress
	FailedBack
	FailbackAborted
	FailoverAborted
)

var kindNames = map[Kind]string{
	HeartbeatLost: "HeartbeatLost", HeartbeatRestored: "HeartbeatRestored", TimerExpired: "ResiliencyTimerExpired",
	FailoverStarted: "PoolFailoverStarted", FailedOverEvent: "PoolFailedOver", FailbackStarted: "PoolFailbackStarted",
	FailbackMoving: "PoolFailbackMovingUsers", FailbackProgress: "PoolFailbackProgress", FailedBack: "PoolFailedBack",
	FailbackAborted: "PoolFailbackAborted", FailoverAborted: "PoolFailoverAborted",
}

func (k Kind) String() string { return kindNames[k] }

// Event is one change of a pairing.
type Event struct {
	Kind Kind
	Msg  string
}

// Errors of the cmdlets.
var (
	ErrNoBackup = errors.New("the pool has no backup pool")
	ErrState    = errors.New("not allowed in this state")
	ErrDown     = errors.New("pool not reachable")
)

// Pair is the pairing of one home pool with its backup pool, as the backup sees it.
type Pair struct {
	cfg   Config
	state State
	since time.Time

	hearing    bool      // the backup hears the home pool now
	unobserved bool      // nobody watched the home pool until the next Observe
	lastHeard  time.Time // when it last did
	expired    bool      // the resiliency timer ran out since the heartbeat was lost
	started    bool      // Observe was called at least once
	disaster   bool      // the current failover is in disaster mode
	phaseEnd   time.Time // end of the data sync (FailingOver, FailingBack) before the next step
	moving     bool      // FailingBack: the sync is done, users are being moved
	moveStart  time.Time
	moved      int
	total      int // users to move, as counted when moving started (progress only)
	reportedAt int // last progress percentage reported
}

// New returns an Active pairing that hears its home pool at now.
func New(cfg Config, now time.Time) *Pair {
	if cfg.FailbackUsers <= 0 || cfg.FailbackPer <= 0 {
		cfg.FailbackUsers, cfg.FailbackPer = 20000, time.Hour
	}
	return &Pair{cfg: cfg, since: now, hearing: true, lastHeard: now}
}

// Restore sets a persisted state (after a process restart).
func (p *Pair) Restore(s State, since time.Time) { p.state, p.since = s, since }

// State returns the state and since when.
func (p *Pair) State() (State, time.Time) { return p.state, p.since }

func (p *Pair) set(s State, now time.Time) { p.state, p.since = s, now }

// Observe records a heartbeat check: whether the backup hears the home pool (the home pool
// serves and the link between them is up).
func (p *Pair) Observe(now time.Time, heard bool) []Event {
	if p.unobserved {
		p.unobserved, p.lastHeard = false, now // watching starts now: the full timer
	}
	var ev []Event
	switch {
	case heard:
		if !p.hearing && p.started {
			ev = append(ev, Event{HeartbeatRestored, "the backup pool hears the home pool again; the resiliency timer is reset"})
		}
		p.hearing, p.lastHeard, p.expired = true, now, false
	case p.hearing:
		p.hearing = false
		ev = append(ev, Event{HeartbeatLost, fmt.Sprintf("the backup pool stopped hearing the home pool; it will serve the home pool's users in resiliency mode in %s unless it hears it again", p.cfg.Timer)})
	}
	p.started = true
	return append(ev, p.expire(now)...)
}

func (p *Pair) expire(now time.Time) []Event {
	if p.hearing || p.expired || now.Before(p.lastHeard.Add(p.cfg.Timer)) {
		return nil
	}
	p.expired = true
	return []Event{{TimerExpired, fmt.Sprintf("registrar resiliency timer expired (%s without the home pool): the backup pool serves its users in resiliency mode", p.cfg.Timer)}}
}

// Unobserved records that nobody watches the home pool at now (the backup pool itself does
// not serve): no timer runs, so once the backup serves again a missing home pool is noticed
// then and the full timer starts from there.
func (p *Pair) Unobserved(now time.Time) {
	p.hearing, p.lastHeard, p.expired, p.started, p.unobserved = true, now, false, true, true
}

// Hearing reports whether the backup hears the home pool, and when it last did.
func (p *Pair) Hearing() (bool, time.Time) { return p.hearing, p.lastHeard }

// TimerExpired reports whether the resiliency timer ran out.
func (p *Pair) TimerExpired() bool { return p.expired }

// TimerLeft is how long until the resiliency timer expires (0 once it has, or while heard).
func (p *Pair) TimerLeft(now time.Time) time.Duration {
	if p.hearing || p.expired {
		return 0
	}
	return max(0, p.lastHeard.Add(p.cfg.Timer).Sub(now))
}

// FailOverOptions are Invoke-CsPoolFailOver's switches.
type FailOverOptions struct {
	DisasterMode         bool
	WaitTime             time.Duration // the data sync of a planned failover
	SkipDataVerification bool
	Force                bool
	FlushStorageService  bool
	WhatIf               bool
}

// Plan says what a failover would do (the -WhatIf answer, and the message of the real one).
func (o FailOverOptions) Plan(home, backup string) string {
	s := fmt.Sprintf("Fail over the users of %s to %s", home, backup)
	switch {
	case o.DisasterMode:
		s += " in disaster mode: no data sync from the home pool; users sign in to the backup pool in resiliency mode until the failover completes, then in regular mode"
	case o.SkipDataVerification:
		s += " (planned): signed-in users are signed out and sign in to the backup pool; data verification skipped"
	default:
		s += fmt.Sprintf(" (planned): the home pool's data is synced to the backup pool (wait %s), then signed-in users are signed out and sign in to the backup pool", o.WaitTime)
	}
	if o.FlushStorageService {
		s += "; the storage service of every Front End is flushed first"
	}
	return s + "."
}

// FailOver starts Invoke-CsPoolFailOver. homeUp says whether the home pool can be reached
// (required without -DisasterMode); backupUp whether the backup pool serves.
func (p *Pair) FailOver(now time.Time, o FailOverOptions, homeUp, backupUp bool) ([]Event, error) {
	if err := p.CheckFailOver(o, homeUp, backupUp); err != nil || o.WhatIf {
		return nil, err
	}
	p.set(FailingOver, now)
	p.disaster = o.DisasterMode
	p.phaseEnd = now
	if !o.DisasterMode && !o.SkipDataVerification {
		p.phaseEnd = now.Add(o.WaitTime)
	}
	ev := []Event{{FailoverStarted, "Invoke-CsPoolFailOver started. " + o.Plan("the home pool", "the backup pool")}}
	return append(ev, p.Tick(now)...), nil
}

// CheckFailOver says whether FailOver would be refused, without changing anything.
func (p *Pair) CheckFailOver(o FailOverOptions, homeUp, backupUp bool) error {
	switch {
	case p.state != Active:
		return fmt.Errorf("%w: the pool is %s", ErrState, p.state)
	case !backupUp:
		return fmt.Errorf("%w: the backup pool does not serve users", ErrDown)
	case !o.DisasterMode && !homeUp:
		return fmt.Errorf("%w: the pool cannot be reached for a planned failover; use -DisasterMode", ErrDown)
	}
	return nil
}

// Disaster reports whether the current or last failover was in disaster mode.
func (p *Pair) Disaster() bool { return p.disaster }

// FailBack starts Invoke-CsPoolFailBack: the home pool must serve again.
func (p *Pair) FailBack(now time.Time, wait time.Duration, homeUp bool) ([]Event, error) {
	if err := p.CheckFailBack(homeUp); err != nil {
		return nil, err
	}
	p.set(FailingBack, now)
	p.phaseEnd, p.moving, p.moved, p.total, p.reportedAt = now.Add(wait), false, 0, 0, 0
	ev := []Event{{FailbackStarted, fmt.Sprintf("Invoke-CsPoolFailBack started: data synced back for %s, then signed-in users move home at %s", wait, p.paceString())}}
	return append(ev, p.Tick(now)...), nil
}

// AbortFailBack ends a failback whose home pool stopped serving: the users stay with the
// backup pool (FailedOver) until Invoke-CsPoolFailBack runs again.
func (p *Pair) AbortFailBack(now time.Time) []Event {
	if p.state != FailingBack {
		return nil
	}
	p.set(FailedOver, now)
	p.moving = false
	return []Event{{FailbackAborted, fmt.Sprintf("failback aborted after %d users moved: the home pool stopped serving; every user is served by the backup pool again (FailedOver); run Invoke-CsPoolFailBack once the home pool is back", p.moved)}}
}

// AbortFailOver ends a failover whose backup pool stopped serving before it completed: it cannot
// give the users full service, so they stay with (or go back to) their home pool (Active) until
// Invoke-CsPoolFailOver runs again. A completed failover is not undone: its users are the backup
// pool's to serve, and Invoke-CsPoolFailBack brings them home.
func (p *Pair) AbortFailOver(now time.Time) []Event {
	if p.state != FailingOver {
		return nil
	}
	p.set(Active, now)
	return []Event{{FailoverAborted, "failover aborted before it completed: the backup pool stopped serving; the users are served as before the failover (Active), by their home pool; run Invoke-CsPoolFailOver again once the backup pool serves"}}
}

// CheckFailBack says whether FailBack would be refused, without changing anything.
func (p *Pair) CheckFailBack(homeUp bool) error {
	switch {
	case p.state != FailedOver:
		return fmt.Errorf("%w: the pool is %s, not FailedOver", ErrState, p.state)
	case !homeUp:
		return fmt.Errorf("%w: the home pool does not serve users yet; restore it first", ErrDown)
	}
	return nil
}

func (p *Pair) paceString() string {
	return fmt.Sprintf("%d users per %s", p.cfg.FailbackUsers, p.cfg.FailbackPer)
}

// Progress is a failback's progress.
type Progress struct {
	Moving       bool
	Moved, Total int
	Percent      float64
}

// Progress returns the failback's progress.
func (p *Pair) Progress() Progress {
	pr := Progress{Moving: p.moving, Moved: p.moved, Total: p.total}
	if p.total > 0 {
		pr.Percent = math.Min(100, 100*float64(p.moved)/float64(p.total))
	}
	return pr
}

// NextDeadline returns when Tick has work: the end of a sync phase, or the next failback move.
func (p *Pair) NextDeadline() (time.Time, bool) {
	switch {
	case p.state == FailingOver, p.state == FailingBack && !p.moving:
		return p.phaseEnd, true
	case p.state == FailingBack && p.moving:
		return p.moveStart.Add(p.moveTime(p.moved + 1)), true
	}
	if !p.hearing && !p.expired {
		return p.lastHeard.Add(p.cfg.Timer), true
	}
	return time.Time{}, false
}

// moveTime is when the n-th user moves, counted from the start of the moves: the first
// instant at which Due counts it (ceiling of n*per/users, in exact integer arithmetic, so a
// deadline always finds its user due).
func (p *Pair) moveTime(n int) time.Duration {
	return time.Duration(mulDiv(uint64(n), uint64(p.cfg.FailbackPer), uint64(p.cfg.FailbackUsers), true))
}

// mulDiv returns a*b/c rounded down (or up), without overflow for any a, b < 2^63 and
// saturating when the result does not fit.
func mulDiv(a, b, c uint64, up bool) uint64 {
	hi, lo := bits.Mul64(a, b)
	if up {
		var carry uint64
		lo, carry = bits.Add64(lo, c-1, 0)
		hi += carry
	}
	if hi >= c {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, c)
	return min(q, math.MaxInt64)
}

// Tick completes what is due at now: a failover's sync, a failback's sync, the timer.
func (p *Pair) Tick(now time.Time) []Event {
	ev := p.expire(now)
	switch {
	case p.state == FailingOver && !now.Before(p.phaseEnd):
		p.set(FailedOver, now)
		ev = append(ev, Event{FailedOverEvent, "failover complete: the backup pool gives the users full service (regular mode)"})
	case p.state == FailingBack && !p.moving && !now.Before(p.phaseEnd):
		p.moving, p.moveStart = true, now
		ev = append(ev, Event{FailbackMoving, "failback data sync done: moving signed-in users home at " + p.paceString()})
	}
	return ev
}

// Due returns how many users the failback should have moved by now (the registrar moves that
// many more, then reports them with Moved).
func (p *Pair) Due(now time.Time) int {
	if p.state != FailingBack || !p.moving {
		return 0
	}
	elapsed := now.Sub(p.moveStart)
	if elapsed <= 0 {
		return 0
	}
	n := int(min(mulDiv(uint64(elapsed), uint64(p.cfg.FailbackUsers), uint64(p.cfg.FailbackPer), false), math.MaxInt32))
	return max(0, n-p.moved)
}

// Moved records users moved home; left is how many signed-in users remain at the backup. With
// none left the failback completes.
func (p *Pair) Moved(now time.Time, n, left int) []Event {
	if p.state != FailingBack || !p.moving {
		return nil
	}
	p.moved += n
	p.total = p.moved + left
	var ev []Event
	if pct := int(p.Progress().Percent) / 10 * 10; pct > p.reportedAt && left > 0 {
		p.reportedAt = pct
		ev = append(ev, Event{FailbackProgress, fmt.Sprintf("failback: %d of %d signed-in users moved home (%d%%)", p.moved, p.total, pct)})
	}
	if left == 0 {
		p.set(Active, now)
		p.moving = false
		ev = append(ev, Event{FailedBack, fmt.Sprintf("failback complete: %d users moved home; the home pool gives full service again", p.moved)})
	}
	return ev
}
