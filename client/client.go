// Package client is a Lync-class SIP client: it signs in to a server list or a pool (following
// 301/302 in q order and answering digest challenges), stays signed in (refreshes before
// expiry, keeps its flow alive, knows regular from resiliency mode), notices losing its
// registration (timeouts, transport errors, 503, a refresh answered "added" or "fixed", a
// registration-notify) and signs in again with exponential backoff and full jitter, trying the
// home registrar, then the backup it learned, then its server list.
//
// Every step is a typed Event with a monotonic timestamp, handed to a callback: this is what
// the load generator measures. A client is built on sipgo (messages; TCP and TLS transactions);
// by default it has its own UDP socket (the realistic case); clients of a Pool share a few (for
// very large populations). An idle registered client holds no goroutine of its own: timers
// wake it, and the process's pollers read its socket.
//
// Concurrency: a Client is safe for concurrent use. Its event callback runs on timer
// goroutines and on the goroutines that read sockets (a response's handling, and the next
// request, run where the response was read): it must return quickly, never block, and never
// Stop or Close a client (those wait for the work under way, which would wait for it).
package client

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/jonboulle/clockwork"
)

// Counter counts, safely for concurrent use.
type Counter = atomic.Int64

// Option injects a dependency.
type Option func(*Client)

// WithClock injects the clock for timers, backoff and event times (tests).
func WithClock(c clockwork.Clock) Option {
	return func(cl *Client) { cl.clock, cl.injectedClock = c, true }
}

// WithEvents sets the event callback (see Event).
func WithEvents(f func(Event)) Option { return func(cl *Client) { cl.onEvent = f } }

// WithPool makes the client share a socket of p instead of opening its own.
func WithPool(p *Pool) Option { return func(cl *Client) { cl.pool = p } }

// WithLogger sets the logger for sipgo's own messages (default: none).
func WithLogger(l *slog.Logger) Option { return func(cl *Client) { cl.logger = l } }

// Client is one SIP user agent registering one address of record.
type Client struct {
	cfg   Config
	clock clockwork.Clock
	// injectedClock: event times come from clock only, never from the kernel's stamps
	injectedClock bool
	onEvent       func(Event)
	pool          *Pool
	logger        *slog.Logger
	st            *stack
	user          string // the AOR's user part, also the Contact's
	domain        string
	tag           string // From tag
	// the UDP Contact URI and the Contact header value built on it, fixed with the socket
	udpContact, udpContactHeader string

	// lifecycle is held through Stop (and Close): a Start waits for it, so a sign-in never
	// begins while Stop waits for the work under way
	lifecycle sync.Mutex

	mu        sync.Mutex
	state     State
	mode      Mode
	since     time.Time
	running   bool // between Start and Stop
	closed    bool
	gen       uint64 // bumped by every change of plan; a stale timer or request sees it moved
	registrar Server
	home      Server
	backup    Server
	preferred Server // from a registration-notify's P-Preferred-Registrar
	callID    string
	cseq      uint32
	expires   time.Duration // granted
	regAt     time.Time     // when the current registration was made
	failures  int           // consecutive failed sign-ins, for the backoff
	auth      *authState
	timer     clockwork.Timer // refresh or retry
	ka        clockwork.Timer // keep-alive and flow check
	kaPending bool            // a UDP STUN keep-alive is unanswered
	kaForget  func()
	pingAt    time.Time // when the last TCP/TLS ping was sent
	inflight  sync.WaitGroup
}

// authState is the challenge a client answers preemptively on later requests to the server
// that issued it, with the nonce count going up.
type authState struct {
	server Server
	chal   *digest.Challenge
	nc     int
	proxy  bool // from a 407: the credentials go in Proxy-Authorization
}

// New returns a signed-out client; Start signs it in.
func New(cfg Config, opts ...Option) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, clock: clockwork.NewRealClock(), logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(c)
	}
	var u sip.Uri
	_ = sip.ParseUri(cfg.AOR, &u)
	c.user, c.domain = u.User, u.Host
	c.tag = sip.GenerateTagN(10)
	c.since = c.clock.Now()
	if c.pool != nil {
		c.st = c.pool.pick(c.user)
	} else {
		st, err := newStack(cfg.LocalIP, cfg.TLS, c.logger)
		if err != nil {
			return nil, err
		}
		c.st = st
	}
	c.udpContact = "sip:" + c.user + "@" + c.st.local.String() + ";transport=udp"
	c.udpContactHeader = contactHeader(c.udpContact, cfg.InstanceID)
	if err := c.st.add(c.user, c); err != nil {
		if c.pool == nil {
			c.st.close()
		}
		return nil, err
	}
	return c, nil
}

// Status returns a snapshot of the client.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{State: c.state, Mode: c.mode, Registrar: c.registrar, Since: c.since, Home: c.home, Backup: c.backup, Contact: c.contactURI(c.registrar)}
}

