package frontend

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/stun/v2"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/fepool/fepool/registrar/metrics"
	"github.com/fepool/fepool/registrar/topology"
)

// Options are the settings every listener set shares.
type Options struct {
	Log     zerolog.Logger
	Metrics *metrics.Metrics
	TLS     *tls.Config // nil: TLS ports are not served
	// ClientTLS is the config of TLS connections this endpoint opens (a front door proxying to
	// a Front End, a NOTIFY back through a front door): the emulator's own hops.
	ClientTLS  *tls.Config
	Limits     topology.Limits
	RetryAfter time.Duration
	// IdleTimeout closes a TCP/TLS connection that sent nothing for this long (0: never).
	IdleTimeout time.Duration
	Server      string // Server header
	// Trace logs every SIP message (sipgo's wire tracing) at debug level.
	Trace bool
	// Internal are the addresses of the emulator's own listeners (Front Ends and front doors):
	// the per-source rate and connection limits never apply to them, since a front door carries
	// every client's traffic to the Front Ends.
	Internal []netip.Addr
}

// handler serves one request and returns its final response (nil: none, as for ACK).
type handler = func(req *sip.Request) *sip.Response

// endpoint is one listener set: the sockets of a Front End or front door and the sipgo stack
// serving them. It can be started, stopped and started again on the same ports.
type endpoint struct {
	name     string
	addr     netip.Addr
	ports    topology.Ports // after the first start: the ports actually bound
	opts     Options
	m        *metrics.Listener
	log      zerolog.Logger
	handlers map[sip.RequestMethod]handler
	// inline lists the methods served on the UDP read loop itself (see serveInline): those whose
	// handler never blocks.
	inline map[sip.RequestMethod]bool
	parser *sip.Parser
	// internal holds Options.Internal: sources exempt from the per-source limits.
	internal map[netip.Addr]bool

	mu       sync.Mutex
	running  bool
	socks    *sockets
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	client   *sipgo.Client
	serving  sync.WaitGroup // listener goroutines
	inflight sync.WaitGroup // handlers
	slots    chan struct{}
	limiter  *sourceLimiter
	retrans  *retransCache
	quit     chan struct{} // closed at stop: ends the cache's expiry ticker
	panics   panicSampler
}

func newEndpoint(name string, addr netip.Addr, ports topology.Ports, opts Options, component string) *endpoint {
	e := &endpoint{
		name:     name,
		addr:     addr,
		ports:    ports,
		opts:     opts,
		m:        opts.Metrics.Listener(name),
		log:      opts.Log.With().Str("component", component).Str("listener", name).Logger(),
		handlers: map[sip.RequestMethod]handler{},
		inline:   map[sip.RequestMethod]bool{},
		parser:   sip.NewParser(),
		internal: map[netip.Addr]bool{},
	}
	for _, a := range opts.Internal {
		e.internal[a.Unmap()] = true
	}
	if opts.TLS == nil {
		e.ports.TLS = 0
	}
	return e
}

// ErrRunning is returned when starting a started listener set.
var ErrRunning = errors.New("already running")

