package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Contact is an entry of the user's contact list (a persistent change: refused in resiliency
// mode and while the pool's Back End is down).
type Contact struct {
	URI         string
	DisplayName string
	Groups      string // group IDs, such as "1"
}

// ServiceError is a contact-list change the registrar refused.
type ServiceError struct {
	Code        int
	Reason      string
	Diagnostics string        // the ms-diagnostics header, such as `1007;reason="..."`
	RetryAfter  time.Duration // 0 when none was given
}

func (e *ServiceError) Error() string {
	s := fmt.Sprintf("contact list change refused: %d %s", e.Code, e.Reason)
	if e.Diagnostics != "" {
		s += " (ms-diagnostics: " + e.Diagnostics + ")"
	}
	return s
}

// ErrNotRegistered is returned by contact-list changes while the client is not signed in.
var ErrNotRegistered = errors.New("client: not registered")

// AddContact adds (or updates) a contact on the user's contact list with a SIP SERVICE request
// (a Lync setContact) to the registrar the client is registered with, following one redirect
// and answering a digest challenge. A refusal is a *ServiceError.
func (c *Client) AddContact(ctx context.Context, ct Contact) error {
	if ct.URI == "" {
		return errors.New("client: AddContact: the contact has no URI")
	}
	var b strings.Builder
	b.WriteString(`<m:setContact xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><m:displayName>`)
	xmlText(&b, ct.DisplayName)
	b.WriteString(`</m:displayName><m:groups>`)
	xmlText(&b, ct.Groups)
	b.WriteString(`</m:groups><m:URI>`)
	xmlText(&b, ct.URI)
	b.WriteString(`</m:URI></m:setContact>`)
	return c.service(ctx, b.String())
}

// RemoveContact removes a contact from the user's contact list (a Lync deleteContact), as
// AddContact does.
func (c *Client) RemoveContact(ctx context.Context, uri string) error {
	if uri == "" {
		return errors.New("client: RemoveContact: no URI")
	}
	var b strings.Builder
	b.WriteString(`<m:deleteContact xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><m:URI>`)
	xmlText(&b, uri)
	b.WriteString(`</m:URI></m:deleteContact>`)
	return c.service(ctx, b.String())
}

func xmlText(b *strings.Builder, s string) { _ = xml.EscapeText(b, []byte(s)) }

// service sends one SERVICE with a SOAP body to the registrar.
func (c *Client) service(ctx context.Context, op string) error {
	c.mu.Lock()
	t, registered := c.registrar, c.state == Registered
	c.mu.Unlock()
	if !registered {
		return ErrNotRegistered
	}
	body := `<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>` + op + `</SOAP-ENV:Body></SOAP-ENV:Envelope>`
	callID := sip.GenerateTagN(16) + "@" + c.cfg.LocalIP.String()
	redirected, challenges := false, 0
	for cseq := uint32(1); cseq < 8; cseq++ {
		if err := loopbackOnly(t.Addr, c.cfg.AllowNonLoopback); err != nil {
			return err
		}
		req := c.serviceRequest(t, callID, cseq, body)
		res, err := c.send(ctx, t, req)
		if err != nil {
			return err
		}
		switch code := res.StatusCode; {
		case code >= 200 && code < 300:
			return nil
		case code == 401 || code == 407:
			challenges++
			stale, err := c.challenged(t, res)
			if err != nil {
				return err
			}
			if challenges > 1 && !stale {
				return &ServiceError{Code: code, Reason: "credentials rejected", Diagnostics: headerValue(res, "ms-diagnostics")}
			}
		case (code == 301 || code == 302) && !redirected:
			next, err := c.redirectTargets(t, res)
			if err != nil {
				return err
			}
			t, redirected = next[0], true
		default:
			return &ServiceError{Code: code, Reason: res.Reason, Diagnostics: headerValue(res, "ms-diagnostics"), RetryAfter: retryAfter(res)}
		}
	}
	return fmt.Errorf("client: SERVICE to %s: too many challenges", t)
}

// serviceRequest builds a SERVICE to t.
func (c *Client) serviceRequest(t Server, callID string, cseq uint32, body string) *sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	req := sip.NewRequest("SERVICE", sip.Uri{Scheme: "sip", User: c.user, Host: c.domain})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: c.user, Host: c.domain}}
	from.Params.Add("tag", c.tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: c.user, Host: c.domain}})
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: "SERVICE"})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("User-Agent", c.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/SOAP+xml"))
	c.authorizeLocked(t, req)
	req.SetBody([]byte(body))
	req.SetTransport(strings.ToUpper(t.Transport))
	req.SetDestination(t.Addr.String())
	return req
}
