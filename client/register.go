package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/fepool/fepool/registrar/sipauth"
)

// A sign-in or a refresh is a chain of callbacks, not a goroutine waiting for each answer: over
// UDP the next step runs where the response was read (a poller) as it arrives. A ramp of
// 20,000 clients otherwise held a goroutine per registration in flight, and paid for their
// stacks and their scanning by the collector.

// signInRun is one sign-in: the targets in order, following redirects, until one registers the
// client.
type signInRun struct {
	c       *Client
	gen     uint64
	targets []Server
	i       int // the target tried now
	attempt int
	hops    int
	visited map[Server]bool
	reason  string
	last    Server
}

// signIn starts a sign-in.
func (c *Client) signIn(gen uint64, fresh bool) {
	c.mu.Lock()
	if fresh || c.callID == "" {
		c.callID = sip.GenerateTagN(16) + "@" + c.cfg.LocalIP.String()
	}
	r := &signInRun{c: c, gen: gen, targets: c.targetsLocked(), visited: map[Server]bool{}, reason: "no server answered"}
	c.inflight.Add(1)
	c.mu.Unlock()
	r.next()
}

// finish ends the sign-in.
func (r *signInRun) finish() { r.c.inflight.Done() }

// next tries the first target not tried yet, or records the failed sign-in.
func (r *signInRun) next() {
	for ; r.i < len(r.targets); r.i++ {
		t := r.targets[r.i]
		if r.visited[t] {
			continue
		}
		r.visited[t] = true
		r.c.exchange(r.gen, t, &r.attempt, false, func(res *sip.Response, at time.Time, err error) { r.answered(t, res, at, err) })
		return
	}
	r.c.lost(r.gen, r.last, r.reason, 0, false)
	r.finish()
}

// answered decides on target t's final answer: registered, redirected, refused, or on to the
// next target.
func (r *signInRun) answered(t Server, res *sip.Response, at time.Time, err error) {
	c, gen := r.c, r.gen
	if !c.current(gen) {
		r.finish()
		return
	}
	r.last = t
	if err != nil {
		r.reason = err.Error()
		if errors.Is(err, errRefused) {
			c.lost(gen, t, r.reason, 0, true)
			r.finish()
			return
		}
		r.i++
		r.next()
		return
	}
	switch code := res.StatusCode; {
	case code >= 200 && code < 300:
		c.registered(gen, t, res, at, false)
		r.finish()
		return
	case code >= 300 && code < 400:
		r.hops++
		next, err := c.redirect(t, res)
		switch {
		case err != nil:
			r.reason = err.Error()
		case r.hops > c.cfg.MaxRedirects:
			r.reason = fmt.Sprintf("more than %d redirects", c.cfg.MaxRedirects)
			r.i = len(r.targets)
			r.next()
			return
		default:
			var unvisited []Server
			for _, n := range next {
				if !r.visited[n] {
					unvisited = append(unvisited, n)
				}
			}
			if len(unvisited) == 0 {
				r.reason = "redirect loop: every Contact was tried already"
			} else {
				r.targets = slices.Insert(r.targets, r.i+1, unvisited...)
			}
		}
	case code == 503:
		c.lost(gen, t, "503 "+res.Reason+diag(res), retryAfter(res), false)
		r.finish()
		return
	case code == 403 || code == 404:
		c.lost(gen, t, fmt.Sprintf("%d %s%s", code, res.Reason, diag(res)), 0, true)
		r.finish()
		return
	default:
		r.reason = fmt.Sprintf("%d %s%s", code, res.Reason, diag(res))
	}
	r.i++
	r.next()
}

var errRefused = errors.New("refused")

// exchangeRun is one REGISTER to a server, answering up to two digest challenges and one 423.
type exchangeRun struct {
	c          *Client
	gen        uint64
	t          Server
	attempt    *int // of the whole sign-in
	refresh    bool
	expires    time.Duration
	tries      int
	challenges int
	sent       time.Time
	done       func(*sip.Response, time.Time, error)
}

// exchange sends one REGISTER to t (a refresh when refresh is set), answering up to two digest
// challenges and one 423, and calls done with the final response that needs a decision and when
// it arrived, or the error.
func (c *Client) exchange(gen uint64, t Server, attempt *int, refresh bool, done func(*sip.Response, time.Time, error)) {
	c.mu.Lock()
	expires := c.cfg.Expires
	c.mu.Unlock()
	x := &exchangeRun{c: c, gen: gen, t: t, attempt: attempt, refresh: refresh, expires: expires, done: done}
	x.send()
}