// start binds the sockets and serves them.
func (e *endpoint) start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running {
		return ErrRunning
	}
	acceptLog := e.log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	socks, err := bind(e.addr, e.ports, connLimits{
		perIP: e.opts.Limits.MaxConnsPerIP, exempt: e.internal, gauge: e.m.Conns, dropped: e.m.Dropped,
		acceptFailed: func(transport string, err error, pause time.Duration) {
			acceptLog.Warn().Err(err).Str("transport", transport).Str("retryIn", pause.String()).Msg("accepting a connection failed; retrying (logged at most every 10s)")
		},
	})
	if err != nil {
		return err
	}
	e.ports = socks.addrs.Ports() // a restart rebinds the same ports
	slog := newSipgoLogger(e.log.With().Str("component", "sipgo").Logger(), e.opts.Trace, e.m.Parse.Inc)
	if e.opts.Limits.PerSourceRate > 0 {
		e.limiter = newSourceLimiter(e.opts.Limits.PerSourceRate)
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(e.opts.Server),
		sipgo.WithUserAgentHostname(e.addr.String()),
		sipgo.WithUserAgenTLSConfig(e.opts.ClientTLS),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(slog),
			sip.WithTransportLayerReadFilter(e.readFilter(socks.udp)),
		),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(slog),
			// a response retransmitted after its proxied transaction ended: sipgo's default logs
			// it through the process-wide slog logger, at info, unbridged
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				e.log.Debug().Int("code", r.StatusCode).Str("from", r.Source()).Msg("response to no transaction (a retransmission): dropped")
			})),
	)
	if err != nil {
		socks.close(false)
		return fmt.Errorf("%s: sip stack: %w", e.name, err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog))
	if err != nil {
		ua.Close()
		socks.close(false)
		return fmt.Errorf("%s: sip server: %w", e.name, err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(e.addr.String()), sipgo.WithClientLogger(slog))
	if err != nil {
		ua.Close()
		socks.close(false)
		return fmt.Errorf("%s: sip client: %w", e.name, err)
	}
	e.slots = make(chan struct{}, max(1, e.opts.Limits.MaxInFlight))
	e.retrans = newRetransCache()
	e.quit = make(chan struct{})
	e.serving.Add(1)
	go func(c *retransCache, quit <-chan struct{}) {
		defer e.serving.Done()
		t := time.NewTicker(c.span / 4)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				c.expire()
			}
		}
	}(e.retrans, e.quit)
	for method, h := range e.handlers {
		srv.OnRequest(method, e.wrap(socks.udp, h))
	}
	srv.OnNoRoute(e.wrap(socks.udp, e.noRoute))
	e.socks, e.ua, e.srv, e.client, e.running = socks, ua, srv, client, true

	serve := func(what string, f func() error) {
		e.serving.Add(1)
		go func() {
			defer e.serving.Done()
			if err := f(); err != nil && !errors.Is(err, net.ErrClosed) {
				e.log.Warn().Err(err).Str("transport", what).Msg("listener stopped")
			}
		}()
	}
	if socks.udp != nil {
		// sipgo parses on its read loop; one loop tops out near 10k messages/s, so run one per
		// CPU on the same socket (concurrent reads and writes of a UDP socket are safe).
		for range udpReaders() {
			serve("udp", func() error { return srv.ServeUDP(socks.udp) })
		}
	}
	limits := streamLimits{idle: e.opts.IdleTimeout, message: e.opts.Limits.MessageTimeout, expired: e.m.Dropped, refused: e.m.Refused}
	if socks.tcp != nil {
		serve("tcp", func() error { return srv.ServeTCP(streams(socks.tcp, nil, limits)) })
	}
	if socks.tls != nil {
		serve("tls", func() error { return srv.ServeTLS(streams(socks.tls, e.opts.TLS, limits)) })
	}
	e.log.Debug().Str("udp", fmtAddr(socks.addrs.UDP)).Str("tcp", fmtAddr(socks.addrs.TCP)).Str("tls", fmtAddr(socks.addrs.TLS)).Msg("listening")
	return nil
}

// udpReaders is how many sipgo read loops serve one UDP socket.
func udpReaders() int { return max(1, min(runtime.GOMAXPROCS(0), 8)) }

func fmtAddr(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

// stop closes the listeners and every connection (RST when abrupt), ends the SIP stack and waits
// for its goroutines and in-flight handlers.
func (e *endpoint) stop(abrupt bool) {
	e.mu.Lock()
	if !e.running {
		e.mu.Unlock()
		return
	}
	e.running = false
	socks, ua := e.socks, e.ua
	e.mu.Unlock()

	socks.close(abrupt)
	close(e.quit)
	e.serving.Wait()
	done := make(chan struct{})
	go func() { e.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		e.log.Warn().Msg("handlers still running 5s after stop")
	}
	ua.Close()
}

// deadListeners returns the transports whose listener stopped accepting for good while running.
func (e *endpoint) deadListeners() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	if e.socks != nil && e.running {
		for _, l := range []*trackedListener{e.socks.tcp, e.socks.tls} {
			if l != nil && l.dead.Load() {
				out = append(out, l.transport)
			}
		}
	}
	return out
}

// addrs returns the bound addresses (zero when stopped).
func (e *endpoint) addrs() Addrs {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.socks == nil || !e.running {
		return Addrs{}
	}
	return e.socks.addrs
}

// boundPorts returns the ports bound at the last start (the configured ones before that).
func (e *endpoint) boundPorts() topology.Ports {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ports
}

// sipClient returns the running stack's client, or nil.
func (e *endpoint) sipClient() *sipgo.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running {
		return nil
	}
	return e.client
}

// fromSelf makes a request this endpoint sends leave from its own address: over UDP from its
// listening socket, over TCP and TLS from a connection bound to its IP. Left to itself sipgo
// opens an upstream socket on 0.0.0.0, and serves whatever that socket then receives from
// any interface.
func (e *endpoint) fromSelf(req *sip.Request) {
	ip := e.addr.AsSlice()
	req.Laddr = sip.Addr{IP: ip}
	if req.Transport() == "UDP" {
		if a := e.addrs().UDP; a.IsValid() {
			req.Laddr.Port = int(a.Port())
		}
	}
}

