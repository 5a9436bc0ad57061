package frontend

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/fepool/fepool/registrar/backend"
	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/topology"
)

// soapEnvelope is the body of a Lync contact-list SERVICE request:
//
//	<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>
//	  <m:setContact xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip">
//	    <m:displayName>Bob</m:displayName><m:groups>1</m:groups><m:URI>sip:bob@contoso.com</m:URI>
//	  </m:setContact>
//	</SOAP-ENV:Body></SOAP-ENV:Envelope>
//
// and likewise <m:deleteContact><m:URI>...</m:URI></m:deleteContact>.
type soapEnvelope struct {
	Body struct {
		Set    []soapContact `xml:"setContact"`
		Delete []soapContact `xml:"deleteContact"`
	} `xml:"Body"`
}

type soapContact struct {
	URI         string `xml:"URI"`
	DisplayName string `xml:"displayName"`
	Groups      string `xml:"groups"`
}

// contactChanges reads a SERVICE body.
func contactChanges(body []byte) (set []backend.Contact, remove []string, err error) {
	var env soapEnvelope
	if err := xml.Unmarshal(body, &env); err != nil {
		return nil, nil, badRequest("SERVICE body is not a SOAP envelope: %v", err)
	}
	for _, c := range env.Body.Set {
		uri := strings.TrimSpace(c.URI)
		if topology.NormalizeAOR(uri) == "" {
			return nil, nil, badRequest("setContact URI %q is not a SIP address", c.URI)
		}
		set = append(set, backend.Contact{URI: uri, DisplayName: strings.TrimSpace(c.DisplayName), Groups: strings.TrimSpace(c.Groups)})
	}
	for _, c := range env.Body.Delete {
		uri := strings.TrimSpace(c.URI)
		if topology.NormalizeAOR(uri) == "" {
			return nil, nil, badRequest("deleteContact URI %q is not a SIP address", c.URI)
		}
		remove = append(remove, uri)
	}
	if len(set)+len(remove) == 0 {
		return nil, nil, badRequest("SERVICE body has no setContact or deleteContact")
	}
	return set, remove, nil
}

// onService serves a persistent change: the user's contact list, stored in the Back End. It
// is refused (503) in resiliency mode and while the Back End is down.
func (f *FrontEnd) onService(req *sip.Request) *sip.Response {
	from := req.From()
	if from == nil || from.Address.User == "" {
		return f.bad(req, badRequest("From must be the user's SIP address"))
	}
	aor := topology.NormalizeAOR(from.Address.User + "@" + from.Address.Host)
	user, known := f.cl.Lookup(aor)
	if !known || !user.NoAuth {
		if res := authenticate(f.ep, f.auth, f.cl, req, user.AOR, f.fe.FQDN); res != nil {
			return res
		}
	}
	set, remove, err := contactChanges(req.Body())
	if err != nil {
		return f.bad(req, err)
	}
	route := f.cl.Route(f.fe, user, req.Transport())
	if res, done := f.notServed(req, route); done {
		return res
	}
	if route.Resiliency {
		return f.unavailable(req, DiagResiliencyMode)
	}
	if err := f.cl.ChangeContacts(user, set, remove); err != nil {
		if errors.Is(err, backend.ErrUnavailable) {
			// Locked, read-only, failing or down: the client may retry later (503), and
			// ms-diagnostics says which Back End and why.
			d := DiagBackEndUnavailable
			var be *backend.Error
			if errors.As(err, &be) {
				d.Reason += ": " + be.Summary()
			}
			f.ep.log.Debug().Err(err).Str("user", user.AOR).Msg("contact list change refused: Back End unavailable")
			return f.unavailable(req, d)
		}
		f.ep.log.Error().Err(err).Str("user", user.AOR).Msg("contact list change failed")
		return f.ep.response(req, 500, "Server Internal Error")
	}
	return f.ep.response(req, 200, "OK")
}