// send sends the next REGISTER of the exchange. Opening a TCP or TLS flow blocks, so that is
// done on a worker, never on a poller.
func (x *exchangeRun) send() {
	if x.t.Transport != UDP {
		background.run(x.sendNow)
		return
	}
	x.sendNow()
}

func (x *exchangeRun) sendNow() {
	c := x.c
	if x.tries == 4 {
		x.done(nil, time.Time{}, fmt.Errorf("%s kept challenging", x.t))
		return
	}
	x.tries++
	if !c.current(x.gen) {
		x.done(nil, time.Time{}, ErrClosed)
		return
	}
	req, err := c.request(x.t, x.expires)
	if err != nil {
		x.done(nil, time.Time{}, err)
		return
	}
	*x.attempt++
	x.sent = c.clock.Now()
	c.emit(Event{Kind: AttemptSent, Time: x.sent, Server: x.t, Attempt: *x.attempt, Refresh: x.refresh})
	c.sendAsync(x.t, req, x.answered)
}

// answered takes a final response: a challenge or a 423 sends again, anything else ends the
// exchange.
func (x *exchangeRun) answered(res *sip.Response, got time.Time, err error) {
	c, t := x.c, x.t
	if err != nil {
		x.done(nil, time.Time{}, err)
		return
	}
	c.emit(Event{Kind: Response, Time: got, Server: t, Attempt: *x.attempt, Refresh: x.refresh, Code: res.StatusCode, RTT: got.Sub(x.sent)})
	switch res.StatusCode {
	case 401, 407:
		x.challenges++
		stale, err := c.challenged(t, res)
		c.emit(Event{Kind: Challenged, Server: t, Attempt: *x.attempt, Stale: stale})
		if err != nil {
			x.done(nil, time.Time{}, fmt.Errorf("%w: %v", errRefused, err))
			return
		}
		if x.challenges > 1 && !stale {
			x.done(nil, time.Time{}, fmt.Errorf("%w: %d %s: credentials rejected%s", errRefused, res.StatusCode, res.Reason, diag(res)))
			return
		}
	case 423:
		min, err := strconv.Atoi(headerValue(res, "Min-Expires"))
		if err != nil || time.Duration(min)*time.Second <= x.expires {
			x.done(res, got, nil)
			return
		}
		x.expires = time.Duration(min) * time.Second
	default:
		x.done(res, got, nil)
		return
	}
	x.send()
}

// request builds a REGISTER to t, with credentials when the client holds a challenge of t.
func (c *Client) request(t Server, expires time.Duration) (*sip.Request, error) {
	if err := loopbackOnly(t.Addr, c.cfg.AllowNonLoopback); err != nil {
		return nil, err
	}
	contact := c.udpContactHeader
	if t.Transport != UDP {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
		local, err := c.st.flowLocal(ctx, t)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", t, err)
		}
		contact = contactHeader("sip:"+c.user+"@"+local.String()+";transport="+t.Transport+";ob", c.cfg.InstanceID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cseq++
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: c.domain})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: c.user, Host: c.domain}}
	from.Params.Add("tag", c.tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: c.user, Host: c.domain}})
	callID := sip.CallIDHeader(c.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: c.cseq, MethodName: sip.REGISTER})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Contact", contact))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.AppendHeader(sip.NewHeader("Supported", "outbound, path, gruu"))
	req.AppendHeader(sip.NewHeader("User-Agent", c.cfg.UserAgent))
	c.authorizeLocked(t, req)
	req.SetTransport(strings.ToUpper(t.Transport))
	req.SetDestination(t.Addr.String())
	// what SetBody(nil) adds, without its lookup of a Content-Length first (an allocation)
	length := sip.ContentLengthHeader(0)
	req.AppendHeader(&length)
	return req, nil
}

// contactHeader is the Contact header value registering uri as the client's outbound flow.
func contactHeader(uri, instanceID string) string {
	return "<" + uri + `>;+sip.instance="` + instanceID + `";reg-id=1`
}