// wrap adds to a handler what every request needs: counting, the in-flight bound (503 beyond
// it), panic containment, the latency of REGISTER, and, over UDP, answering retransmissions from
// the retransmission cache so that a transaction ends as soon as its final response is sent.
func (e *endpoint) wrap(udp *net.UDPConn, h handler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		e.m.Request(string(req.Method))
		key, keyed := "", false
		if udp != nil && req.Transport() == "UDP" && !req.IsInvite() && !req.IsAck() {
			key, keyed = txKey(req)
		}
		if keyed {
			if cr, ok := e.retrans.get(key); ok {
				e.m.Retransmission.Inc()
				if cr.data != nil {
					_ = cr.resend(udp)
				}
				tx.Terminate()
				return
			}
		}
		select {
		case e.slots <- struct{}{}:
		default:
			e.m.Dropped("overload")
			if !req.IsAck() {
				res := e.response(req, 503, "Service Unavailable")
				res.AppendHeader(sip.NewHeader("Retry-After", fmt.Sprint(int(e.opts.RetryAfter/time.Second))))
				_ = tx.Respond(res)
			}
			return
		}
		e.inflight.Add(1)
		defer func() {
			<-e.slots
			e.inflight.Done()
		}()
		start := time.Now()
		res := e.serve(req, h)
		if res == nil {
			return
		}
		if keyed && res.StatusCode >= 200 {
			// A final response over UDP goes out statelessly: serialised once, written, kept
			// for retransmissions, and the transaction ends now instead of after Timer J.
			cr, err := e.retrans.put(key, res)
			if err == nil {
				err = cr.resend(udp)
			}
			if err != nil {
				e.log.Debug().Err(err).Str("method", string(req.Method)).Msg("sending the response failed")
			}
			tx.Terminate()
		} else if err := tx.Respond(res); err != nil {
			e.log.Debug().Err(err).Str("method", string(req.Method)).Msg("sending the response failed")
		}
		if req.Method == sip.REGISTER {
			e.m.Response(res.StatusCode)
			e.m.Latency.Observe(time.Since(start).Seconds())
		}
	}
}

// serve answers a request: the sanity checks, then h.
func (e *endpoint) serve(req *sip.Request, h handler) *sip.Response {
	if res, ok := e.sanity(req); !ok {
		return res
	}
	return e.safely(req, h)
}

// safely runs h, turning a panic into a 500. Every panic is counted; its stack is logged for
// the first one and then at most once a minute, with how many were not logged meanwhile: a
// request that makes a handler panic can be sent in a flood (a nonce flood once wrote 172 MB
// of stacks in 10 s).
func (e *endpoint) safely(req *sip.Request, h handler) (res *sip.Response) {
	defer func() {
		if r := recover(); r != nil {
			e.m.Panic.Inc()
			if unlogged, ok := e.panics.log(time.Now()); ok {
				e.log.Error().Interface("panic", r).Str("method", string(req.Method)).Int("notLoggedSince", unlogged).
					Bytes("stack", debug.Stack()).Msg("handler panicked; answered 500 (logged at most once a minute; all are counted in fepool_handler_panics_total)")
			}
			res = e.response(req, 500, "Server Internal Error")
		}
	}()
	return h(req)
}

// panicSampler lets one panic a minute be logged.
type panicSampler struct {
	mu       sync.Mutex
	last     time.Time
	unlogged int
}

// log reports whether a panic at now is logged, and how many were not since the last logged.
func (p *panicSampler) log(now time.Time) (unlogged int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.last.IsZero() && now.Sub(p.last) < time.Minute {
		p.unlogged++
		return 0, false
	}
	unlogged, p.unlogged, p.last = p.unlogged, 0, now
	return unlogged, true
}

// noRoute answers methods the listener does not serve: nothing for ACK, 405 for the rest.
func (e *endpoint) noRoute(req *sip.Request) *sip.Response {
	if req.IsAck() {
		return nil
	}
	res := e.response(req, 405, "Method Not Allowed")
	res.AppendHeader(sip.NewHeader("Allow", e.allow()))
	return res
}

