package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/emiago/sipgo/sip"
)

// Config is a client's settings. Zero values take the defaults given.
type Config struct {
	// AOR is the user's address of record, such as sip:user00042@contoso.com.
	AOR string
	// Username for digest (default: the AOR's user part) and Password ("" for users without
	// auth).
	Username, Password string
	// Servers are the registrars or front doors to sign in to, in order, after the home and
	// backup registrars the client learned. At least one is required.
	Servers []Server
	// Expires is the registration lifetime asked for (default 600 s).
	Expires time.Duration
	// Refresh is the part of the granted lifetime after which the client refreshes, chosen at
	// random in [Refresh-0.05, Refresh+0.05] (default 0.85).
	Refresh float64
	// KeepAlive is the keep-alive interval (default 30 s; negative disables): a STUN Binding
	// (or CRLF, see UDPKeepAlive) over UDP, a CRLF ping over TCP and TLS. A keep-alive left
	// unanswered until the next one means the flow is lost.
	KeepAlive time.Duration
	// UDPKeepAlive is "stun" (default: RFC 5626, answered) or "crlf" (not answered).
	UDPKeepAlive string
	// FlowCheck is how often a TCP or TLS client looks whether its connection closed
	// (default 1 s).
	FlowCheck time.Duration
	// RequestTimeout bounds one REGISTER transaction, retransmissions included (default 8 s).
	RequestTimeout time.Duration
	// Backoff bounds the wait before a new sign-in: full jitter, doubling from Min to Max
	// (default 1 s and 60 s).
	Backoff Backoff
	// MaxRedirects bounds the 3xx followed in one sign-in (default 5).
	MaxRedirects int
	// UserAgent is sent in User-Agent (default "fepool-client").
	UserAgent string
	// InstanceID is the +sip.instance URN (default: a random urn:uuid).
	InstanceID string
	// LocalIP is the address to bind (default 127.0.0.1).
	LocalIP netip.Addr
	// AllowNonLoopback lets the client follow a redirect to an address outside 127.0.0.0/8.
	AllowNonLoopback bool
	// TLS is the TLS client config (default: no certificate verification, since the
	// emulator's certificate is self-signed and every server is on loopback).
	TLS *tls.Config
}

// Backoff is a retry policy: before retry n (1-based) wait a random time in
// [0, min(Max, Min*2^(n-1))] ("full jitter").
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before retry n, drawing from rnd (uniform in [0,1)).
func (b Backoff) Delay(n int, rnd float64) time.Duration {
	if n < 1 {
		n = 1
	}
	ceil := b.Max
	if n < 40 {
		if d := b.Min << (n - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(rnd * float64(ceil))
}

// Errors of configuration and of sign-in.
var (
	ErrConfig      = errors.New("client: bad config")
	ErrNotLoopback = errors.New("address outside loopback refused")
	ErrClosed      = errors.New("client: closed")
)

// withDefaults returns the config with defaults filled in, or an error.
func (c Config) withDefaults() (Config, error) {
	if c.Expires == 0 {
		c.Expires = 600 * time.Second
	}
	if c.Refresh == 0 {
		c.Refresh = 0.85
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.UDPKeepAlive == "" {
		c.UDPKeepAlive = "stun"
	}
	if c.FlowCheck == 0 {
		c.FlowCheck = time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 8 * time.Second
	}
	if c.Backoff.Min == 0 {
		c.Backoff.Min = time.Second
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = 60 * time.Second
	}
	if c.MaxRedirects == 0 {
		c.MaxRedirects = 5
	}
	if c.UserAgent == "" {
		c.UserAgent = "fepool-client"
	}
	if c.InstanceID == "" {
		c.InstanceID = "<urn:uuid:" + uuid.NewString() + ">"
	}
	if !c.LocalIP.IsValid() {
		c.LocalIP = netip.MustParseAddr("127.0.0.1")
	}
	if c.TLS == nil {
		c.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // self-signed emulator on loopback
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var u sip.Uri
	if err := sip.ParseUri(strings.TrimSpace(c.AOR), &u); err != nil || u.User == "" || u.Host == "" {
		bad("AOR %q is not a SIP address such as sip:user00042@contoso.com", c.AOR)
	}
	if c.Username == "" {
		c.Username = u.User
	}
	if len(c.Servers) == 0 {
		bad("no server to sign in to")
	}
	for _, s := range c.Servers {
		if !s.Addr.IsValid() || (s.Transport != UDP && s.Transport != TCP && s.Transport != TLS) {
			bad("server %v: need an address and udp, tcp or tls", s)
		} else if err := loopbackOnly(s.Addr, c.AllowNonLoopback); err != nil {
			bad("server %v: %v", s, err)
		}
	}
	if c.Refresh < 0.2 || c.Refresh > 0.95 {
		bad("Refresh %g is outside [0.2, 0.95]", c.Refresh)
	}
	if c.Expires < time.Second {
		bad("Expires %s is under a second", c.Expires)
	}
	if c.UDPKeepAlive != "stun" && c.UDPKeepAlive != "crlf" {
		bad("UDPKeepAlive %q is not stun or crlf", c.UDPKeepAlive)
	}
	if c.Backoff.Min < 0 || c.Backoff.Max < c.Backoff.Min {
		bad("Backoff %v..%v is not a range", c.Backoff.Min, c.Backoff.Max)
	}
	if !c.LocalIP.IsLoopback() && !c.AllowNonLoopback {
		bad("LocalIP %s is not a loopback address", c.LocalIP)
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return c, nil
}
