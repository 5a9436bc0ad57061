// Package location holds registrations: the bindings of each address of record, and how a
// REGISTER changes them (RFC 3261 §10.3, RFC 5626 instance/reg-id keys, Lync's expiry clamp and
// endpoint limit). Apply is a pure function; Store is one Front End's memory, sharded by AOR.
//
// Records are immutable once built, so replicating an RG to its secondaries stores the same
// pointer in their Stores: replication costs a map entry per replica, and a Front End that
// crashes loses only its own maps.
package location

import (
	"strconv"
	"time"
)

// Flow is where a binding's REGISTER came from: the transport, the client's address as seen by
// the registrar (received/rport), and the Front End address it reached.
type Flow struct {
	Transport string // UDP, TCP, TLS
	Remote    string // ip:port
	Local     string // ip:port
}

// Binding is one registered contact of a user.
type Binding struct {
	// Contact is the contact URI as the client sent it; Key identifies the binding (the
	// instance and reg-id when present, else the normalised URI).
	Contact  string
	Key      string
	Instance string // +sip.instance value, such as "<urn:uuid:...>"
	RegID    int    // reg-id, 0 when absent
	Q        string // q-value as sent, "" when absent
	// Params are the contact's header parameters as sent, without expires, echoed in the 200.
	Params  string
	CallID  string
	CSeq    uint32
	Expires time.Time
	Added   time.Time
	Flow    Flow
	Path    []string
	// UserAgent is the client's User-Agent header, for display.
	UserAgent string
}

// ExpiresIn returns the whole seconds left at now (never negative).
func (b *Binding) ExpiresIn(now time.Time) int {
	d := b.Expires.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// Record is the set of bindings of one address of record. It is never modified once built.
type Record struct {
	AOR      string
	Bindings []Binding
}

// Active returns the bindings not expired at now (the record's own slice when none expired).
func (r *Record) Active(now time.Time) []Binding {
	if r == nil {
		return nil
	}
	for i := range r.Bindings {
		if !now.Before(r.Bindings[i].Expires) {
			out := make([]Binding, 0, len(r.Bindings)-1)
			for j := range r.Bindings {
				if now.Before(r.Bindings[j].Expires) {
					out = append(out, r.Bindings[j])
				}
			}
			return out
		}
	}
	return r.Bindings
}

// Action is the register-action a 200 OK reports in presence-State.
type Action int

const (
	// Fetched: the REGISTER had no Contact; nothing changed.
	Fetched Action = iota
	// Refreshed: every binding in the request existed with its Call-ID.
	Refreshed
	// Fixed: a binding existed for the contact or instance under another Call-ID and was replaced.
	Fixed
	// Added: at least one binding was new: a refresh answered so means the registrar had lost it.
	Added
	// Removed: the request only removed bindings.
	Removed
)

func (a Action) String() string {
	switch a {
	case Added:
		return "added"
	case Refreshed:
		return "refreshed"
	case Fixed:
		return "fixed"
	case Removed:
		return "removed"
	}
	return "fetched"
}

// ContactSpec is one Contact header value of a REGISTER.
type ContactSpec struct {
	URI      string
	Key      string // see Binding.Key
	Expires  int    // the contact's expires parameter in seconds, -1 when absent
	Q        string
	Instance string
	RegID    int
	Params   string // header parameters without expires
}

// Request is what a REGISTER asks for.
type Request struct {
	CallID string
	CSeq   uint32
	// Star is a "Contact: *" (remove every binding); it must come alone with Expires: 0.
	Star bool
	// Expires is the Expires header in seconds, -1 when absent.
	Expires   int
	Contacts  []ContactSpec
	Flow      Flow
	Path      []string
	UserAgent string
}

// Policy is the registrar's expiry clamp and endpoint limit.
type Policy struct {
	Min, Max, Default time.Duration
	MaxEndpoints      int
}

// Result is the outcome of Apply. Status 200 means Record is the new record (nil when no binding
// is left); any other status means nothing changed.
type Result struct {
	Status int
	Reason string
	// MinExpires is set with 423 Interval Too Brief.
	MinExpires int
	Record     *Record
	Action     Action
}

// Apply computes the effect of a REGISTER on old (nil when the AOR has no record) at now.
func Apply(aor string, old *Record, req Request, pol Policy, now time.Time) Result {
	active := old.Active(now)
	if req.Star {
		if len(req.Contacts) > 0 || req.Expires != 0 {
			return Result{Status: 400, Reason: "Contact * needs Expires: 0 and no other Contact"}
		}
		var kept []Binding
		for _, b := range active {
			// RFC 3261 §10.3 step 6: an older request of the same Call-ID does not remove.
			if b.CallID == req.CallID && req.CSeq <= b.CSeq {
				kept = append(kept, b)
			}
		}
		return Result{Status: 200, Record: build(aor, kept), Action: Removed}
	}
	if len(req.Contacts) == 0 {
		return Result{Status: 200, Record: build(aor, active), Action: Fetched}
	}
	next := append([]Binding(nil), active...)
	action := Removed
	raise := func(a Action) {
		if action == Removed || a > action {
			action = a
		}
	}
	for _, c := range req.Contacts {
		secs := c.Expires
		if secs < 0 {
			secs = req.Expires
		}
		var life time.Duration
		switch {
		case secs < 0:
			life = pol.Default
		case secs == 0:
			life = 0
		default:
			life = time.Duration(secs) * time.Second
			if life < pol.Min {
				return Result{Status: 423, Reason: "Interval Too Brief", MinExpires: int(pol.Min / time.Second)}
			}
			life = min(life, pol.Max)
		}
		i := indexOf(next, c.Key)
		if i >= 0 && next[i].CallID == req.CallID && req.CSeq <= next[i].CSeq {
			return Result{Status: 400, Reason: "Out of order CSeq for this Call-ID"}
		}
		if life == 0 {
			if i >= 0 {
				next = append(next[:i], next[i+1:]...)
			}
			continue
		}
		b := Binding{
			Contact: c.URI, Key: c.Key, Instance: c.Instance, RegID: c.RegID, Q: c.Q, Params: c.Params,
			CallID: req.CallID, CSeq: req.CSeq, Expires: now.Add(life), Added: now,
			Flow: req.Flow, Path: req.Path, UserAgent: req.UserAgent,
		}
		switch {
		case i < 0:
			next = append(next, b)
			raise(Added)
		case next[i].CallID != req.CallID:
			next[i] = b
			raise(Fixed)
		default:
			b.Added = next[i].Added
			next[i] = b
			raise(Refreshed)
		}
	}
	if len(next) > pol.MaxEndpoints && len(next) > len(active) {
		return Result{Status: 403, Reason: "Maximum number of endpoints (" + strconv.Itoa(pol.MaxEndpoints) + ") reached for this user"}
	}
	return Result{Status: 200, Record: build(aor, next), Action: action}
}

func indexOf(bs []Binding, key string) int {
	for i := range bs {
		if bs[i].Key == key {
			return i
		}
	}
	return -1
}

func build(aor string, bs []Binding) *Record {
	if len(bs) == 0 {
		return nil
	}
	return &Record{AOR: aor, Bindings: bs}
}