// isMine reports whether a URI names one of this endpoint's listening addresses.
func (e *endpoint) isMine(u sip.Uri) bool {
	a := e.addrs()
	for _, ap := range []netip.AddrPort{a.UDP, a.TCP, a.TLS} {
		if ap.IsValid() && u.Host == ap.Addr().String() && (u.Port == 0 || u.Port == int(ap.Port())) {
			return true
		}
	}
	return false
}

func (e *endpoint) allow() string {
	methods := make([]string, 0, len(e.handlers))
	for m := range e.handlers {
		methods = append(methods, string(m))
	}
	slices.Sort(methods)
	return strings.Join(methods, ", ")
}

// response builds a response carrying the Server header, and adds received= to the top Via when
// the sent-by host is not the packet's source (RFC 3261 §18.2.1; sipgo only does it with rport).
func (e *endpoint) response(req *sip.Request, code int, reason string) *sip.Response {
	// sipgo tags the response's To with a UUID from crypto/rand, a getrandom syscall per
	// response; a tag on the request's To, for the duration of the call, is copied instead.
	if to := req.To(); to != nil && !to.Params.Has("tag") {
		to.Params.Add("tag", strconv.FormatUint(rand.Uint64(), 36))
		defer to.Params.Remove("tag")
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.SipVersion = "SIP/2.0" // sipgo copies the request's, even to answer 505
	res.AppendHeader(sip.NewHeader("Server", e.opts.Server))
	if via := res.Via(); via != nil && !via.Params.Has("received") {
		if host, _, err := net.SplitHostPort(req.Source()); err == nil && host != via.Host {
			via.Params.Add("received", host)
		}
	}
	return res
}

// readFilter sees every datagram and TCP read before sipgo parses it: it answers STUN Binding
// requests on the SIP UDP socket (RFC 5626 keep-alive), counts and drops CRLF keep-alives, and
// enforces the per-source rate limit on UDP.
func (e *endpoint) readFilter(udp *net.UDPConn) sip.TransportReadFilter {
	listener := ""
	if udp != nil {
		listener = udp.LocalAddr().String()
	}
	return func(p sip.TransportReadProps, data []byte) ([]byte, error) {
		// Only datagrams to the listening socket: sipgo also reads the sockets it opens to
		// send requests (a proxying front door's), whose answers are its own business.
		if p.Transport != "UDP" || p.LocalAddr == nil || p.LocalAddr.String() != listener {
			return data, nil
		}
		if len(bytes.Trim(data, "\r\n")) == 0 {
			e.m.CRLF.Inc()
			return nil, nil
		}
		if udp != nil && stun.IsMessage(data) {
			e.answerSTUN(udp, p, data)
			return nil, nil
		}
		ra, ok := p.RemoteAddr.(*net.UDPAddr)
		if !ok {
			return data, nil
		}
		if ip := ra.AddrPort().Addr().Unmap(); e.limiter != nil && !e.internal[ip] && !e.limiter.allow(ip) {
			e.m.Dropped("rate_limit")
			return nil, nil
		}
		if canonicalMethod(data) {
			e.m.Refused("method_case")
		}
		if e.serveInline(udp, ra, data) {
			return nil, nil
		}
		return data, nil
	}
}

// serveInline serves a request of an inline method (a Front End's REGISTER and OPTIONS)
// statelessly on the UDP read loop, as Kamailio's sl does: parse, handle, send the response and
// keep it for retransmissions. It skips what sipgo does per request (a goroutine, a server
// transaction and its state machine, serialising the response in its write path), which cost
// more than the registrar's own work. It returns false for anything else, which sipgo then
// handles: responses, other methods, requests without an RFC 3261 branch, unparsable data
// (sipgo counts it as a parse error).
func (e *endpoint) serveInline(udp *net.UDPConn, from *net.UDPAddr, data []byte) bool {
	sp := bytes.IndexByte(data, ' ')
	if sp <= 0 || bytes.HasPrefix(data, []byte("SIP/")) {
		return false
	}
	// Other methods go to sipgo, unless their body is cut short (which sipgo would drop).
	inline := e.inline[sip.RequestMethod(data[:sp])]
	if !inline && !bodyCut(data) {
		return false
	}
	start := time.Now()
	msg, malformed, ok := parseDatagram(e.parser, data)
	if !ok {
		return false
	}
	req, isReq := msg.(*sip.Request)
	if !isReq || req.Via() == nil || !inline && !malformed {
		return false
	}
	key, keyed := txKey(req)
	if !keyed {
		return false
	}
	req.SetTransport("UDP")
	req.SetSource(from.String())
	e.m.Request(string(req.Method))
	if cr, first := e.retrans.begin(key); !first {
		e.m.Retransmission.Inc()
		if cr.data != nil {
			_ = cr.resend(udp)
		}
		return true
	}
	var res *sip.Response
	if malformed {
		res = e.malformed(req, len(data))
	} else {
		res = e.serve(req, e.handlers[req.Method])
	}
	if res == nil {
		e.retrans.abandon(key)
		return true
	}
	res.SetDestination(responseDestination(req, from))
	cr, err := e.retrans.put(key, res)
	if err == nil {
		err = cr.resend(udp)
	}
	if err != nil {
		e.log.Debug().Err(err).Str("method", string(req.Method)).Msg("sending the response failed")
	}
	if req.Method == sip.REGISTER {
		e.m.Response(res.StatusCode)
		e.m.Latency.Observe(time.Since(start).Seconds())
	}
	return true
}

// parseDatagram parses a datagram. malformed reports headers that parse with a body that does
// not: one shorter than its Content-Length (RFC 3261 §18.3: a request SHOULD then get 400), or
// one beyond the parser's bound; the message (its headers) is returned all the same. ok is false
// for anything else that does not parse.
func parseDatagram(p *sip.Parser, data []byte) (msg sip.Message, malformed, ok bool) {
	msg, _, err := p.Parse(data, false)
	switch {
	case err == nil:
		return msg, false, true
	case msg != nil && (errors.Is(err, sip.ErrParseReadBodyIncomplete) || errors.Is(err, sip.ErrMessageTooLarge)):
		return msg, true, true
	}
	return nil, false, false
}

// malformed answers a datagram whose headers parse and whose body does not.
func (e *endpoint) malformed(req *sip.Request, size int) *sip.Response {
	if cl := req.ContentLength(); cl != nil && e.opts.Limits.MaxBodyBytes > 0 && int(*cl) > e.opts.Limits.MaxBodyBytes {
		e.m.Refused("body_too_large")
		return e.response(req, 413, "Request Entity Too Large")
	}
	if size >= int(sip.TransportBufferReadSize) { // the datagram did not fit the read buffer
		e.m.Refused("too_large")
		return e.response(req, 513, "Message Too Large")
	}
	e.m.Refused("malformed")
	return e.response(req, 400, "Bad Request: the body is shorter than its Content-Length")
}

// bodyCut reports whether a datagram ends inside its body (framed as a stream would be).
func bodyCut(data []byte) bool {
	var f framer
	f.feed(data)
	return f.state == inBody
}

// responseDestination is where a response to a UDP request goes (RFC 3261 §18.2.2, RFC 3581): the
// packet's source address, and its source port when the top Via asks for rport (or names no
// port), else the Via's port.
func responseDestination(req *sip.Request, from *net.UDPAddr) string {
	port := from.Port
	if via := req.Via(); via != nil && via.Port > 0 && !via.Params.Has("rport") {
		port = via.Port
	}
	return net.JoinHostPort(from.IP.String(), strconv.Itoa(port))
}

func (e *endpoint) answerSTUN(udp *net.UDPConn, p sip.TransportReadProps, data []byte) {
	req := &stun.Message{Raw: append([]byte(nil), data...)}
	if err := req.Decode(); err != nil || req.Type != stun.BindingRequest {
		e.m.Dropped("not_sip")
		return
	}
	ra, ok := p.RemoteAddr.(*net.UDPAddr)
	if !ok {
		return
	}
	res, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ra.IP, Port: ra.Port}, stun.Fingerprint)
	if err != nil {
		return
	}
	if _, err := udp.WriteTo(res.Raw, ra); err == nil {
		e.m.STUN.Inc()
	}
}

// sourceLimiter is a token bucket per source IP (not ip:port: a sender owns every port of its
// address), forgetting sources idle for a minute.
type sourceLimiter struct {
	perSec int
	mu     sync.Mutex
	m      map[netip.Addr]*sourceBucket
	swept  time.Time
}

type sourceBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newSourceLimiter(perSec int) *sourceLimiter {
	return &sourceLimiter{perSec: perSec, m: map[netip.Addr]*sourceBucket{}, swept: time.Now()}
}

func (s *sourceLimiter) allow(src netip.Addr) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.swept) > time.Minute {
		for k, b := range s.m {
			if now.Sub(b.seen) > time.Minute {
				delete(s.m, k)
			}
		}
		s.swept = now
	}
	b, ok := s.m[src]
	if !ok {
		b = &sourceBucket{lim: rate.NewLimiter(rate.Limit(s.perSec), s.perSec)}
		s.m[src] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}
