package frontend

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/fepool/fepool/registrar/location"
	"github.com/fepool/fepool/registrar/topology"
)

// errBadRequest marks a request that is well-formed SIP but not a usable REGISTER.
var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// diagnostics formats an ms-diagnostics header.
func diagnostics(d Diagnostic, source string) sip.Header {
	return sip.NewHeader("ms-diagnostics", fmt.Sprintf("%d;reason=%q;source=%q", d.ID, d.Reason, source))
}

// aorOf returns the normalised address of record of a REGISTER's To header.
func aorOf(req *sip.Request) (string, error) {
	to := req.To()
	if to == nil || to.Address.User == "" || to.Address.Host == "" {
		return "", badRequest("To must be a SIP address of record such as sip:user@domain")
	}
	aor := topology.NormalizeAOR(to.Address.User + "@" + to.Address.Host)
	if aor == "" {
		return "", badRequest("To is not a SIP address of record")
	}
	return aor, nil
}

// headerInt parses an integer header (-1 when absent).
func headerInt(req *sip.Request, name string) (int, error) {
	h := req.GetHeader(name)
	if h == nil {
		return -1, nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	if err != nil || v < 0 {
		return 0, badRequest("%s %q is not a non-negative integer", name, h.Value())
	}
	return v, nil
}

// hasToken reports whether a comma-separated header (Supported, Require) lists token.
func hasToken(req *sip.Request, name, token string) bool {
	for _, h := range req.GetHeaders(name) {
		for _, t := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// registerRequest turns a REGISTER into what location.Apply needs.
func registerRequest(req *sip.Request, local Addrs) (location.Request, error) {
	var out location.Request
	callID := req.CallID()
	cseq := req.CSeq()
	if callID == nil || callID.Value() == "" || cseq == nil {
		return out, badRequest("Call-ID and CSeq are required")
	}
	out.CallID, out.CSeq = callID.Value(), cseq.SeqNo
	exp, err := headerInt(req, "Expires")
	if err != nil {
		return out, err
	}
	out.Expires = exp
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return out, badRequest("Contact %q cannot be parsed", h.Value())
		}
		if c.Address.Wildcard {
			out.Star = true
			continue
		}
		spec, err := contactSpec(c)
		if err != nil {
			return out, err
		}
		out.Contacts = append(out.Contacts, spec)
	}
	if out.Star && len(out.Contacts) > 0 {
		return out, badRequest("Contact * must be the only Contact")
	}
	for _, h := range req.GetHeaders("Path") {
		out.Path = append(out.Path, h.Value())
	}
	if ua := req.GetHeader("User-Agent"); ua != nil {
		out.UserAgent = ua.Value()
	}
	out.Flow = location.Flow{Transport: req.Transport(), Remote: req.Source(), Local: local.Get(req.Transport()).String()}
	return out, nil
}

func contactSpec(c *sip.ContactHeader) (location.ContactSpec, error) {
	u := c.Address
	if u.Host == "" || (u.Scheme != "" && !strings.EqualFold(u.Scheme, "sip") && !strings.EqualFold(u.Scheme, "sips")) {
		return location.ContactSpec{}, badRequest("Contact %q is not a SIP URI", c.Value())
	}
	spec := location.ContactSpec{URI: u.String(), Expires: -1}
	params := c.Params.Clone()
	if v, ok := params.Get("expires"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return spec, badRequest("Contact expires %q is not a non-negative integer", v)
		}
		spec.Expires = n
		params.Remove("expires")
	}
	spec.Q, _ = params.Get("q")
	if v, ok := params.Get("+sip.instance"); ok {
		spec.Instance = strings.Trim(v, `"`)
	}
	if v, ok := params.Get("reg-id"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return spec, badRequest("Contact reg-id %q is not a non-negative integer", v)
		}
		spec.RegID = n
	}
	spec.Params = params.ToString(';')
	if spec.Instance != "" {
		spec.Key = "instance:" + strings.ToLower(spec.Instance) + "|" + strconv.Itoa(spec.RegID)
	} else {
		// RFC 3261 §19.1.4 in short: host and scheme compare without case, the user with it;
		// an omitted port differs from an explicit one; transport matters.
		tp, _ := u.UriParams.Get("transport")
		spec.Key = fmt.Sprintf("%s:%s@%s:%d;%s", strings.ToLower(u.Scheme), u.User, strings.ToLower(u.Host), u.Port, strings.ToLower(tp))
	}
	return spec, nil
}

// bindingContact renders a binding as a Contact header value of a 200 OK.
func bindingContact(b *location.Binding, now time.Time) string {
	var s strings.Builder
	s.WriteByte('<')
	s.WriteString(b.Contact)
	s.WriteByte('>')
	if b.Params != "" {
		s.WriteByte(';')
		s.WriteString(b.Params)
	}
	s.WriteString(";expires=")
	s.WriteString(strconv.Itoa(b.ExpiresIn(now)))
	return s.String()
}

// targetContact renders a redirect target: <sip:127.0.1.2:5060;transport=udp>;q=0.7.
func targetContact(t Target) string {
	s := fmt.Sprintf("<sip:%s;transport=%s>", t.Addr, t.Transport)
	if t.Q != "" {
		s += ";q=" + t.Q
	}
	return s
}

// presenceState is Lync's presence-State header of a REGISTER 200 OK.
func presenceState(action location.Action, resiliency bool) string {
	s := `register-action="` + action.String() + `";primary-cluster-type="central";is-connected-to-primary="yes"`
	if resiliency {
		s = `register-action="` + action.String() + `";primary-cluster-type="central";is-connected-to-primary="no";user-services-state=unavailable`
	}
	return s
}

// keepAlive is Lync's ms-keep-alive header of a REGISTER 200 OK.
func keepAlive(timeout time.Duration) string {
	return fmt.Sprintf("UAS; tcp=no; hop-hop=yes; end-end=no; timeout=%d", int(timeout/time.Second))
}
