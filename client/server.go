package client

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Transports.
const (
	UDP = "udp"
	TCP = "tcp"
	TLS = "tls"
)

// Server is a registrar (or front door) to send REGISTERs to.
type Server struct {
	Addr      netip.AddrPort
	Transport string // udp, tcp or tls
	// Name is the host name it was given as (a pool FQDN), "" for an address.
	Name string
}

func (s Server) String() string {
	if !s.Addr.IsValid() {
		return "-"
	}
	out := s.Addr.String() + ";transport=" + s.Transport
	if s.Name != "" {
		out = s.Name + "=" + out
	}
	return out
}

// same reports whether two servers are the same address and transport.
func (s Server) same(o Server) bool { return s.Addr == o.Addr && s.Transport == o.Transport }

// ErrBadServer reports a server that cannot be parsed or resolved.
var ErrBadServer = errors.New("bad server")

// Hosts maps host names (pool FQDNs) to addresses, as a hosts file or DNS would.
type Hosts map[string]netip.Addr

// ParseServer parses "[sip:]HOST[:PORT][;transport=udp|tcp|tls]"; HOST is an IP address or a
// name in hosts. The transport defaults to transport (udp when ""), the port to 5060 (5061
// for TLS).
func ParseServer(s, transport string, hosts Hosts) (Server, error) {
	in := s
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "sips:"), "sip:")
	if transport == "" {
		transport = UDP
	}
	if host, params, ok := strings.Cut(s, ";"); ok {
		s = host
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(k, "transport") {
				transport = strings.ToLower(v)
			}
		}
	}
	transport = strings.ToLower(transport)
	if transport != UDP && transport != TCP && transport != TLS {
		return Server{}, fmt.Errorf("%w %q: transport %q is not udp, tcp or tls", ErrBadServer, in, transport)
	}
	host, port := s, 5060
	if transport == TLS {
		port = 5061
	}
	portText := ""
	switch {
	case strings.HasPrefix(s, "["): // [IPv6] or [IPv6]:port
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Server{}, fmt.Errorf("%w %q: unclosed [", ErrBadServer, in)
		}
		host, portText = s[1:end], strings.TrimPrefix(s[end+1:], ":")
	case strings.Count(s, ":") == 1:
		host, portText, _ = strings.Cut(s, ":")
	}
	if portText != "" {
		n, err := strconv.Atoi(portText)
		if err != nil || n < 1 || n > 65535 {
			return Server{}, fmt.Errorf("%w %q: port %q", ErrBadServer, in, portText)
		}
		port = n
	}
	srv := Server{Transport: transport}
	if a, err := netip.ParseAddr(host); err == nil {
		srv.Addr = netip.AddrPortFrom(a, uint16(port))
		return srv, nil
	}
	a, ok := hosts[strings.ToLower(host)]
	if !ok {
		return Server{}, fmt.Errorf("%w %q: %q is neither an IP address nor in the hosts map (no DNS: loopback only)", ErrBadServer, in, host)
	}
	srv.Addr, srv.Name = netip.AddrPortFrom(a, uint16(port)), strings.ToLower(host)
	return srv, nil
}
