package frontend

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/fepool/fepool/registrar/sipauth"
	"github.com/fepool/fepool/registrar/topology"
)

// FrontDoorConfig is what a front door needs besides the shared Options.
type FrontDoorConfig struct {
	FrontDoor *topology.FrontDoor
	Cluster   Cluster
	Auth      *sipauth.Authenticator
	// Timeout bounds a proxied transaction (default 8 s).
	Timeout time.Duration
	// Upstream are the addresses of the Front Ends that may send requests to clients through
	// this front door: its pool's and its backup pool's (which serves the pool's users after a
	// failover). Requests from anywhere else are refused.
	Upstream []netip.Addr
}

// FrontDoor is a pool's front door: the address the pool FQDN resolves to. In redirect mode it
// authenticates and answers 301 with the user's current registrar, as a Lync Director does; in
// proxy mode it forwards the REGISTER there, adding a Path, for clients that do not follow 3xx.
type FrontDoor struct {
	ep       *endpoint
	fd       *topology.FrontDoor
	cl       Cluster
	auth     *sipauth.Authenticator
	timeout  time.Duration
	upstream map[netip.Addr]bool
	flows    flowTable
}

// NewFrontDoor returns a stopped front door.
func NewFrontDoor(cfg FrontDoorConfig, opts Options) *FrontDoor {
	d := &FrontDoor{
		ep:       newEndpoint("frontdoor."+cfg.FrontDoor.FQDN, cfg.FrontDoor.Address, cfg.FrontDoor.Ports, opts, "frontdoor"),
		fd:       cfg.FrontDoor,
		cl:       cfg.Cluster,
		auth:     cfg.Auth,
		timeout:  cfg.Timeout,
		upstream: map[netip.Addr]bool{},
		flows:    flowTable{m: map[string]time.Time{}},
	}
	for _, a := range cfg.Upstream {
		d.upstream[a.Unmap()] = true
	}
	if d.timeout <= 0 {
		d.timeout = 8 * time.Second
	}
	d.ep.handlers[sip.REGISTER] = d.onRegister
	d.ep.handlers[sip.OPTIONS] = d.onOptions
	d.ep.handlers["SERVICE"] = d.onService
	d.ep.handlers[sip.NOTIFY] = d.onRelay
	d.ep.handlers["BENOTIFY"] = d.onRelay
	d.ep.inline[sip.OPTIONS] = true
	// A proxying front door waits for the registrar: that needs sipgo's transactions.
	d.ep.inline[sip.REGISTER] = d.fd.Mode == topology.ModeRedirect
	return d
}

// Start binds and serves.
func (d *FrontDoor) Start() error { return d.ep.start() }

// Stop closes listeners and connections.
func (d *FrontDoor) Stop() { d.ep.stop(false) }

// Addrs returns the bound addresses.
func (d *FrontDoor) Addrs() Addrs { return d.ep.addrs() }

// FQDN returns the front door's FQDN (its pool's).
func (d *FrontDoor) FQDN() string { return d.fd.FQDN }

// DeadListeners returns the transports whose listener stopped accepting connections for good.
func (d *FrontDoor) DeadListeners() []string { return d.ep.deadListeners() }

func (d *FrontDoor) onOptions(req *sip.Request) *sip.Response {
	res := d.ep.response(req, 200, "OK")
	res.AppendHeader(sip.NewHeader("Allow", d.ep.allow()))
	return res
}

func (d *FrontDoor) onRegister(req *sip.Request) *sip.Response {
	if d.fd.Mode == topology.ModeProxy {
		return d.proxy(req)
	}
	return d.redirect(req)
}

func (d *FrontDoor) redirect(req *sip.Request) *sip.Response {
	aor, err := aorOf(req)
	if err != nil {
		return bad(d.ep, req, err)
	}
	if u, known := d.cl.Lookup(aor); !known || !u.NoAuth {
		if res := authenticate(d.ep, d.auth, d.cl, req, u.AOR, d.fd.FQDN); res != nil {
			return res
		}
	}
	route := d.cl.FrontDoorRoute(d.fd, aor, req.Transport())
	switch route.Kind {
	case Redirect, Forward:
		return redirect(d.ep, req, route.Targets)
	case Drop:
		return nil
	default:
		return refusal(d.ep, req, route, d.fd.FQDN)
	}
}

// onService sends a contact-list change where REGISTERs for the user go: redirected, or
// proxied to the user's registrar.
func (d *FrontDoor) onService(req *sip.Request) *sip.Response {
	if d.fd.Mode == topology.ModeProxy {
		return d.proxy(req)
	}
	return d.redirect(req)
}

