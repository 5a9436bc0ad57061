package pairing

import (
	"errors"
	"fmt"
)

// Op is a disaster-recovery cmdlet on one pool of a pairing.
type Op int

// Operations.
const (
	// OpFailOver is Invoke-CsPoolFailOver -PoolFqdn <the pool>.
	OpFailOver Op = iota + 1
	// OpFailBack is Invoke-CsPoolFailBack -PoolFqdn <the pool>.
	OpFailBack
)

func (o Op) String() string {
	switch o {
	case OpFailOver:
		return "Invoke-CsPoolFailOver"
	case OpFailBack:
		return "Invoke-CsPoolFailBack"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// ErrPartner refuses an operation because the pool serves its partner's users, or is taking
// them over or handing them back: each pool would end up serving the other's users.
var ErrPartner = errors.New("the pool serves its partner pool's users")

// Sides is a pairing seen from the pool an operation names.
type Sides struct {
	// Pool and Partner are the two pools' FQDNs (for the messages); Partner is the pool's
	// backup pool.
	Pool, Partner string
	// Own is the disaster-recovery state of the pool's own users (Partner is their backup).
	Own State
	// Paired: the partner backs this pool up in turn; PartnerUsers is then the state of the
	// partner's users, whom this pool backs up.
	Paired       bool
	PartnerUsers State
}

// Allow decides whether op may run on the pool now, by the states of both directions of its
// pairing. A refusal wraps ErrState or ErrPartner and says what to do instead.
//
//	op           own users     partner's users (they are at, or moving to or from, this pool)
//	FailOver     Active        Active                                   -> allowed
//	FailOver     not Active    any                                      -> ErrState
//	FailOver     Active        FailingOver, FailedOver or FailingBack   -> ErrPartner
//	FailBack     FailedOver    any                                      -> allowed (it is how a pool hands its partner's users back, so it is never refused for theirs)
//	FailBack     not FailedOver any                                     -> ErrState
//
// There is no Op for the rest: stopping, starting and crashing Front Ends and
// Reset-CsPoolRegistrarState are never refused for the pairing's sake (a fault cannot be
// refused, and Lync does not refuse them either; the registrar's table test runs each against
// every pairing state). The pairing copes with their outcome: a failover or failback whose destination pool stops serving
// before it completes is aborted, and users whose pool serves no one wait or get 503.
//
// Whether the pools can be reached (a planned failover, a failback) is not a state rule:
// CheckFailOver and CheckFailBack judge it.
func Allow(op Op, s Sides) error {
	switch op {
	case OpFailOver:
		switch s.Own {
		case FailingOver:
			return fmt.Errorf("%w: %s is already failing over to %s; wait for it to complete (Get-CsPoolBackupRelationship shows its state)", ErrState, s.Pool, s.Partner)
		case FailedOver:
			return fmt.Errorf("%w: %s is already failed over to %s (FailedOver); to bring its users home run Invoke-CsPoolFailBack -PoolFqdn %s", ErrState, s.Pool, s.Partner, s.Pool)
		case FailingBack:
			return fmt.Errorf("%w: %s is failing back from %s; wait for the failback to complete (Get-CsPoolBackupRelationship shows its state) before failing it over again", ErrState, s.Pool, s.Partner)
		}
		if !s.Paired {
			return nil
		}
		switch s.PartnerUsers {
		case FailingOver:
			return fmt.Errorf("%w: the users of %s are failing over to %s, which cannot fail over to %s while it takes them over (each pool would serve the other's users); wait for that failover to complete and run Invoke-CsPoolFailBack -PoolFqdn %s, then fail %s over", ErrPartner, s.Partner, s.Pool, s.Partner, s.Partner, s.Pool)
		case FailedOver:
			return fmt.Errorf("%w: %s serves the users of %s (failed over to it) and cannot fail over to %s (each pool would serve the other's users); run Invoke-CsPoolFailBack -PoolFqdn %s first, then fail %s over", ErrPartner, s.Pool, s.Partner, s.Partner, s.Partner, s.Pool)
		case FailingBack:
			return fmt.Errorf("%w: the users of %s are failing back from %s, which cannot fail over to %s until they are all home; wait for that failback to complete (Get-CsPoolBackupRelationship shows its state), then fail %s over", ErrPartner, s.Partner, s.Pool, s.Partner, s.Pool)
		}
	case OpFailBack:
		switch s.Own {
		case Active:
			return fmt.Errorf("%w: %s is Active, not FailedOver: its users are home, there is nothing to fail back", ErrState, s.Pool)
		case FailingOver:
			return fmt.Errorf("%w: %s is still failing over to %s, not FailedOver; wait for the failover to complete, then fail it back", ErrState, s.Pool, s.Partner)
		case FailingBack:
			return fmt.Errorf("%w: %s is already failing back, not FailedOver; wait for the failback to complete (Get-CsPoolBackupRelationship shows its state)", ErrState, s.Pool)
		}
	}
	return nil
}