// Start begins signing in and keeps the client signed in until Stop or Close.
func (c *Client) Start() error {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.running {
		return nil
	}
	c.running = true
	c.failures = 0
	c.beginSignInLocked(0, true, "start")
	return nil
}

// Stop signs out (an un-REGISTER to the registrar, bounded by ctx) and stops trying; Start may
// be called again.
func (c *Client) Stop(ctx context.Context) error {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	return c.stop(ctx)
}

func (c *Client) stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return nil
	}
	c.running = false
	c.gen++
	c.stopTimersLocked()
	registered, registrar := c.state == Registered, c.registrar
	c.setStateLocked(SignedOut)
	c.mu.Unlock()
	c.inflight.Wait()
	var err error
	if registered {
		err = c.unregister(ctx, registrar)
	}
	c.emit(Event{Kind: SignedOutEvent, Server: registrar, Reason: "signed out"})
	return err
}

// Close stops the client (signing out, bounded by a few seconds) and releases its socket.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.lifecycle.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := c.stop(ctx)
	cancel()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.lifecycle.Unlock()
	c.st.remove(c.user)
	if c.pool == nil {
		c.st.close()
	}
	return err
}

func (c *Client) emit(e Event) {
	if c.onEvent == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = c.clock.Now()
	}
	c.onEvent(e)
}

func (c *Client) setStateLocked(s State) {
	if c.state != s {
		c.state, c.since = s, c.clock.Now()
	}
}

func (c *Client) stopTimersLocked() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.ka != nil {
		c.ka.Stop()
		c.ka = nil
	}
	if c.kaForget != nil {
		c.kaForget()
		c.kaForget = nil
	}
	c.kaPending = false
}

// after runs f after d unless the plan changed meanwhile (gen moved) or the client stopped.
func (c *Client) afterLocked(d time.Duration, f func(gen uint64)) clockwork.Timer {
	gen := c.gen
	return c.clock.AfterFunc(d, func() {
		c.mu.Lock()
		ok := c.running && c.gen == gen
		if ok {
			c.inflight.Add(1)
		}
		c.mu.Unlock()
		if ok {
			background.run(func() {
				defer c.inflight.Done()
				f(gen)
			})
		}
	})
}

// beginSignInLocked schedules a sign-in after delay; fresh starts a new registration (new
// Call-ID) rather than continuing the current one.
func (c *Client) beginSignInLocked(delay time.Duration, fresh bool, why string) {
	c.gen++
	c.stopTimersLocked()
	c.setStateLocked(SigningIn)
	c.timer = c.afterLocked(delay, func(gen uint64) { c.signIn(gen, fresh) })
}

// current reports whether gen is still the plan.
func (c *Client) current(gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running && c.gen == gen
}

// lost records the loss of the registration (or a failed sign-in) and plans the next sign-in.
// retryAfter, when set, is the server's Retry-After; final gives up.
func (c *Client) lost(gen uint64, server Server, reason string, retryAfter time.Duration, final bool) {
	c.mu.Lock()
	if gen != 0 && (c.gen != gen || !c.running) {
		c.mu.Unlock()
		return
	}
	now := c.clock.Now()
	// A registration that lasted less than a minute does not reset the backoff: flapping
	// (a NOTIFY storm, a registrar that drops every binding) stays paced.
	if c.state == Registered && now.Sub(c.regAt) >= time.Minute {
		c.failures = 0
	}
	c.failures++
	delay := c.cfg.Backoff.Delay(c.failures, rand.Float64())
	if retryAfter > 0 {
		delay = retryAfter + time.Duration(rand.Float64()*float64(c.cfg.Backoff.Min))
	}
	c.mode = Regular
	c.registrar = Server{}
	ev := Event{Kind: Lost, Server: server, Reason: reason, Backoff: delay, Final: final}
	if final {
		c.running = false
		c.gen++
		c.stopTimersLocked()
		c.setStateLocked(SignedOut)
	} else {
		c.beginSignInLocked(delay, true, reason)
	}
	c.mu.Unlock()
	c.emit(ev)
}

// contactURI is the client's Contact URI for a registrar (the socket or flow it uses).
func (c *Client) contactURI(r Server) string {
	if !r.Addr.IsValid() || r.Transport == UDP {
		return c.udpContact
	}
	return "sip:" + c.user + "@" + c.st.local.Addr().String() + ";transport=" + r.Transport + ";ob"
}

// targetsLocked lists where to sign in, in order: the preferred registrar (from a
// registration-notify), the home registrar, the backup registrar, then the configured servers.
func (c *Client) targetsLocked() []Server {
	var out []Server
	add := func(s Server) {
		if !s.Addr.IsValid() {
			return
		}
		for _, o := range out {
			if o.same(s) {
				return
			}
		}
		out = append(out, s)
	}
	add(c.preferred)
	add(c.home)
	add(c.backup)
	for _, s := range c.cfg.Servers {
		add(s)
	}
	return out
}
