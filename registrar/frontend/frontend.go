package frontend

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/sipauth"
	"github.com/fepool/fepool/registrar/topology"
)

// FrontEndConfig is what a Front End needs besides the shared Options.
type FrontEndConfig struct {
	FrontEnd         *topology.FrontEnd
	Cluster          Cluster
	Auth             *sipauth.Authenticator
	KeepAliveTimeout time.Duration // advertised in ms-keep-alive
}

// FrontEnd is one Front End server's SIP registrar.
type FrontEnd struct {
	ep   *endpoint
	fe   *topology.FrontEnd
	cl   Cluster
	auth *sipauth.Authenticator
	ka   string
}

// NewFrontEnd returns a stopped Front End.
func NewFrontEnd(cfg FrontEndConfig, opts Options) *FrontEnd {
	f := &FrontEnd{
		ep:   newEndpoint(cfg.FrontEnd.FQDN, cfg.FrontEnd.Address, cfg.FrontEnd.Ports, opts, "frontend"),
		fe:   cfg.FrontEnd,
		cl:   cfg.Cluster,
		auth: cfg.Auth,
		ka:   keepAlive(cfg.KeepAliveTimeout),
	}
	f.ep.handlers[sip.REGISTER] = f.register
	f.ep.handlers[sip.OPTIONS] = f.onOptions
	f.ep.handlers["SERVICE"] = f.onService
	f.ep.inline[sip.REGISTER] = true // neither ever blocks
	f.ep.inline[sip.OPTIONS] = true
	return f
}

// Start binds the Front End's listeners and serves them (again after a stop, on the same ports).
func (f *FrontEnd) Start() error { return f.ep.start() }

// Stop closes its listeners and connections; abrupt resets TCP connections as a crash does.
func (f *FrontEnd) Stop(abrupt bool) { f.ep.stop(abrupt) }

// Addrs returns the bound addresses (zero when stopped).
func (f *FrontEnd) Addrs() Addrs { return f.ep.addrs() }

// Ports returns the ports it binds (the ones bound at its last start).
func (f *FrontEnd) Ports() topology.Ports { return f.ep.boundPorts() }

// DeadListeners returns the transports ("tcp", "tls") whose listener stopped accepting
// connections for an error other than a stop: the Front End no longer serves them.
func (f *FrontEnd) DeadListeners() []string { return f.ep.deadListeners() }

// Connections returns the open TCP and TLS connections.
func (f *FrontEnd) Connections() int {
	f.ep.mu.Lock()
	defer f.ep.mu.Unlock()
	n := 0
	if f.ep.socks != nil && f.ep.running {
		for _, l := range []*trackedListener{f.ep.socks.tcp, f.ep.socks.tls} {
			if l != nil {
				n += l.count()
			}
		}
	}
	return n
}

// DropConnections closes every TCP and TLS connection (FIN) but keeps listening: the pool
// fabric closing routing group connections.
func (f *FrontEnd) DropConnections() {
	f.ep.mu.Lock()
	defer f.ep.mu.Unlock()
	if f.ep.socks == nil || !f.ep.running {
		return
	}
	for _, l := range []*trackedListener{f.ep.socks.tcp, f.ep.socks.tls} {
		if l != nil {
			l.dropConns()
		}
	}
}

func (f *FrontEnd) onOptions(req *sip.Request) *sip.Response {
	if ok, diag := f.cl.Serving(f.fe); !ok {
		return f.unavailable(req, diag)
	}
	res := f.ep.response(req, 200, "OK")
	res.AppendHeader(sip.NewHeader("Allow", f.ep.allow()))
	res.AppendHeader(sip.NewHeader("Supported", "path, outbound"))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	return res
}