// authorizeLocked adds credentials to a request for t when the client holds a challenge of t
// (the nonce count goes up with each use).
func (c *Client) authorizeLocked(t Server, req *sip.Request) {
	a := c.auth
	if a == nil || !a.server.same(t) {
		return
	}
	a.nc++
	cred, err := digest.Digest(a.chal, digest.Options{Method: string(req.Method), URI: req.Recipient.String(), Username: c.cfg.Username, Password: c.cfg.Password, Count: a.nc})
	if err != nil {
		return
	}
	name := "Authorization"
	if a.proxy {
		name = "Proxy-Authorization"
	}
	req.AppendHeader(sip.NewHeader(name, sipauth.FormatCredentials(cred)))
}

// sendAsync runs one client transaction to t and calls done with its final response and when
// it arrived, or the error. The arrival is the kernel's stamp of the response's datagram over
// UDP (see arrival.go), else when the client got it; an injected clock is always asked instead:
// tests run on its time. Over UDP done runs on the goroutine that read the response (a poller)
// or on a timer's.
//
// abandon ends the transaction early: it reports whether it did (done will not run); false
// means done runs, or ran, anyway.
func (c *Client) sendAsync(t Server, req *sip.Request, done func(*sip.Response, time.Time, error)) (abandon func() bool) {
	finish := func(res *sip.Response, at time.Time, err error) {
		var se *sendError
		switch {
		case errors.Is(err, errNoAnswer):
			err = fmt.Errorf("%s: no answer within %s", t, c.cfg.RequestTimeout)
		case errors.As(err, &se):
			err = fmt.Errorf("send to %s: %w", t, se.err)
		case err != nil:
			err = fmt.Errorf("%s: %w", t, err)
		case at.IsZero() || c.injectedClock:
			at = c.clock.Now()
		}
		done(res, at, err)
	}
	if t.Transport == UDP {
		branch := c.st.transact(req, t.Addr, c.cfg.RequestTimeout, func(a udpAnswer) { finish(a.res, a.at, a.err) })
		return func() bool { return c.st.takeTx(branch) != nil }
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
	background.run(func() {
		defer cancel()
		res, err := c.st.transactStream(ctx, req)
		if errors.Is(err, context.DeadlineExceeded) {
			err = errNoAnswer
		}
		finish(res, time.Time{}, err)
	})
	return func() bool { cancel(); return false }
}

// sendError is a request that could not be sent.
type sendError struct{ err error }

func (e *sendError) Error() string { return "send: " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// send is sendAsync waited for, bounded by ctx as well.
func (c *Client) send(ctx context.Context, t Server, req *sip.Request) (*sip.Response, error) {
	type result struct {
		res *sip.Response
		err error
	}
	ch := make(chan result, 1)
	abandon := c.sendAsync(t, req, func(res *sip.Response, _ time.Time, err error) { ch <- result{res, err} })
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		// The transaction ends with the caller's patience: a request the caller was told
		// failed must not go on being retransmitted (and applied).
		if !abandon() {
			if r := <-ch; r.err == nil {
				return r.res, nil
			}
		}
		return nil, fmt.Errorf("%s: %w", t, ctx.Err())
	}
}

// challenged takes the challenge of a 401/407 (preferring SHA-256) for the next request.
func (c *Client) challenged(t Server, res *sip.Response) (stale bool, err error) {
	name := "WWW-Authenticate"
	if res.StatusCode == 407 {
		name = "Proxy-Authenticate"
	}
	var best *digest.Challenge
	for _, h := range res.GetHeaders(name) {
		ch, err := sipauth.ParseChallenge(h.Value())
		if err != nil || !digest.CanDigest(ch) {
			continue
		}
		alg := strings.ToUpper(ch.Algorithm)
		if alg != "" && alg != "MD5" && alg != "SHA-256" {
			continue
		}
		if best == nil || alg == "SHA-256" && strings.ToUpper(best.Algorithm) != "SHA-256" {
			best = ch
		}
	}
	if best == nil {
		return false, fmt.Errorf("%d without a usable digest challenge", res.StatusCode)
	}
	if c.cfg.Password == "" {
		return best.Stale, fmt.Errorf("%d: the server wants credentials and the client has no password", res.StatusCode)
	}
	c.mu.Lock()
	c.auth = &authState{server: t, chal: best, proxy: res.StatusCode == 407}
	c.mu.Unlock()
	return best.Stale, nil
}

// redirect reads the Contacts of a 3xx in q order and learns the home (first) and backup
// (second) registrars.
func (c *Client) redirect(from Server, res *sip.Response) ([]Server, error) {
	out, err := c.redirectTargets(from, res)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.home = out[0]
	if len(out) > 1 {
		c.backup = out[1]
	}
	c.mu.Unlock()
	c.emit(Event{Kind: Redirected, Server: from, Targets: out})
	return out, nil
}

// redirectTargets reads the usable Contacts of a 3xx in q order.
func (c *Client) redirectTargets(from Server, res *sip.Response) ([]Server, error) {
	type qServer struct {
		s Server
		q float64
	}
	var cs []qServer
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok || ch.Address.Host == "" {
			continue
		}
		tp, _ := ch.Address.UriParams.Get("transport")
		if tp == "" {
			tp = from.Transport
		}
		s, err := ParseServer(fmt.Sprintf("%s:%d;transport=%s", ch.Address.Host, portOr(ch.Address.Port, tp), tp), tp, nil)
		if err != nil {
			continue
		}
		if err := loopbackOnly(s.Addr, c.cfg.AllowNonLoopback); err != nil {
			c.emit(Event{Kind: Redirected, Server: from, Reason: err.Error()})
			continue
		}
		q := 1.0
		if v, ok := ch.Params.Get("q"); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		cs = append(cs, qServer{s, q})
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%d %s without a usable Contact", res.StatusCode, res.Reason)
	}
	slices.SortStableFunc(cs, func(a, b qServer) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	out := make([]Server, len(cs))
	for i, x := range cs {
		out[i] = x.s
	}
	return out, nil
}

func portOr(p int, transport string) int {
	if p > 0 {
		return p
	}
	if transport == TLS {
		return 5061
	}
	return 5060
}

// registered records a 200 OK that arrived at at: mode from presence-State, the granted
// expiry, and the timers. On a refresh, register-action "added" or "fixed" means the registrar
// had lost the binding.
func (c *Client) registered(gen uint64, t Server, res *sip.Response, at time.Time, refresh bool) {
	action, mode := presence(res)
	if refresh && (action == "added" || action == "fixed") {
		c.lost(gen, t, `refresh answered register-action="`+action+`": the registrar had lost the binding`, 0, false)
		return
	}
	expires := c.grantedExpires(res)
	c.mu.Lock()
	if c.gen != gen || !c.running {
		c.mu.Unlock()
		return
	}
	c.registrar, c.mode, c.expires = t, mode, expires
	if t.same(c.preferred) {
		c.preferred = Server{}
	}
	if !refresh {
		c.regAt = c.clock.Now()
	}
	c.setStateLocked(Registered)
	c.stopTimersLocked()
	share := c.cfg.Refresh - 0.05 + rand.Float64()*0.1
	c.timer = c.afterLocked(time.Duration(float64(expires)*share), c.refresh)
	c.armKeepAliveLocked(t)
	c.mu.Unlock()
	c.emit(Event{Kind: RegisteredEvent, Time: at, Server: t, Mode: mode, Expires: expires, Refresh: refresh})
}

// refresh renews the registration with the same Call-ID.
func (c *Client) refresh(gen uint64) {
	c.mu.Lock()
	t := c.registrar
	c.inflight.Add(1)
	c.mu.Unlock()
	attempt := 0
	c.exchange(gen, t, &attempt, true, func(res *sip.Response, at time.Time, err error) {
		defer c.inflight.Done()
		c.refreshed(gen, t, res, at, err)
	})
}

// refreshed decides on the final answer to a refresh.
func (c *Client) refreshed(gen uint64, t Server, res *sip.Response, at time.Time, err error) {
	if !c.current(gen) {
		return
	}
	switch {
	case err != nil:
		c.lost(gen, t, "refresh failed: "+err.Error(), 0, errors.Is(err, errRefused))
	case res.StatusCode >= 200 && res.StatusCode < 300:
		c.registered(gen, t, res, at, true)
	case res.StatusCode >= 300 && res.StatusCode < 400:
		// The registrar moved (the fabric promoted another Front End): follow it, keeping
		// the Call-ID so the new registrar sees a refresh of the binding it holds.
		if _, err := c.redirect(t, res); err != nil {
			c.lost(gen, t, "refresh redirected: "+err.Error(), 0, false)
			return
		}
		c.mu.Lock()
		if c.gen == gen {
			c.beginSignInLocked(0, false, "redirected")
		}
		c.mu.Unlock()
	case res.StatusCode == 503:
		c.lost(gen, t, "refresh answered 503 "+res.Reason+diag(res), retryAfter(res), false)
	default:
		c.lost(gen, t, fmt.Sprintf("refresh answered %d %s%s", res.StatusCode, res.Reason, diag(res)), 0, res.StatusCode == 403 || res.StatusCode == 404)
	}
}

// unregister removes the binding (Expires: 0), bounded by ctx.
func (c *Client) unregister(ctx context.Context, t Server) error {
	req, err := c.request(t, 0)
	if err != nil {
		return err
	}
	res, err := c.send(ctx, t, req)
	if err == nil && (res.StatusCode == 401 || res.StatusCode == 407) {
		if _, err = c.challenged(t, res); err == nil {
			var again *sip.Request
			if again, err = c.request(t, 0); err == nil {
				res, err = c.send(ctx, t, again)
			}
		}
	}
	if err == nil && res.StatusCode >= 300 {
		err = fmt.Errorf("un-REGISTER answered %d %s", res.StatusCode, res.Reason)
	}
	return err
}

// armKeepAliveLocked starts the keep-alive and flow-check timer for registrar t.
func (c *Client) armKeepAliveLocked(t Server) {
	every := c.cfg.KeepAlive
	if t.Transport != UDP && c.cfg.FlowCheck > 0 && (every <= 0 || c.cfg.FlowCheck < every) {
		every = c.cfg.FlowCheck
	}
	if every <= 0 {
		return
	}
	c.pingAt = c.clock.Now()
	if !c.injectedClock {
		every = onGrid(c.pingAt, every)
	}
	c.ka = c.afterLocked(every, func(gen uint64) { c.keepAlive(gen, t) })
}

// keepAliveGrid: keep-alives fire on this grid of the wall clock. A population's keep-alives
// then wake the process a few times a second in batches, not hundreds of times one by one (an
// idle 20,000-client population spent most of its CPU waking up).
const keepAliveGrid = 100 * time.Millisecond

// onGrid lengthens d (by less than keepAliveGrid) so that now+d falls on the grid.
func onGrid(now time.Time, d time.Duration) time.Duration {
	if rem := now.Add(d).UnixNano() % int64(keepAliveGrid); rem != 0 {
		d += keepAliveGrid - time.Duration(rem)
	}
	return d
}

// keepAlive checks the flow and sends the keep-alive that is due.
func (c *Client) keepAlive(gen uint64, t Server) {
	now := c.clock.Now()
	var fail string
	switch t.Transport {
	case UDP:
		c.mu.Lock()
		if c.kaPending {
			fail = "keep-alive unanswered: STUN Binding got no answer"
		}
		c.mu.Unlock()
		if fail == "" && c.cfg.KeepAlive > 0 {
			if c.cfg.UDPKeepAlive == "crlf" {
				_ = c.st.sendCRLF(t.Addr)
			} else {
				c.mu.Lock()
				c.kaPending = true
				c.mu.Unlock()
				forget, err := c.st.sendSTUN(t.Addr, func() {
					c.mu.Lock()
					c.kaPending = false
					c.mu.Unlock()
				})
				c.mu.Lock()
				c.kaForget = forget
				c.mu.Unlock()
				if err != nil {
					fail = "keep-alive: " + err.Error()
				}
			}
		}
	default:
		c.mu.Lock()
		pingAt := c.pingAt
		c.mu.Unlock()
		if !c.st.alive(t) {
			fail = "connection to the registrar closed"
		} else if c.cfg.KeepAlive > 0 && now.Sub(pingAt) >= c.cfg.KeepAlive {
			lastPong, err := c.st.ping(t)
			switch {
			case err != nil:
				fail = "keep-alive: " + err.Error()
			case !pingAt.IsZero() && lastPong.Before(pingAt.Add(-time.Second)) && now.Sub(pingAt) > c.cfg.KeepAlive:
				fail = "keep-alive unanswered: no CRLF pong"
			}
			c.mu.Lock()
			c.pingAt = now
			c.mu.Unlock()
		}
	}
	if fail != "" {
		c.lost(gen, t, fail, 0, false)
		return
	}
	c.mu.Lock()
	if c.gen == gen && c.running {
		c.armKeepAliveLocked(t)
	}
	c.mu.Unlock()
}

// onRequest answers a request from the registrar: OPTIONS, and NOTIFY/BENOTIFY of a
// registration-notify, which signs the client out (following P-Preferred-Registrar).
func (c *Client) onRequest(req *sip.Request) *sip.Response {
	switch req.Method {
	case sip.OPTIONS:
		c.emit(Event{Kind: Notified, Reason: "OPTIONS"})
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", "OPTIONS, NOTIFY, BENOTIFY"))
		return res
	case sip.NOTIFY, "BENOTIFY":
	default:
		return sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
	}
	var res *sip.Response
	if req.Method == sip.NOTIFY { // BENOTIFY is best effort: never answered
		res = sip.NewResponseFromRequest(req, 200, "OK", nil)
	}
	event := headerValueReq(req, "Event")
	if !strings.EqualFold(strings.TrimSpace(strings.SplitN(event, ";", 2)[0]), "registration-notify") {
		c.emit(Event{Kind: Notified, Reason: string(req.Method) + " " + event})
		return res
	}
	body := strings.TrimSpace(string(req.Body()))
	reason := body
	if reason == "" {
		reason = "registration-notify"
	}
	c.emit(Event{Kind: Notified, Reason: string(req.Method) + " registration-notify: " + reason})
	if !strings.HasPrefix(strings.ToLower(body), "deregistered") {
		return res
	}
	c.mu.Lock()
	if c.state != Registered || !c.running {
		c.mu.Unlock()
		return res // already signing in: a flood of NOTIFYs changes nothing
	}
	gen := c.gen
	if p := headerValueReq(req, "P-Preferred-Registrar"); p != "" {
		if s, err := ParseServer(strings.Trim(p, "<> "), c.registrar.Transport, nil); err == nil && loopbackOnly(s.Addr, c.cfg.AllowNonLoopback) == nil {
			c.preferred = s
		}
	}
	registrar := c.registrar
	c.mu.Unlock()
	c.lost(gen, registrar, "server signed the client out: "+reason, 0, false)
	return res
}

// presence reads register-action and the mode from a 200 OK's presence-State.
func presence(res *sip.Response) (action string, mode Mode) {
	v := headerValue(res, "presence-State")
	for _, p := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		val = strings.Trim(val, `"`)
		switch strings.ToLower(k) {
		case "register-action":
			action = strings.ToLower(val)
		case "is-connected-to-primary":
			if strings.EqualFold(val, "no") {
				mode = Resiliency
			}
		case "user-services-state":
			if strings.EqualFold(val, "unavailable") {
				mode = Resiliency
			}
		}
	}
	return action, mode
}

