package fabric

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// State is a pool's fabric state.
type State int

const (
	// Stopped: no Front End runs.
	Stopped State = iota
	// Starting: Front Ends run but fewer than the cold-start rule needs; no service.
	Starting
	// Started: the pool serves users.
	Started
	// QuorumLost: pool-level quorum was lost; no service, and the remaining Front Ends stop all
	// services when the shutdown delay ends unless quorum returns first.
	QuorumLost
)

func (s State) String() string {
	switch s {
	case Stopped:
		return "Stopped"
	case Starting:
		return "Starting"
	case Started:
		return "Started"
	case QuorumLost:
		return "QuorumLost"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Config is a pool fabric's fixed shape and timers.
type Config struct {
	FrontEnds     int // in topology order; the first ones are the "first servers"
	RoutingGroups int
	// FailureDetection is how long a crash goes unnoticed (lease expiry).
	FailureDetection time.Duration
	// QuorumLossShutdown is how long the remaining Front Ends wait before stopping services.
	QuorumLossShutdown time.Duration
}

// Errors returned by administrative operations.
var (
	ErrNoPoolQuorum  = errors.New("pool-level quorum is not met")
	ErrNotRunning    = errors.New("front end is not running")
	ErrStillRunning  = errors.New("front end is still running")
	ErrBadFrontEnd   = errors.New("no such front end")
	ErrPoolNotActive = errors.New("pool is not started")
)

// Pool is one pool's fabric. Front Ends and RGs are identified by index.
type Pool struct {
	cfg Config
	// running: the fabric counts the Front End as up (its services run and it was not detected
	// as failed). crashedAt: crashed, not yet detected (still counted as running until then).
	running   []bool
	crashedAt []time.Time
	backEndUp bool
	state     State
	// replicas[rg]: FE indices, primary first. While the pool is Started they are running FEs;
	// an RG that lost every replica keeps its last list in lost[rg] for recovery.
	replicas [][]int
	lost     [][]int
	// shutdownAt is when a QuorumLost pool stops services.
	shutdownAt time.Time
	// placed: RGs were placed at least once (the RoutingGroupAssignment table exists).
	placed bool
}

// New returns a stopped pool with every Front End down and the Back End up.
func New(cfg Config) *Pool {
	if cfg.FrontEnds < 1 {
		cfg.FrontEnds = 1
	}
	if cfg.RoutingGroups < 1 {
		cfg.RoutingGroups = 1
	}
	return &Pool{
		cfg:       cfg,
		running:   make([]bool, cfg.FrontEnds),
		crashedAt: make([]time.Time, cfg.FrontEnds),
		backEndUp: true,
		replicas:  make([][]int, cfg.RoutingGroups),
		lost:      make([][]int, cfg.RoutingGroups),
	}
}

// State returns the pool's state.
func (p *Pool) State() State { return p.state }

// Running reports whether the fabric counts the Front End as running.
func (p *Pool) Running(fe int) bool { return fe >= 0 && fe < len(p.running) && p.running[fe] }

// RunningCount returns how many Front Ends the fabric counts as running.
func (p *Pool) RunningCount() int {
	n := 0
	for _, r := range p.running {
		if r {
			n++
		}
	}
	return n
}

// Replicas returns a copy of an RG's replica list, primary first (empty when the RG has none).
func (p *Pool) Replicas(rg int) []int { return slices.Clone(p.replicas[rg]) }

// ShutdownAt returns when a QuorumLost pool stops services.
func (p *Pool) ShutdownAt() time.Time { return p.shutdownAt }

// k is the target replica count with the given number of running Front Ends.
func (p *Pool) k(running int) int { return min(MaxReplicas, running) }

// Start records that Front Ends' services started (several at once when a pool is started). A
// pool that is Stopped or Starting starts once the cold-start rule is met, placing RGs once over
// all of them; a Started or QuorumLost pool takes them at once.
//
// A Front End that crashed and starts again before its crash was detected is a new process with
// an empty memory: its crash is detected now (the new instance announces itself, as a restarted
// Windows Fabric node does), so its routing groups are promoted away, and it joins again like a
// Front End back from a longer outage, as a secondary. Pool-level quorum is judged once it has
// joined: it was never away long enough to lose it.
func (p *Pool) Start(now time.Time, fes ...int) ([]Event, error) {
	if err := p.check(fes); err != nil {
		return nil, err
	}
	var restarted []int
	for _, fe := range fes {
		if p.running[fe] && !p.crashedAt[fe].IsZero() && !slices.Contains(restarted, fe) {
			restarted = append(restarted, fe)
		}
	}
	var ev []Event
	if len(restarted) > 0 {
		ev = p.leave(restarted, "failed: it restarted before its crash was detected, with an empty memory; it joins again as a secondary")
		if p.RunningCount() == 0 && (p.state == Started || p.state == QuorumLost) {
			ev = append(ev, p.stopAll()...) // no other Front End runs: this is a cold start
		}
	}
	var joined []int
	for _, fe := range fes {
		if !p.running[fe] {
			p.running[fe] = true
			p.crashedAt[fe] = time.Time{}
			joined = append(joined, fe)
		}
	}
	if len(joined) == 0 {
		return ev, nil
	}
	switch p.state {
	case Stopped, Starting:
		ev = append(ev, p.tryColdStart(now, false)...)
	case Started:
		ev = append(ev, p.rejoin(joined)...)
	case QuorumLost:
		if HasPoolQuorum(p.running, p.backEndUp) {
			p.state = Started
			p.shutdownAt = time.Time{}
			ev = append(ev, Event{Kind: QuorumRegained, FE: -1, RG: -1, Msg: "pool-level quorum regained; services resume"})
			ev = append(ev, p.rejoin(joined)...)
		}
	}
	return ev, nil
}

func (p *Pool) check(fes []int) error {
	for _, fe := range fes {
		if fe < 0 || fe >= len(p.running) {
			return fmt.Errorf("%w: index %d of %d", ErrBadFrontEnd, fe, len(p.running))
		}
	}
	return nil
}

// tryColdStart starts a Stopped/Starting pool when enough Front Ends run (or when forced by
// QuorumLossRecovery).
func (p *Pool) tryColdStart(now time.Time, force bool) []Event {
	n, need := p.RunningCount(), ColdStartNeed(p.cfg.FrontEnds)
	if n == 0 {
		p.state = Stopped
		return nil
	}
	if n < need && !force {
		first := p.state == Stopped
		p.state = Starting
		ev := []Event{{Kind: StartupDelayed, ID: 32174, FE: -1, RG: -1, Count: n,
			Msg: fmt.Sprintf("server startup is being delayed: fabric pool manager is initializing (%d of %d Front Ends running, %d needed to start the pool)", n, p.cfg.FrontEnds, need)}}
		if first {
			ev = append(ev, Event{Kind: PoolManagerCannotConnect, ID: 32170, FE: -1, RG: -1, Count: need,
				Msg: fmt.Sprintf("pool manager cannot connect to the fabric pool manager: make sure at least 85%% of the Front Ends (%d of %d) are running, or run Reset-CsPoolRegistrarState -ResetType QuorumLossRecovery", need, p.cfg.FrontEnds)})
		}
		return ev
	}
	p.state = Started
	ev := []Event{{Kind: PoolStarted, FE: -1, RG: -1, Count: n, Msg: fmt.Sprintf("pool started with %d of %d Front Ends", n, p.cfg.FrontEnds)}}
	// Keep the remembered placement where its replicas run; place the rest.
	for rg := range p.replicas {
		if len(p.replicas[rg]) == 0 && len(p.lost[rg]) > 0 {
			p.replicas[rg], p.lost[rg] = p.lost[rg], nil
		}
		p.replicas[rg] = p.keepRunning(p.replicas[rg])
	}
	p.fill()
	p.placed = true
	return ev
}

// keepRunning drops Front Ends that do not run, preserving order.
func (p *Pool) keepRunning(list []int) []int {
	out := list[:0]
	for _, fe := range list {
		if p.running[fe] {
			out = append(out, fe)
		}
	}
	return out
}

// rejoin places Front Ends that started in a serving pool: RGs that lost every replica and
// remember one of them come back with it as primary; RGs short of replicas take them as
// secondaries. No primary moves by itself (Reset-CsPoolRegistrarState -ResetType ServiceReset
// rebalances).
func (p *Pool) rejoin(joined []int) []Event {
	var ev []Event
	for rg, lost := range p.lost {
		if len(p.replicas[rg]) > 0 {
			continue
		}
		for _, fe := range lost {
			if slices.Contains(joined, fe) {
				p.replicas[rg], p.lost[rg] = []int{fe}, nil
				ev = append(ev, Event{Kind: RoutingGroupRestored, FE: fe, RG: rg, Msg: "routing group has a replica again; its users get service (registrations were lost)"})
				break
			}
		}
	}
	p.fill()
	return ev
}

// Stop records a graceful stop: the fabric is told at once.
func (p *Pool) Stop(now time.Time, fes ...int) ([]Event, error) {
	if err := p.check(fes); err != nil {
		return nil, err
	}
	var gone []int
	for _, fe := range fes {
		if p.running[fe] {
			gone = append(gone, fe)
		}
	}
	return p.down(now, gone, false), nil
}

// Crash records abrupt failures. The fabric notices FailureDetection later (at Tick), all the
// Front Ends crashed at the same time together; until then they still count as running, RGs
// still point at them, and no new replica is placed on them.
func (p *Pool) Crash(now time.Time, fes ...int) ([]Event, error) {
	if err := p.check(fes); err != nil {
		return nil, err
	}
	for _, fe := range fes {
		if p.running[fe] && p.crashedAt[fe].IsZero() {
			p.crashedAt[fe] = now
		}
	}
	if p.cfg.FailureDetection <= 0 {
		return p.Tick(now), nil
	}
	return nil, nil
}

// down takes Front Ends out of the fabric together: promote, re-place, check pool quorum.
func (p *Pool) down(now time.Time, fes []int, crashed bool) []Event {
	if len(fes) == 0 {
		return nil
	}
	how := "stopped"
	if crashed {
		how = "failed"
	}
	ev := p.leave(fes, how)
	if p.state != Started && p.state != QuorumLost {
		return ev
	}
	if p.RunningCount() == 0 {
		return append(ev, p.stopAll()...)
	}
	if p.state == Started && !HasPoolQuorum(p.running, p.backEndUp) {
		ev = append(ev, p.loseQuorum(now)...)
	}
	return ev
}

// leave takes Front Ends out of the fabric (how says why, in their 32108 events): their routing
// groups are promoted and re-placed. Pool-level quorum is the caller's to judge.
func (p *Pool) leave(fes []int, how string) []Event {
	var ev []Event
	for _, fe := range fes {
		p.running[fe] = false
		p.crashedAt[fe] = time.Time{}
		ev = append(ev, Event{Kind: FrontEndInactive, ID: 32108, FE: fe, RG: -1, Msg: "fabric pool manager marked the Front End inactive (" + how + ")"})
	}
	switch p.state {
	case Starting:
		if p.RunningCount() == 0 {
			p.state = Stopped
		}
		return ev
	case Stopped:
		return ev
	}
	promoted := map[int]int{} // failed FE -> RGs promoted away from it
	for rg, list := range p.replicas {
		if len(list) == 0 {
			continue
		}
		before := slices.Clone(list)
		wasPrimary := list[0]
		kept := slices.DeleteFunc(list, func(fe int) bool { return slices.Contains(fes, fe) })
		p.replicas[rg] = kept
		switch {
		case len(kept) == 0:
			p.lost[rg] = before // any of them returning brings the RG back
			ev = append(ev, Event{Kind: RoutingGroupLost, FE: wasPrimary, RG: rg, Msg: "routing group lost every replica: its users get 503 until a replica returns or Reset-CsPoolRegistrarState -ResetType QuorumLossRecovery"})
		case kept[0] != wasPrimary:
			promoted[wasPrimary]++
			ev = append(ev, Event{Kind: PrimaryPromoted, ID: 32167, FE: kept[0], RG: rg, Msg: "primary backup promoted to primary of the routing group"})
		}
	}
	for _, fe := range fes {
		if n := promoted[fe]; n > 0 {
			ev = append(ev,
				Event{Kind: ConferenceDirectoryPromoted, ID: 51037, FE: fe, RG: -1, Count: n, Msg: "conference directories of the failed Front End promoted to their backups"},
				Event{Kind: MCUFactoryChanged, ID: 51035, FE: fe, RG: -1, Count: n, Msg: "MCU factory updated for the moved routing groups"},
				Event{Kind: StorageServicePrimary, ID: 32033, FE: fe, RG: -1, Count: n, Msg: "storage service primaries reassigned for the moved routing groups"},
			)
		}
	}
	p.fill()
	return ev
}

// stopAll records that no Front End runs any more: the placement is remembered for the next start.
func (p *Pool) stopAll() []Event {
	for rg := range p.replicas {
		if len(p.replicas[rg]) > 0 {
			p.lost[rg], p.replicas[rg] = p.replicas[rg], nil
		}
	}
	p.state, p.shutdownAt = Stopped, time.Time{}
	return []Event{{Kind: PoolStopped, FE: -1, RG: -1, Msg: "no Front End of the pool runs: the pool is stopped"}}
}

func (p *Pool) loseQuorum(now time.Time) []Event {
	p.state = QuorumLost
	p.shutdownAt = now.Add(p.cfg.QuorumLossShutdown)
	n := p.RunningCount()
	rule := PoolQuorum(p.cfg.FrontEnds)
	return []Event{
		{Kind: QuorumLoss, ID: 32163, FE: -1, RG: -1, Count: n, Msg: fmt.Sprintf("pool manager disconnected from the fabric pool manager: pool-level quorum lost (%d of %d Front Ends running, %s)", n, p.cfg.FrontEnds, rule)},
		{Kind: RoutingGroupsClosed, ID: 32189, FE: -1, RG: -1, Count: p.cfg.RoutingGroups, Msg: "pool fabric closed routing group connections: users are disconnected"},
		{Kind: ShutdownScheduled, ID: 32173, FE: -1, RG: -1, Msg: fmt.Sprintf("Front End services will stop in %s unless quorum returns", p.cfg.QuorumLossShutdown)},
	}
}

func (r QuorumRule) String() string {
	switch {
	case r.WitnessBackEnd:
		return "need 1 with the Back End as witness, both without it"
	case r.Among > 0:
		return fmt.Sprintf("need any %d of the first %d", r.Need, r.Among)
	}
	return fmt.Sprintf("need any %d", r.Need)
}

// SetBackEnd records the Back End's availability (the witness of a two-server pool).
func (p *Pool) SetBackEnd(up bool, now time.Time) []Event {
	if p.backEndUp == up {
		return nil
	}
	p.backEndUp = up
	if p.state == Started && !HasPoolQuorum(p.running, up) {
		return p.loseQuorum(now)
	}
	if p.state == QuorumLost && HasPoolQuorum(p.running, up) {
		p.state, p.shutdownAt = Started, time.Time{}
		return []Event{{Kind: QuorumRegained, FE: -1, RG: -1, Msg: "pool-level quorum regained; services resume"}}
	}
	return nil
}

// NextDeadline returns the earliest time Tick has work to do.
func (p *Pool) NextDeadline() (time.Time, bool) {
	var next time.Time
	for _, t := range p.crashedAt {
		if !t.IsZero() {
			d := t.Add(p.cfg.FailureDetection)
			if next.IsZero() || d.Before(next) {
				next = d
			}
		}
	}
	if p.state == QuorumLost && (next.IsZero() || p.shutdownAt.Before(next)) {
		next = p.shutdownAt
	}
	return next, !next.IsZero()
}

// Tick processes what is due at now: crash detection and quorum-loss shutdown. A ServicesStopped
// event per Front End tells the owner to stop it.
func (p *Pool) Tick(now time.Time) []Event {
	var due []int
	for fe, t := range p.crashedAt {
		if !t.IsZero() && !now.Before(t.Add(p.cfg.FailureDetection)) {
			due = append(due, fe)
		}
	}
	ev := p.down(now, due, true)
	if p.state == QuorumLost && !now.Before(p.shutdownAt) {
		for fe, up := range p.running {
			if up {
				p.running[fe] = false
				p.crashedAt[fe] = time.Time{}
				ev = append(ev, Event{Kind: ServicesStopped, FE: fe, RG: -1, Msg: "Front End services stopped: pool-level quorum was not regained in time"})
			}
		}
		ev = append(ev, p.stopAll()...)
	}
	return ev
}

// Serving reports whether users of the pool can get service at all.
func (p *Pool) Serving() bool { return p.state == Started }