// register decides the response to a REGISTER: authenticate (the same challenge for everyone),
// then serve, redirect or refuse as the Cluster routes.
func (f *FrontEnd) register(req *sip.Request) *sip.Response {
	aor, err := aorOf(req)
	if err != nil {
		return f.bad(req, err)
	}
	user, known := f.cl.Lookup(aor)
	if !known || !user.NoAuth {
		if res := authenticate(f.ep, f.auth, f.cl, req, user.AOR, f.fe.FQDN); res != nil {
			return res
		}
	}
	for attempt := 0; attempt < 3; attempt++ {
		route := f.cl.Route(f.fe, user, req.Transport())
		if res, done := f.notServed(req, route); done {
			return res
		}
		lreq, err := registerRequest(req, f.ep.addrs())
		if err != nil {
			return f.bad(req, err)
		}
		result, ok := f.cl.Register(f.fe, route, user.AOR, lreq)
		if !ok {
			continue // the fabric moved the routing group meanwhile: route again
		}
		return f.registered(req, lreq, result, route.Resiliency)
	}
	return f.unavailable(req, DiagCannotRoute)
}

// notServed answers a request this Front End does not serve (redirect, refusal, silence);
// done is false when the route says to serve it.
func (f *FrontEnd) notServed(req *sip.Request, route Route) (res *sip.Response, done bool) {
	switch route.Kind {
	case Serve:
		return nil, false
	case Redirect:
		return redirect(f.ep, req, route.Targets), true
	case Drop:
		return nil, true
	case Forward:
		return f.unavailable(req, DiagCannotRoute), true // a Front End never proxies
	}
	return refusal(f.ep, req, route, f.fe.FQDN), true
}

// registered renders location.Apply's result.
func (f *FrontEnd) registered(req *sip.Request, lreq location.Request, r location.Result, resiliency bool) *sip.Response {
	switch r.Status {
	case 200:
	case 423:
		res := f.ep.response(req, 423, "Interval Too Brief")
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(r.MinExpires)))
		return res
	default:
		return f.ep.response(req, r.Status, r.Reason)
	}
	now := f.cl.Now()
	res := f.ep.response(req, 200, "OK")
	if r.Record != nil {
		for i := range r.Record.Bindings {
			res.AppendHeader(sip.NewHeader("Contact", bindingContact(&r.Record.Bindings[i], now)))
		}
		if len(lreq.Contacts) > 0 {
			for i := range r.Record.Bindings {
				if r.Record.Bindings[i].Key == lreq.Contacts[0].Key {
					res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(r.Record.Bindings[i].ExpiresIn(now))))
					break
				}
			}
		}
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http.TimeFormat)))
	res.AppendHeader(sip.NewHeader("presence-State", presenceState(r.Action, resiliency)))
	res.AppendHeader(sip.NewHeader("ms-keep-alive", f.ka))
	outbound := false
	for _, c := range lreq.Contacts {
		outbound = outbound || c.RegID > 0
	}
	if outbound && hasToken(req, "Supported", "outbound") {
		res.AppendHeader(sip.NewHeader("Require", "outbound"))
	}
	if len(lreq.Path) > 0 && hasToken(req, "Supported", "path") {
		for _, p := range lreq.Path {
			res.AppendHeader(sip.NewHeader("Path", p))
		}
	}
	return res
}

func (f *FrontEnd) unavailable(req *sip.Request, d Diagnostic) *sip.Response {
	return unavailable(f.ep, req, d, f.fe.FQDN)
}

func (f *FrontEnd) bad(req *sip.Request, err error) *sip.Response {
	return bad(f.ep, req, err)
}

