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

// signIn tries the targets in order, following redirects, until one registers the client.
func (c *Client) signIn(gen uint64, fresh bool) {
	c.mu.Lock()
	if fresh || c.callID == "" {
		c.callID = sip.GenerateTagN(16) + "@" + c.cfg.LocalIP.String()
	}
	targets := c.targetsLocked()
	c.signingIn = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.signingIn = false
		c.mu.Unlock()
	}()

	attempt, hops := 0, 0
	visited := map[Server]bool{}
	reason, last := "no server answered", Server{}
	for i := 0; i < len(targets); i++ {
		t := targets[i]
		if visited[t] {
			continue
		}
		visited[t] = true
		res, at, err := c.exchange(gen, t, &attempt, false)
		if !c.current(gen) {
			return
		}
		last = t
		if err != nil {
			reason = err.Error()
			if errors.Is(err, errRefused) {
				c.lost(gen, t, reason, 0, true)
				return
			}
			continue
		}
		switch code := res.StatusCode; {
		case code >= 200 && code < 300:
			c.registered(gen, t, res, at, false)
			return
		case code >= 300 && code < 400:
			hops++
			next, err := c.redirect(t, res)
			if err != nil {
				reason = err.Error()
				continue
			}
			if hops > c.cfg.MaxRedirects {
				reason = fmt.Sprintf("more than %d redirects", c.cfg.MaxRedirects)
				i = len(targets)
				continue
			}
			var unvisited []Server
			for _, n := range next {
				if !visited[n] {
					unvisited = append(unvisited, n)
				}
			}
			if len(unvisited) == 0 {
				reason = "redirect loop: every Contact was tried already"
				continue
			}
			targets = slices.Insert(targets, i+1, unvisited...)
		case code == 503:
			c.lost(gen, t, "503 "+res.Reason+diag(res), retryAfter(res), false)
			return
		case code == 403 || code == 404:
			c.lost(gen, t, fmt.Sprintf("%d %s%s", code, res.Reason, diag(res)), 0, true)
			return
		default:
			reason = fmt.Sprintf("%d %s%s", code, res.Reason, diag(res))
		}
	}
	c.lost(gen, last, reason, 0, false)
}

var errRefused = errors.New("refused")

// exchange sends one REGISTER to t (a refresh when refresh is set), answering up to two digest
// challenges and one 423, and returns the final response that needs a decision and when it
// arrived.
func (c *Client) exchange(gen uint64, t Server, attempt *int, refresh bool) (*sip.Response, time.Time, error) {
	c.mu.Lock()
	expires := c.cfg.Expires
	c.mu.Unlock()
	challenges := 0
	for tries := 0; tries < 4; tries++ {
		if !c.current(gen) {
			return nil, time.Time{}, ErrClosed
		}
		req, err := c.request(t, expires)
		if err != nil {
			return nil, time.Time{}, err
		}
		*attempt++
		sent := c.clock.Now()
		c.emit(Event{Kind: AttemptSent, Time: sent, Server: t, Attempt: *attempt, Refresh: refresh})
		res, got, err := c.sendCtx(context.Background(), t, req)
		if err != nil {
			return nil, time.Time{}, err
		}
		c.emit(Event{Kind: Response, Time: got, Server: t, Attempt: *attempt, Refresh: refresh, Code: res.StatusCode, RTT: got.Sub(sent)})
		switch res.StatusCode {
		case 401, 407:
			challenges++
			stale, err := c.challenged(t, res)
			c.emit(Event{Kind: Challenged, Server: t, Attempt: *attempt, Stale: stale})
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("%w: %v", errRefused, err)
			}
			if challenges > 1 && !stale {
				return nil, time.Time{}, fmt.Errorf("%w: %d %s: credentials rejected%s", errRefused, res.StatusCode, res.Reason, diag(res))
			}
		case 423:
			min, err := strconv.Atoi(headerValue(res, "Min-Expires"))
			if err != nil || time.Duration(min)*time.Second <= expires {
				return res, got, nil
			}
			expires = time.Duration(min) * time.Second
		default:
			return res, got, nil
		}
	}
	return nil, time.Time{}, fmt.Errorf("%s kept challenging", t)
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
	req.SetBody(nil)
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
	req.AppendHeader(sip.NewHeader(name, cred.String()))
}

// send runs one client transaction and returns its final response.
func (c *Client) send(t Server, req *sip.Request) (*sip.Response, error) {
	res, _, err := c.sendCtx(context.Background(), t, req)
	return res, err
}

// sendCtx is send bounded by ctx as well as the request timeout; it also says when the final
// response arrived: the kernel's stamp of its datagram over UDP (see arrival.go), else when the
// client got it. An injected clock is always asked instead: tests run on its time.
func (c *Client) sendCtx(ctx context.Context, t Server, req *sip.Request) (*sip.Response, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var res *sip.Response
	var at time.Time
	var err error
	if t.Transport == UDP {
		var a udpAnswer
		a, err = c.st.transact(ctx, req, t.Addr)
		res, at = a.res, a.at
	} else {
		res, err = c.st.transactStream(ctx, req)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, time.Time{}, fmt.Errorf("%s: no answer within %s", t, c.cfg.RequestTimeout)
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("%s: %w", t, err)
	}
	if at.IsZero() || c.injectedClock {
		at = c.clock.Now()
	}
	return res, at, nil
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
	c.mu.Unlock()
	attempt := 0
	res, at, err := c.exchange(gen, t, &attempt, true)
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

// unregister removes the binding (Expires: 0).
func (c *Client) unregister(ctx context.Context, t Server) error {
	req, err := c.request(t, 0)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		res, err := c.send(t, req)
		if err == nil && (res.StatusCode == 401 || res.StatusCode == 407) {
			if _, err = c.challenged(t, res); err == nil {
				var again *sip.Request
				if again, err = c.request(t, 0); err == nil {
					res, err = c.send(t, again)
				}
			}
		}
		if err == nil && res.StatusCode >= 300 {
			err = fmt.Errorf("un-REGISTER answered %d %s", res.StatusCode, res.Reason)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
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
	c.ka = c.afterLocked(every, func(gen uint64) { c.keepAlive(gen, t) })
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
				return time.Duration(n) * time.Second
			}
		}
	}
	if n, err := strconv.Atoi(headerValue(res, "Expires")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return c.cfg.Expires
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
