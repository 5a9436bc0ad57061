// Package registrar is the emulator's composition root: it turns a topology into running Front
// Ends (SIP registrars on loopback), front doors, one fabric per pool, the event log, metrics and
// the admin API, and implements the cmdlets.
//
// Concurrency: the control plane (starting, stopping and crashing Front Ends, fabric timers,
// resets) runs under one mutex and publishes an immutable snapshot after every change; the SIP
// path reads that snapshot without locking. Each Front End's registrations live in its own
// location.Store, which a crash replaces with an empty one.
//
// Lock order: a goroutine holding one of these takes only those below it, never one above.
//
//	pool.data       one per home pool: its users' Back End writes (SERVICE contact changes, the
//	                backup service's copies, the data sync of Invoke-CsPoolFailOver/FailBack)
//	Registrar.mu    the control plane
//	stripes[i]      one AOR's replication order (Register takes it without mu)
//	location.Store  its per-AOR locks (Update's callback only reads the snapshot)
//	backend.Store.mu, eventlog, metrics: leaves
//
// Nothing that can wait on something outside the process runs under mu on the SIP path: a
// contact change, a contact list read and the backup service call the Back End (SQLite) under
// pool.data only, so a locked or slow Back End fails those requests with ErrUnavailable after
// backend.BusyTimeout and stalls nothing else. Two Back End calls remain under mu, each bounded
// by backend.BusyTimeout per statement: the data sync of the failover and failback cmdlets
// (atomic with the state change they guard) and recording a disaster-recovery state change
// (saveDRLocked). Registration-notify batches are sent by their own goroutines.
package registrar

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/backend"
	"github.com/fepool/fepool/registrar/eventlog"
	"github.com/fepool/fepool/registrar/fabric"
	"github.com/fepool/fepool/registrar/frontend"
	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/metrics"
	"github.com/fepool/fepool/registrar/pairing"
	"github.com/fepool/fepool/registrar/sipauth"
	"github.com/fepool/fepool/registrar/topology"
)

// Config is the registrar's operator settings.
type Config struct {
	Topology *topology.Topology
	// AdminListen overrides the topology's admin address ("" keeps it; port 0 picks one).
	AdminListen string
	// AdminToken overrides the topology's token; when both are empty one is generated.
	AdminToken string
	// Trace logs every SIP message.
	Trace bool
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Topology == nil {
		return errors.New("registrar: no topology")
	}
	return nil
}

// Option injects a dependency.
type Option func(*Registrar)

// WithClock injects the clock that drives timers and binding expiry (tests).
func WithClock(c clockwork.Clock) Option { return func(r *Registrar) { r.clock = c } }

// WithLogger sets the logger (default: disabled).
func WithLogger(l zerolog.Logger) Option { return func(r *Registrar) { r.log = l } }

// Registrar runs a topology.
type Registrar struct {
	cfg     Config
	top     *topology.Topology
	clock   clockwork.Clock
	log     zerolog.Logger
	metrics *metrics.Metrics
	events  *eventlog.Log
	auth    *sipauth.Authenticator
	tls     *tls.Config
	token   string
	admin   *admin.Server
	adminAt net.Addr

	mu     sync.Mutex // the control plane
	pools  []*pool
	fes    map[*topology.FrontEnd]*fe
	doors  []*frontend.FrontDoor
	closed bool
	// started: every pool was started once (heartbeats count from then).
	started bool

	// cut holds the heartbeat links cut by a partition, keyed by the pools' indexes (low first).
	cut map[[2]int]bool

	// stripes order each AOR's replication (Register, and users moved between pools).
	stripes    [256]sync.Mutex
	stripeSeed maphash.Seed

	snap    atomic.Pointer[snapshot]
	version uint64 // of the last snapshot published (under mu)
	bg      sync.WaitGroup
	stop    chan struct{}
	// syncKick asks the backup service goroutine for a pass (capacity 1: kicks coalesce).
	syncKick chan struct{}
	// notifying ends in-flight registration-notify batches at Close.
	notifyCtx    context.Context
	notifyCancel context.CancelFunc
}

