package client

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a client's sign-in state.
type State int

const (
	// SignedOut: not registered and not trying (before Start, after Stop, after a refusal).
	SignedOut State = iota
	// SigningIn: a sign-in is under way or waiting to retry.
	SigningIn
	// Registered: a registrar holds the client's binding; see Mode.
	Registered
)

func (s State) String() string {
	switch s {
	case SigningIn:
		return "SigningIn"
	case Registered:
		return "Registered"
	}
	return "SignedOut"
}

// Mode is the service a registered client gets (from the 200 OK's presence-State).
type Mode int

const (
	// Regular: full service from the user's pool (is-connected-to-primary="yes").
	Regular Mode = iota
	// Resiliency: signed in to a backup pool or to a pool whose user services are unavailable:
	// no persistent changes (is-connected-to-primary="no" or user-services-state=unavailable).
	Resiliency
)

func (m Mode) String() string {
	if m == Resiliency {
		return "resiliency"
	}
	return "regular"
}

// Kind says what an Event reports.
type Kind int

// Event kinds, in the order a sign-in produces them.
const (
	// AttemptSent: a REGISTER went to Server (Attempt counts the requests of this sign-in;
	// Refresh is set for a refresh of a registration).
	AttemptSent Kind = iota + 1
	// Response: the final response Code came back from Server, RTT after its request was sent.
	Response
	// Challenged: a 401/407 asked for credentials (Stale when the nonce had expired).
	Challenged
	// Redirected: a 3xx named Targets; the client follows the first.
	Redirected
	// Registered: the client is registered with Server in Mode, for Expires.
	RegisteredEvent
	// Lost: the client lost its registration or could not sign in (Reason); it will try
	// again after Backoff unless the Reason is final.
	Lost
	// SignedOutEvent: the client signed out (Stop, an un-REGISTER) or gave up for good.
	SignedOutEvent
	// Notified: the registrar sent a request to the client (NOTIFY, BENOTIFY, OPTIONS).
	Notified
)

func (k Kind) String() string {
	switch k {
	case AttemptSent:
		return "attempt"
	case Response:
		return "response"
	case Challenged:
		return "challenged"
	case Redirected:
		return "redirected"
	case RegisteredEvent:
		return "registered"
	case Lost:
		return "lost"
	case SignedOutEvent:
		return "signed-out"
	case Notified:
		return "notified"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one step of a client's life. It is delivered to the client's event callback on
// the goroutine that caused it; the callback must return quickly.
type Event struct {
	Kind Kind
	// Time is when it happened, with the clock's monotonic reading (time.Now by default).
	Time   time.Time
	Server Server // the registrar concerned, when there is one
	// Attempt numbers the REGISTERs of one sign-in (1 for the first); Refresh marks a refresh.
	Attempt int
	Refresh bool
	Code    int           // with Response
	RTT     time.Duration // with Response: request sent to final response
	Stale   bool          // with Challenged
	Targets []Server      // with Redirected, in q order
	Mode    Mode          // with RegisteredEvent
	Expires time.Duration // with RegisteredEvent
	// Reason says why, with Lost, SignedOutEvent and Notified.
	Reason string
	// Backoff is how long the client waits before trying again, with Lost (0: at once).
	Backoff time.Duration
	// Final is set on a Lost event after which the client gives up (a refusal).
	Final bool
}

func (e Event) String() string {
	s := e.Kind.String()
	if e.Server.Addr.IsValid() {
		s += " " + e.Server.String()
	}
	switch e.Kind {
	case AttemptSent:
		s += fmt.Sprintf(" #%d", e.Attempt)
		if e.Refresh {
			s += " refresh"
		}
	case Response:
		s += fmt.Sprintf(" %d in %s", e.Code, e.RTT.Round(time.Microsecond))
	case Challenged:
		if e.Stale {
			s += " (stale nonce)"
		}
	case Redirected:
		s += fmt.Sprintf(" to %v", e.Targets)
	case RegisteredEvent:
		s += fmt.Sprintf(" %s mode, expires in %s", e.Mode, e.Expires)
	case Lost:
		s += ": " + e.Reason
		if e.Final {
			s += " (giving up)"
		} else {
			s += fmt.Sprintf(", retrying in %s", e.Backoff.Round(time.Millisecond))
		}
	case SignedOutEvent, Notified:
		s += ": " + e.Reason
	}
	return s
}

// Status is a snapshot of a client.
type Status struct {
	State     State
	Mode      Mode
	Registrar Server // the registrar holding the binding, when Registered
	Since     time.Time
	// Home and Backup are the registrars the last redirect named (q=0.7 and q=0.3).
	Home, Backup Server
	Contact      string
}

// EventChannel adapts a channel to an event callback that never blocks: when the channel is
// full the event is dropped and counted in dropped (which may be nil).
func EventChannel(ch chan<- Event, dropped *Counter) func(Event) {
	return func(e Event) {
		select {
		case ch <- e:
		default:
			if dropped != nil {
				dropped.Add(1)
			}
		}
	}
}

// loopbackOnly refuses non-loopback addresses unless allowed.
func loopbackOnly(a netip.AddrPort, allow bool) error {
	if allow || a.Addr().IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotLoopback, a)
}