// grantedExpires finds the client's own Contact (by +sip.instance) in a 200 OK, else uses the
// Expires header, else what it asked for.
func (c *Client) grantedExpires(res *sip.Response) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		if inst, _ := ch.Params.Get("+sip.instance"); strings.Trim(inst, `"`) != c.cfg.InstanceID {
			continue
		}
		if v, ok := ch.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return granted(n)
			}
		}
	}
	if n, err := strconv.Atoi(headerValue(res, "Expires")); err == nil && n > 0 {
		return granted(n)
	}
	return c.cfg.Expires
}

// maxGranted bounds the registration time a registrar grants: a day is more than any grants
// (Lync clamps to 900 s), and a huge Expires would overflow a time.Duration into a negative
// one, refreshing at once, forever.
const maxGranted = 24 * time.Hour

// granted is a registration time of n seconds a registrar granted, at most maxGranted.
func granted(n int) time.Duration {
	if int64(n) > int64(maxGranted/time.Second) {
		return maxGranted
	}
	return time.Duration(n) * time.Second
}

func headerValue(res *sip.Response, name string) string {
	if h := res.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func headerValueReq(req *sip.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// retryAfter reads Retry-After in seconds (0 when absent or bad).
func retryAfter(res *sip.Response) time.Duration {
	v := strings.TrimSpace(strings.SplitN(headerValue(res, "Retry-After"), ";", 2)[0])
	if i := strings.IndexAny(v, " ("); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 86400 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// diag renders a response's ms-diagnostics, if any, for a Reason.
func diag(res *sip.Response) string {
	if d := headerValue(res, "ms-diagnostics"); d != "" {
		return " (ms-diagnostics " + d + ")"
	}
	return ""
}