type pool struct {
	top    *topology.Pool
	fabric *fabric.Pool
	fes    []*fe
	timer  clockwork.Timer
	last   *fabric.Snapshot // placement the stores were last reconciled to

	// data orders the Back End writes of this pool's users' data (contact changes, the backup
	// service's copies, the data sync of a failover or failback), which run outside mu; it is
	// taken before mu, never while holding it.
	data   dataLock
	be     *backend.Store
	backup *pool // nil when the pool has none
	// pair is this pool's users' disaster-recovery state, as its backup pool sees it (nil
	// without a backup pool); drTimer fires at its next deadline.
	pair    *pairing.Pair
	drTimer clockwork.Timer
	// unsynced is when a contact change of this pool's users last failed to reach the other
	// pool's Back End (zero when both hold the same): the backup service retries each heartbeat.
	unsynced time.Time
	// survivable is set once the Back End outage outlasted the survivable-mode threshold.
	survivable bool
	// toMove lists the users a failback still has to move home (in order).
	toMove []string
}

// dataLock is a mutex whose waiters can give up: a SIP request waiting for the Back End writes
// of other requests ahead of it (each bounded by backend.OpTimeout) must not queue for ever
// behind a locked Back End.
type dataLock chan struct{}

func (l dataLock) lock()   { l <- struct{}{} }
func (l dataLock) unlock() { <-l }

// lockWithin takes the lock unless d passes first.
func (l dataLock) lockWithin(d time.Duration) bool {
	select {
	case l <- struct{}{}: // uncontended: no timer
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

type fe struct {
	top   *topology.FrontEnd
	pool  *pool
	sip   *frontend.FrontEnd
	store atomic.Pointer[location.Store] // nil while down: a crash loses it
	// fresh: its store was made by the last start, after the placement its pool was last
	// reconciled to (pool.last), so it holds none of the routing groups that placement gives
	// it (a Front End that crashed and started again before the crash was detected).
	fresh bool
	// state: Stopped, Started (listeners up; "Starting" is derived from the pool) or Failed.
	state string
	since time.Time
}

// Front End states (Lync's service states).
const (
	StateStopped  = "Stopped"
	StateStarting = "Starting"
	StateStarted  = "Started"
	StateFailed   = "Failed"
)

// New builds a registrar without binding anything.
func New(cfg Config, opts ...Option) (*Registrar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Registrar{
		cfg:        cfg,
		top:        cfg.Topology,
		clock:      clockwork.NewRealClock(),
		log:        zerolog.Nop(),
		metrics:    metrics.New(),
		fes:        map[*topology.FrontEnd]*fe{},
		cut:        map[[2]int]bool{},
		stripeSeed: maphash.MakeSeed(),
		stop:       make(chan struct{}),
		syncKick:   make(chan struct{}, 1),
	}
	r.notifyCtx, r.notifyCancel = context.WithCancel(context.Background())
	for _, o := range opts {
		o(r)
	}
	r.events = eventlog.New(r.log, r.clock, 10000)
	sip.UDPMTUSize = 65535 // a 200 OK listing 8 endpoints exceeds sipgo's 1500-byte UDP default
	var err error
	r.auth, err = sipauth.New(sipauth.Config{
		Realm: r.top.Realm, Algorithms: r.top.SIP.DigestAlgorithms, NonceLifetime: r.top.SIP.NonceLifetime,
		RevealUnknownUsers: r.top.SIP.RevealUnknownUsers,
		LocalHost:          r.top.NamesEmulator,
	}, sipauth.WithClock(r.clock))
	if err != nil {
		return nil, err
	}
	r.tls, err = tlsConfig(r.top)
	if err != nil {
		return nil, err
	}
	r.token = cfg.AdminToken
	if r.token == "" {
		r.token = r.top.Admin.Token
	}
	if r.token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		r.token = hex.EncodeToString(b)
	}
	opt := frontend.Options{
		Log: r.log, Metrics: r.metrics, TLS: r.tls, ClientTLS: internalTLS(r.tls), Limits: r.top.SIP.Limits,
		RetryAfter: r.top.SIP.RetryAfter, IdleTimeout: r.top.SIP.TCPIdleTimeout,
		Server: r.top.ServerHeader, Trace: cfg.Trace, Internal: r.top.Addresses(),
	}
	for _, tp := range r.top.Pools {
		p := &pool{top: tp, data: make(dataLock, 1), fabric: fabric.New(fabric.Config{
			FrontEnds: len(tp.FrontEnds), RoutingGroups: tp.RoutingGroups,
			FailureDetection: r.top.Fabric.FailureDetection, QuorumLossShutdown: r.top.Fabric.QuorumLossShutdown,
		})}
		for _, tfe := range tp.FrontEnds {
			f := &fe{top: tfe, pool: p, state: StateStopped, since: r.clock.Now()}
			f.sip = frontend.NewFrontEnd(frontend.FrontEndConfig{FrontEnd: tfe, Cluster: r, Auth: r.auth, KeepAliveTimeout: r.top.SIP.KeepAliveTimeout}, opt)
			p.fes = append(p.fes, f)
			r.fes[tfe] = f
		}
		p.last = p.fabric.Snapshot()
		r.pools = append(r.pools, p)
		if tp.FrontDoor != nil {
			upstream := tp.FrontEndAddresses()
			if b := r.top.BackupOf(tp); b != nil {
				upstream = append(upstream, b.FrontEndAddresses()...)
			}
			r.doors = append(r.doors, frontend.NewFrontDoor(frontend.FrontDoorConfig{FrontDoor: tp.FrontDoor, Cluster: r, Auth: r.auth, Upstream: upstream}, opt))
		}
	}
	if err := r.setUpPairs(); err != nil {
		return nil, err
	}
	r.metrics.Registry.MustRegister(&collector{r: r})
	r.publish()
	r.admin = admin.NewServer(r, r.token, r.log)
	return r, nil
}

// Token returns the admin API bearer token.
func (r *Registrar) Token() string { return r.token }

// AdminAddr returns the admin API's bound address (after Start).
func (r *Registrar) AdminAddr() net.Addr { return r.adminAt }

// Start binds the admin API, the front doors and every Front End, and starts each pool (its
// Front Ends come up together, so the cold-start rule is met at once).
func (r *Registrar) Start() error {
	listen := r.cfg.AdminListen
	if listen == "" {
		listen = r.top.Admin.Listen
	}
	at, err := r.admin.Listen(listen)
	if err != nil {
		return err
	}
	r.adminAt = at
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		if err := r.admin.Serve(); err != nil {
			r.log.Error().Err(err).Msg("admin API stopped")
		}
	}()
	for _, d := range r.doors {
		if err := d.Start(); err != nil {
			r.Close()
			return err
		}
	}
	r.mu.Lock()
	for _, p := range r.pools {
		var up []int
		for i, f := range p.fes {
			if err := r.bindLocked(f); err != nil {
				r.mu.Unlock()
				r.Close()
				return err
			}
			up = append(up, i)
		}
		r.fabricLocked(p, func(now time.Time) ([]fabric.Event, error) { return p.fabric.Start(now, up...) })
	}
	r.started = true
	r.startPairsLocked()
	r.mu.Unlock()
	r.bg.Add(1)
	go r.housekeeping()
	r.log.Info().Str("admin", at.String()).Int("pools", len(r.pools)).Int("frontEnds", len(r.fes)).Int("users", r.top.Users.Count()).Msg("fepool registrar ready")
	return nil
}

