package fabric

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ResetType is a Reset-CsPoolRegistrarState -ResetType value.
type ResetType string

// Reset types.
const (
	// ServiceReset (the cmdlet's default) rebuilds the RG placement: on a started pool RGs are
	// placed again evenly over the running Front Ends with their registrations moved (primaries
	// may change); on a stopped or starting pool the remembered placement is forgotten.
	ServiceReset ResetType = "ServiceReset"
	// QuorumLossRecovery starts a pool stuck in Starting (pool-level quorum must hold), and on a
	// started pool re-places RGs that lost every replica, empty.
	QuorumLossRecovery ResetType = "QuorumLossRecovery"
	// FullReset is ServiceReset that also discards every registration.
	FullReset ResetType = "FullReset"
	// MachineStateRemoved drops one Front End (which must not run) from every RG.
	MachineStateRemoved ResetType = "MachineStateRemoved"
)

// ParseResetType accepts a reset type in any letter case.
func ParseResetType(s string) (ResetType, error) {
	for _, t := range []ResetType{ServiceReset, QuorumLossRecovery, FullReset, MachineStateRemoved} {
		if strings.EqualFold(string(t), s) {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown ResetType %q (ServiceReset, QuorumLossRecovery, FullReset or MachineStateRemoved)", s)
}

// ResetResult tells the owner what a reset changed so it can move or drop registration data.
type ResetResult struct {
	Events []Event
	// Moved[rg] is the RG's replica list before the reset, for RGs whose placement changed; the
	// owner copies their data from the old primary to the new replicas.
	Moved map[int][]int
	// Emptied lists RGs re-placed with no data (recovered from quorum loss).
	Emptied []int
	// DropAll: every registration is discarded (FullReset).
	DropAll bool
}

// Reset applies Reset-CsPoolRegistrarState. machine is the Front End index for
// MachineStateRemoved (ignored otherwise).
func (p *Pool) Reset(t ResetType, machine int, now time.Time) (ResetResult, error) {
	var r ResetResult
	switch t {
	case ServiceReset, FullReset:
		r.DropAll = t == FullReset
		if p.state != Started {
			for rg := range p.replicas {
				p.replicas[rg], p.lost[rg] = nil, nil
			}
			p.placed = false
			r.Events = append(r.Events, Event{Kind: RegistrarReset, FE: -1, RG: -1, Msg: fmt.Sprintf("%s: routing group placement forgotten; it is rebuilt when the pool starts", t)})
			return r, nil
		}
		old := p.rebalance()
		r.Moved = map[int][]int{}
		for rg, o := range old {
			if !slices.Equal(o, p.replicas[rg]) {
				r.Moved[rg] = o
			}
		}
		r.Events = append(r.Events, Event{Kind: RegistrarReset, FE: -1, RG: -1, Count: len(r.Moved), Msg: fmt.Sprintf("%s: routing groups placed again evenly over %d running Front Ends (%d moved)", t, p.RunningCount(), len(r.Moved))})
		return r, nil

	case QuorumLossRecovery:
		switch p.state {
		case Stopped:
			return r, fmt.Errorf("%w: no Front End of the pool runs", ErrNoPoolQuorum)
		case Starting:
			if !HasPoolQuorum(p.running, p.backEndUp) {
				return r, fmt.Errorf("%w: %d of %d Front Ends run (%s); start more before QuorumLossRecovery", ErrNoPoolQuorum, p.RunningCount(), p.cfg.FrontEnds, PoolQuorum(p.cfg.FrontEnds))
			}
			r.Events = append(r.Events, Event{Kind: RegistrarReset, FE: -1, RG: -1, Msg: "QuorumLossRecovery: starting the pool with the running Front Ends"})
			r.Events = append(r.Events, p.tryColdStart(now, true)...)
			return r, nil
		case QuorumLost:
			return r, fmt.Errorf("%w: %d of %d Front Ends run (%s)", ErrNoPoolQuorum, p.RunningCount(), p.cfg.FrontEnds, PoolQuorum(p.cfg.FrontEnds))
		}
		for rg := range p.replicas {
			if len(p.replicas[rg]) == 0 {
				p.lost[rg] = nil
				r.Emptied = append(r.Emptied, rg)
			}
		}
		p.fill()
		r.Events = append(r.Events, Event{Kind: RegistrarReset, FE: -1, RG: -1, Count: len(r.Emptied), Msg: fmt.Sprintf("QuorumLossRecovery: %d routing groups without replicas placed again (their registrations were lost)", len(r.Emptied))})
		return r, nil

	case MachineStateRemoved:
		if machine < 0 || machine >= len(p.running) {
			return r, ErrBadFrontEnd
		}
		if p.running[machine] {
			return r, fmt.Errorf("%w: stop it before MachineStateRemoved", ErrStillRunning)
		}
		for rg := range p.replicas {
			p.lost[rg] = slices.DeleteFunc(p.lost[rg], func(fe int) bool { return fe == machine })
			if len(p.replicas[rg]) == 0 && len(p.lost[rg]) == 0 && p.state == Started {
				r.Emptied = append(r.Emptied, rg)
			}
		}
		if p.state == Started {
			p.fill()
		}
		r.Events = append(r.Events, Event{Kind: RegistrarReset, FE: machine, RG: -1, Count: len(r.Emptied), Msg: fmt.Sprintf("MachineStateRemoved: Front End dropped from the fabric state (%d routing groups placed again)", len(r.Emptied))})
		return r, nil
	}
	return r, fmt.Errorf("unknown reset type %q", t)
}
