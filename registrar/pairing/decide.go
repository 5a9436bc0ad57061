package pairing

import "time"

// Where is the pool that serves a home pool's user.
type Where int

const (
	// Home: the user's home pool.
	Home Where = iota
	// Backup: the backup pool.
	Backup
	// Wait: the backup would serve the user but the resiliency timer has not run out: it
	// refuses (503 with Retry-After) until then.
	Wait
	// Nowhere: no pool can serve the user now.
	Nowhere
)

func (w Where) String() string {
	return [...]string{"home", "backup", "wait", "nowhere"}[w]
}

// Situation is what Decide looks at, as seen from where the request arrived: at the backup
// pool, HomeServing means "the backup hears the home pool"; elsewhere, that the home pool
// serves.
type Situation struct {
	State         State
	HomeServing   bool
	HasBackup     bool
	BackupServing bool
	TimerExpired  bool
	TimerLeft     time.Duration
	// HomeSurvivable and BackupSurvivable: the pool's Back End has been down longer than the
	// survivable-mode threshold, so it serves in resiliency mode.
	HomeSurvivable, BackupSurvivable bool
	// RegisteredAtBackup: the user still has a registration at the backup pool (read only
	// while FailingBack: such users stay there until the failback moves them).
	RegisteredAtBackup bool
}

// Decision is where a user is served and how.
type Decision struct {
	Where      Where
	Resiliency bool
	RetryAfter time.Duration // with Wait
}

// Decide places a home pool's user:
//
//	state        home serving  backup serving  timer      -> where, mode
//	FailedOver   any           yes             any        -> backup, regular (resiliency if its Back End is survivable)
//	FailingOver  any           yes             any        -> backup, resiliency
//	FailingBack  any           yes (and the user is registered there) -> backup, resiliency
//	FailingBack  yes           any             any        -> home, resiliency
//	FailingBack  no            yes             any        -> backup, resiliency
//	Active       yes           any             any        -> home, regular (resiliency if its Back End is survivable)
//	Active       no            yes             expired    -> backup, resiliency
//	Active       no            yes             running    -> wait (Retry-After: the time left)
//	anything else                                         -> nowhere
func Decide(s Situation) Decision {
	backup := s.HasBackup && s.BackupServing
	switch s.State {
	case FailedOver:
		if backup {
			return Decision{Where: Backup, Resiliency: s.BackupSurvivable}
		}
	case FailingOver:
		if backup {
			return Decision{Where: Backup, Resiliency: true}
		}
	case FailingBack:
		if backup && s.RegisteredAtBackup {
			return Decision{Where: Backup, Resiliency: true}
		}
		if s.HomeServing {
			return Decision{Where: Home, Resiliency: true}
		}
		if backup {
			return Decision{Where: Backup, Resiliency: true}
		}
	case Active:
		switch {
		case s.HomeServing:
			return Decision{Where: Home, Resiliency: s.HomeSurvivable}
		case backup && s.TimerExpired:
			return Decision{Where: Backup, Resiliency: true}
		case backup:
			return Decision{Where: Wait, RetryAfter: max(time.Second, s.TimerLeft)}
		}
	}
	return Decision{Where: Nowhere}
}