// Run starts the registrar and serves until ctx is cancelled, then shuts down.
func (r *Registrar) Run(ctx context.Context) error {
	if err := r.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	r.Close()
	return nil
}

// Close stops everything and waits for it; it is idempotent.
func (r *Registrar) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.stop)
	r.notifyCancel()
	for _, p := range r.pools {
		if p.timer != nil {
			p.timer.Stop()
		}
		if p.drTimer != nil {
			p.drTimer.Stop()
		}
	}
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = r.admin.Shutdown(ctx)
	for _, d := range r.doors {
		d.Stop()
	}
	for _, p := range r.pools {
		for _, f := range p.fes {
			f.sip.Stop(false)
		}
	}
	r.bg.Wait()
	r.mu.Lock()
	r.closeBackEnds()
	r.mu.Unlock()
	r.log.Info().Msg("fepool registrar stopped")
}

// housekeeping sweeps expired bindings and old nonces.
func (r *Registrar) housekeeping() {
	defer r.bg.Done()
	t := r.clock.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.Chan():
			now := r.clock.Now()
			for _, f := range r.fes {
				if s := f.store.Load(); s != nil {
					s.Sweep(now)
				}
			}
			r.auth.Sweep()
		}
	}
}

// Events returns the event log.
func (r *Registrar) Events() *eventlog.Log { return r.events }

// Metrics returns the Prometheus registry.
func (r *Registrar) Metrics() *metrics.Metrics { return r.metrics }

// Now implements frontend.Cluster.
func (r *Registrar) Now() time.Time { return r.clock.Now() }

// Lookup implements frontend.Cluster.
func (r *Registrar) Lookup(aor string) (topology.User, bool) { return r.top.LookupUser(aor) }

var errClosed = fmt.Errorf("%w: registrar is shutting down", admin.ErrConflict)