// authenticate checks the request's credentials and returns the response to send when they do not
// let it through (nil when they do). userAOR is the To user's canonical AOR ("" when unknown).
//
// Nothing in the answer tells whether a user exists (DESIGN §4): known and unknown users get the
// same challenge, an unknown user's credentials the same fresh 401 as a wrong password, and
// valid credentials for an unknown To user the same 403 as for someone else's. Only when the
// topology reveals unknown users (sip.reveal_unknown_users) are they told so, as Lync does: 404
// with ms-diagnostics 1003.
func authenticate(ep *endpoint, auth *sipauth.Authenticator, cl Cluster, req *sip.Request, userAOR, source string) *sip.Response {
	authz := ""
	if h := req.GetHeader("Authorization"); h != nil {
		authz = h.Value()
	}
	toHost := ""
	if to := req.To(); to != nil {
		toHost = to.Address.Host
	}
	var credUser topology.User
	r := auth.Verify(sipauth.Request{Method: string(req.Method), URI: req.Recipient.String(), Authorization: authz}, func(username string) (string, bool) {
		name := username
		if !strings.Contains(name, "@") {
			name += "@" + toHost
		}
		u, ok := cl.Lookup(name)
		credUser = u
		return u.Password, ok
	})
	ep.m.Auth(r.Outcome.String())
	switch r.Outcome {
	case sipauth.OK:
		if userAOR == "" && auth.RevealsUnknownUsers() {
			return userDoesNotExist(ep, req, source)
		}
		if userAOR == "" || credUser.AOR != userAOR {
			return ep.response(req, 403, "Forbidden: credentials are not those of the To user")
		}
		return nil
	case sipauth.Malformed, sipauth.URIMismatch:
		// A uri that is not the Request-URI gets 400, as RFC 2617 §3.2.2.5 says (and Apache's
		// mod_auth_digest does), not a fresh challenge: the client would compute the same uri
		// again and loop on 401s; a 400 says what is wrong. It is decided before the user is
		// looked up, so it tells nothing about who exists.
		return bad(ep, req, badRequest("%s", r.Reason))
	case sipauth.UnknownUser: // only with sip.reveal_unknown_users
		return userDoesNotExist(ep, req, source)
	}
	res := ep.response(req, 401, "Unauthorized")
	// stale=true when the password was right but the nonce cannot be used (expired, or spent:
	// RFC 2617 §3.2.1), so that the client answers the fresh nonce without asking its user.
	for _, c := range auth.Challenges(r.Outcome == sipauth.Stale || r.Outcome == sipauth.Replayed) {
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", c))
	}
	return res
}

// userDoesNotExist is Lync's answer for a user it does not have: 404 with ms-diagnostics 1003.
func userDoesNotExist(ep *endpoint, req *sip.Request, source string) *sip.Response {
	res := ep.response(req, 404, "Not Found")
	res.AppendHeader(diagnostics(DiagUserDoesNotExist, source))
	return res
}

// redirect answers 301 with the targets in q order.
func redirect(ep *endpoint, req *sip.Request, targets []Target) *sip.Response {
	res := ep.response(req, 301, "Redirect request to Home Server")
	for _, t := range targets {
		res.AppendHeader(sip.NewHeader("Contact", targetContact(t)))
	}
	return res
}

func unavailable(ep *endpoint, req *sip.Request, d Diagnostic, source string) *sip.Response {
	return refusal(ep, req, Route{Kind: Unavailable, Diag: d}, source)
}

// refusal answers an Unavailable route: its code (503 by default) with Retry-After and
// ms-diagnostics.
func refusal(ep *endpoint, req *sip.Request, route Route, source string) *sip.Response {
	code, reason := 503, "Service Unavailable"
	if route.Code == 480 {
		code, reason = 480, "Temporarily Unavailable"
	}
	after := route.RetryAfter
	if after <= 0 {
		after = ep.opts.RetryAfter
	}
	res := ep.response(req, code, reason)
	res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(int((after+time.Second-1)/time.Second))))
	res.AppendHeader(diagnostics(route.Diag, source))
	return res
}

func bad(ep *endpoint, req *sip.Request, err error) *sip.Response {
	reason := "Bad Request"
	if errors.Is(err, errBadRequest) {
		reason = "Bad Request: " + strings.TrimPrefix(err.Error(), errBadRequest.Error()+": ")
	}
	return ep.response(req, 400, reason)
}