// proxy forwards the REGISTER to the user's current registrar and returns its final response
// (following one redirect if the fabric moved meanwhile).
func (d *FrontDoor) proxy(req *sip.Request) *sip.Response {
	aor, err := aorOf(req)
	if err != nil {
		return bad(d.ep, req, err)
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 1 {
		return d.ep.response(req, 483, "Too Many Hops")
	}
	route := d.cl.FrontDoorRoute(d.fd, aor, req.Transport())
	switch route.Kind {
	case Unavailable:
		return refusal(d.ep, req, route, d.fd.FQDN)
	case Drop:
		return nil
	}
	client := d.ep.sipClient()
	if client == nil || len(route.Targets) == 0 {
		return unavailable(d.ep, req, DiagCannotRoute, d.fd.FQDN)
	}
	target := route.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	for hop := 0; hop < 3; hop++ {
		res, err := d.forward(ctx, client, req, target)
		if err != nil {
			d.ep.log.Debug().Err(err).Str("target", target.Addr.String()).Msg("proxied REGISTER got no answer")
			return d.ep.response(req, 408, "Request Timeout")
		}
		if res.StatusCode == 301 || res.StatusCode == 302 {
			if next, ok := firstContact(res); ok && hop < 2 {
				target = next
				continue
			}
		}
		if req.Method == sip.REGISTER && res.StatusCode >= 200 && res.StatusCode < 300 {
			if life := registrationLifetime(res); life > 0 {
				d.flows.hold(flowKey(req.Transport(), req.Source()), d.cl.Now(), life)
			}
		}
		return d.relay(req, res)
	}
	return unavailable(d.ep, req, DiagCannotRoute, d.fd.FQDN)
}

// forward sends a copy of req to target as a new client transaction and waits for its final
// response.
func (d *FrontDoor) forward(ctx context.Context, client *sipgo.Client, req *sip.Request, target Target) (*sip.Response, error) {
	fwd := req.Clone()
	if mf := fwd.MaxForwards(); mf != nil {
		mf.Dec()
	}
	if req.Method == sip.REGISTER && !hasPath(fwd, d.pathURI(req)) {
		fwd.PrependHeader(sip.NewHeader("Path", d.pathURI(req)))
	}
	fwd.SetDestination(target.Addr.String())
	fwd.SetTransport(strings.ToUpper(target.Transport))
	d.ep.fromSelf(fwd)
	return send(ctx, client, fwd)
}

// relay turns the registrar's response into the response to the client: the client's Via and
// destination, everything else as the registrar sent it.
func (d *FrontDoor) relay(req *sip.Request, res *sip.Response) *sip.Response {
	out := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, res.Body())
	if to := res.To(); to != nil {
		out.ReplaceHeader(to)
	}
	for _, h := range res.Headers() {
		switch strings.ToLower(h.Name()) {
		case "via", "from", "to", "call-id", "cseq", "content-length":
			continue
		}
		out.AppendHeader(h)
	}
	return out
}

// registrationLifetime is the longest a 2xx to a REGISTER keeps any binding (its Contacts'
// expires, else its Expires header).
func registrationLifetime(res *sip.Response) time.Duration {
	longest := -1
	for _, h := range res.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok {
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil {
					longest = max(longest, n)
				}
			}
		}
	}
	if longest < 0 {
		if v, err := strconv.Atoi(headerValue(res, "Expires")); err == nil {
			longest = v
		}
	}
	return time.Duration(max(longest, 0)) * time.Second
}

func headerValue(res *sip.Response, name string) string {
	if h := res.GetHeader(name); h != nil {
		return strings.TrimSpace(h.Value())
	}
	return ""
}

// flowKey names a client flow as its flow token encodes it: "UDP/127.0.0.1:5062".
func flowKey(transport, source string) string { return transport + "/" + source }

// flowTable holds the client flows a proxying front door registered through it, each until the
// longest registration it relayed on it could have expired: a registrar's request for a user
// comes back only along one of them (RFC 5626 §5.3: an edge proxy forwards on flows it holds).
// Its size is bounded by the flows that registered within the longest registration lifetime.
type flowTable struct {
	mu    sync.Mutex
	m     map[string]time.Time
	swept time.Time
}

// hold keeps the flow for life from now (never shortening what it already holds: other users
// may be registered on the same flow).
func (t *flowTable) hold(key string, now time.Time, life time.Duration) {
	until := now.Add(life)
	t.mu.Lock()
	defer t.mu.Unlock()
	if until.After(t.m[key]) {
		t.m[key] = until
	}
	if now.Sub(t.swept) > time.Minute {
		for k, u := range t.m {
			if !u.After(now) {
				delete(t.m, k)
			}
		}
		t.swept = now
	}
}

// holds reports whether the flow is held at now.
func (t *flowTable) holds(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key].After(now)
}

// pathURI is the front door's Path entry: a flow token naming the client's flow, so requests
// for the user can come back through this front door on the same connection (RFC 5626 §5.3).
func (d *FrontDoor) pathURI(req *sip.Request) string {
	token := base64.RawURLEncoding.EncodeToString([]byte(flowKey(req.Transport(), req.Source())))
	addr := d.ep.addrs().Get(req.Transport())
	return fmt.Sprintf("<sip:%s@%s;transport=%s;lr;ob>", token, addr, strings.ToLower(req.Transport()))
}

func hasPath(req *sip.Request, path string) bool {
	for _, h := range req.GetHeaders("Path") {
		if h.Value() == path {
			return true
		}
	}
	return false
}

// FlowToken decodes a front door Path user part into the transport and client address.
func FlowToken(token string) (transport string, addr netip.AddrPort, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", netip.AddrPort{}, err
	}
	tp, a, ok := strings.Cut(string(raw), "/")
	if !ok {
		return "", netip.AddrPort{}, fmt.Errorf("flow token %q has no transport", token)
	}
	addr, err = netip.ParseAddrPort(a)
	return tp, addr, err
}

// firstContact returns the highest-q Contact of a redirect as a target.
func firstContact(res *sip.Response) (Target, bool) {
	best, bestQ := Target{}, -1.0
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		addr, err := netip.ParseAddrPort(fmt.Sprintf("%s:%d", c.Address.Host, c.Address.Port))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := c.Params.Get("q"); ok {
			fmt.Sscanf(v, "%g", &q)
		}
		tp, _ := c.Address.UriParams.Get("transport")
		if tp == "" {
			tp = "udp"
		}
		if q > bestQ {
			best, bestQ = Target{Addr: addr, Transport: strings.ToLower(tp)}, q
		}
	}
	return best, bestQ >= 0
}
