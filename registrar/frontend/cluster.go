// Package frontend is the SIP side of the emulator: one Front End (a registrar on its own loopback
// address, UDP/TCP/TLS, with STUN and CRLF keep-alives) and a pool's front door (redirecting or
// proxying REGISTERs to the user's current registrar). Both are built on sipgo.
//
// A Front End knows nothing of pools or routing groups by itself: it asks a Cluster, implemented
// by the registrar, who the user is, whether it serves them or who does, and hands it REGISTERs
// to apply and replicate. Layers report upward through that interface, never by importing up.
//
// Concurrency: sipgo calls handlers on their own goroutines; every type here is safe for
// concurrent use, and Start/Stop may be called from any goroutine.
package frontend

import (
	"net/netip"
	"time"

	"github.com/fepool/fepool/registrar/backend"
	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/topology"
)

// RouteKind is what a registrar does with a user's REGISTER.
type RouteKind int

const (
	// Serve: this Front End is the primary registrar of the user's routing group.
	Serve RouteKind = iota
	// Redirect: answer 301 with Targets (the user's registrar q=0.7, the backup pool's q=0.3).
	Redirect
	// Unavailable: answer 503 with Diag and Retry-After.
	Unavailable
	// Forward: a proxy-mode front door forwards the request to Targets[0].
	Forward
	// Drop: send no answer at all (a backup pool set to ignore users before its timer).
	Drop
)

// Target is a registrar a REGISTER is redirected or forwarded to.
type Target struct {
	FQDN      string
	Addr      netip.AddrPort
	Transport string // "udp", "tcp", "tls"
	Q         string // "0.7", "0.3", or "" when forwarding
}

// Diagnostic is an ms-diagnostics value: a Lync diagnostic ID and reason.
type Diagnostic struct {
	ID     int
	Reason string
}

// Lync diagnostic IDs the emulator uses (DESIGN §4).
var (
	DiagUserDoesNotExist       = Diagnostic{1003, "User does not exist"}
	DiagCannotRoute            = Diagnostic{1007, "Temporarily cannot route"}
	DiagUserNotFoundInPool     = Diagnostic{4006, "User not found in pool"}
	DiagCriticalAppsNotRunning = Diagnostic{5000, "Critical applications not running"}
	// Our choices: Lync's IDs for these are not public.
	DiagBeforeResiliencyTimer = Diagnostic{1007, "Temporarily cannot route: the home pool's registrar resiliency timer has not expired"}
	DiagResiliencyMode        = Diagnostic{1007, "User services unavailable: resiliency mode"}
	DiagBackEndUnavailable    = Diagnostic{1007, "User services unavailable: Back End unavailable (limited functionality)"}
)

// Route is a Cluster's decision for one REGISTER.
type Route struct {
	Kind RouteKind
	RG   location.RG // with Serve
	// Resiliency, with Serve: the user gets resiliency mode (a backup pool, a failback, a Back
	// End outage past its threshold): presence-State says so and persistent changes fail.
	Resiliency bool
	Targets    []Target   // with Redirect and Forward
	Diag       Diagnostic // with Unavailable
	// Code is the Unavailable status (503 unless set, such as 480), RetryAfter its
	// Retry-After (the configured default unless set).
	Code       int
	RetryAfter time.Duration
	// Version identifies the cluster state the decision was made in: Register refuses it
	// once the state has changed, and the Front End routes again.
	Version uint64
	// NeedsBinding, with Serve: the user is served here only because they are registered here
	// (a failback has not moved them yet); Register refuses it when the registration is gone.
	NeedsBinding bool
}

// Cluster is what Front Ends and front doors ask of the registrar.
type Cluster interface {
	// Now is the emulator's clock.
	Now() time.Time
	// Lookup finds a user by normalised AOR.
	Lookup(aor string) (topology.User, bool)
	// Route decides what Front End self does with a REGISTER of u arriving over transport.
	Route(self *topology.FrontEnd, u topology.User, transport string) Route
	// FrontDoorRoute decides where a front door sends a REGISTER for aor (the user may be
	// unknown: a proxy then forwards to a Front End that will challenge and refuse).
	FrontDoorRoute(fd *topology.FrontDoor, aor string, transport string) Route
	// Register applies a REGISTER on self, which route (a Serve decision) found to be the
	// RG's primary, and replicates the result to the RG's secondaries. ok is false when the
	// cluster changed since the decision (another primary, another pool, another mode): the
	// caller routes again.
	Register(self *topology.FrontEnd, route Route, aor string, req location.Request) (res location.Result, ok bool)
	// Serving reports whether the Front End's services run (for OPTIONS), and why not.
	Serving(self *topology.FrontEnd) (bool, Diagnostic)
	// ChangeContacts applies a persistent change to the user's contact list in the Back End
	// of the pool that gives the user services (ErrUnavailable-wrapped errors when it is down).
	ChangeContacts(u topology.User, set []backend.Contact, remove []string) error
}