// Notify sends a registration-notify to one binding of aor over its flow (through the front
// door its Path names, if any): "deregistered;event=<event>", with P-Preferred-Registrar when
// preferred is set. It waits for the answer until ctx ends.
func (f *FrontEnd) Notify(ctx context.Context, aor string, b location.Binding, event string, preferred *Target) error {
	client := f.ep.sipClient()
	if client == nil {
		return errors.New(f.fe.FQDN + " is not running")
	}
	var ruri sip.Uri
	if err := sip.ParseUri(b.Contact, &ruri); err != nil {
		return fmt.Errorf("binding contact %q: %w", b.Contact, err)
	}
	ruri.UriParams, ruri.Headers = nil, nil
	user, host, _ := strings.Cut(aor, "@")
	req := sip.NewRequest(sip.NOTIFY, ruri)
	fromH := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", Host: host}}
	fromH.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(fromH)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host}})
	callID := sip.CallIDHeader(sip.GenerateTagN(16) + "@" + f.fe.FQDN)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Event", "registration-notify"))
	req.AppendHeader(sip.NewHeader("Subscription-State", "terminated;expires=0"))
	req.AppendHeader(sip.NewHeader("Content-Type", "text/registration-event"))
	if preferred != nil {
		req.AppendHeader(sip.NewHeader("P-Preferred-Registrar", targetContact(Target{Addr: preferred.Addr, Transport: preferred.Transport})))
	}
	req.SetBody([]byte("deregistered;event=" + event))

	dst, transport := b.Flow.Remote, b.Flow.Transport
	if len(b.Path) > 0 {
		var pu sip.Uri
		if err := sip.ParseUri(strings.Trim(b.Path[0], "<> "), &pu); err != nil {
			return fmt.Errorf("binding path %q: %w", b.Path[0], err)
		}
		dst = fmt.Sprintf("%s:%d", pu.Host, pu.Port)
		if tp, ok := pu.UriParams.Get("transport"); ok {
			transport = strings.ToUpper(tp)
		}
		req.AppendHeader(sip.NewHeader("Route", b.Path[0]))
	}
	ap, err := netip.ParseAddrPort(dst)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("binding flow %q is not a loopback address: not sent", dst)
	}
	req.SetDestination(dst)
	req.SetTransport(transport)
	f.ep.fromSelf(req)
	_, err = send(ctx, client, req)
	return err
}

// send runs a client transaction and returns its final response (sipgo's Do, which answers
// nothing at all when a transaction ends without a response and without an error).
func send(ctx context.Context, client *sipgo.Client, req *sip.Request) (*sip.Response, error) {
	res, err := client.Do(ctx, req, sipgo.ClientRequestAddVia)
	if err == nil && res == nil {
		return nil, errors.New("transaction ended without a response")
	}
	return res, err
}

// onRelay forwards a request routed through this front door by a flow token (a registrar's
// NOTIFY for a client that registered through it) to the client's flow.
// It relays nothing it did not set up: the request must come from a Front End of the pool (or
// of its backup pool) and name a flow a REGISTER of a user was proxied on; anything else is
// refused with 403 and counted.
func (d *FrontDoor) onRelay(req *sip.Request) *sip.Response {
	if src, err := netip.ParseAddrPort(req.Source()); err != nil || !d.upstream[src.Addr().Unmap()] {
		d.ep.m.Refused("relay_source")
		return d.ep.response(req, 403, "Forbidden: only the pool's Front Ends send requests through its front door")
	}
	route := req.Route()
	if route == nil || !d.ep.isMine(route.Address) {
		return d.ep.response(req, 404, "Not Found: no Route to this front door")
	}
	tp, addr, err := FlowToken(route.Address.User)
	if err != nil || !addr.Addr().IsLoopback() || !d.flows.holds(flowKey(tp, addr.String()), d.cl.Now()) {
		d.ep.m.Refused("relay_flow")
		return d.ep.response(req, 403, "Forbidden: no such flow at this front door")
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 1 {
		return d.ep.response(req, 483, "Too Many Hops")
	}
	client := d.ep.sipClient()
	if client == nil {
		return unavailable(d.ep, req, DiagCannotRoute, d.fd.FQDN)
	}
	fwd := req.Clone()
	fwd.RemoveHeader("Route")
	if mf := fwd.MaxForwards(); mf != nil {
		mf.Dec()
	}
	fwd.SetDestination(addr.String())
	fwd.SetTransport(tp)
	d.ep.fromSelf(fwd)
	if req.Method == "BENOTIFY" { // best effort: never answered
		_ = client.WriteRequest(fwd, sipgo.ClientRequestAddVia)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	res, err := send(ctx, client, fwd)
	if err != nil {
		return d.ep.response(req, 408, "Request Timeout")
	}
	return d.relay(req, res)
}
