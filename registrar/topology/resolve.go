package topology

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

func (v *validator) resolve(f *fileTopology) *Topology {
	t := &Topology{
		Domain:       strings.ToLower(strings.TrimSpace(f.Domain)),
		Realm:        f.Realm,
		ServerHeader: f.ServerHeader,
	}
	if t.Domain == "" {
		v.fail("domain", "is required (the SIP domain, such as contoso.com)")
	} else if !validFQDN(t.Domain) {
		v.fail("domain", "%q is not a valid domain name", f.Domain)
	}
	if t.Realm == "" {
		t.Realm = t.Domain
	}
	if t.ServerHeader == "" {
		t.ServerHeader = DefaultServerHeader
	}
	t.Admin = v.admin(f.Admin)
	t.SIP = v.sip(f.SIP)
	t.Fabric = Fabric{
		FailureDetection:   v.duration("fabric.failure_detection", f.Fabric.FailureDetection, 2*time.Second, 0, time.Hour),
		QuorumLossShutdown: v.duration("fabric.quorum_loss_shutdown", f.Fabric.QuorumLossShutdown, 5*time.Minute, 0, 24*time.Hour),
	}
	t.Pairing = v.pairing(f.Pairing, f.BackEnd)
	t.Pools = v.pools(f.Pools)
	v.pairs(t)
	v.addresses(t)
	t.Users = v.users(t, f.Users)
	return t
}

func (v *validator) admin(a fileAdmin) Admin {
	out := Admin(a)
	if out.Listen == "" {
		out.Listen = DefaultAdminListen
	}
	ap, err := netip.ParseAddrPort(out.Listen)
	switch {
	case err != nil:
		v.fail("admin.listen", "%q is not an IP:port (such as 127.0.0.1:8060)", a.Listen)
	case !ap.Addr().IsLoopback():
		v.fail("admin.listen", "%s is not a loopback address: the admin API only listens on 127.0.0.0/8 or ::1", ap.Addr())
	}
	return out
}

func (v *validator) sip(s fileSIP) SIP {
	out := SIP{
		ExpiresMin:       v.duration("sip.expires.min", s.Expires.Min, defaultExpiresMin, time.Second, 24*time.Hour),
		ExpiresMax:       v.duration("sip.expires.max", s.Expires.Max, defaultExpiresMax, time.Second, 7*24*time.Hour),
		ExpiresDefault:   v.duration("sip.expires.default", s.Expires.Default, defaultExpiresDefault, time.Second, 7*24*time.Hour),
		MaxEndpoints:     v.intValue("sip.max_endpoints", s.MaxEndpoints, MaxEndpointsPerUser, 1, 64),
		KeepAliveTimeout: v.duration("sip.keepalive_timeout", s.KeepAliveTimeout, 300*time.Second, time.Second, time.Hour),
		NonceLifetime:    v.duration("sip.nonce_lifetime", s.NonceLifetime, time.Hour, time.Second, 7*24*time.Hour),
		RetryAfter:       v.duration("sip.retry_after", s.RetryAfter, 30*time.Second, time.Second, time.Hour),
		TLSCert:          s.TLS.Cert,
		TLSKey:           s.TLS.Key,
		Limits: Limits{
			MaxInFlight:   v.intValue("sip.limits.max_in_flight", s.Limits.MaxInFlight, 10000, 1, 1<<20),
			PerSourceRate: v.intValue("sip.limits.per_source_rate", s.Limits.PerSourceRate, 0, 0, math.MaxInt32),
			MaxConnsPerIP: v.intValue("sip.limits.max_conns_per_ip", s.Limits.MaxConnsPerIP, DefaultMaxConnsPerIP, 0, math.MaxInt32),
			// Kamailio's tcp_msg_read_timeout and tcp_msg_data_timeout are both 20 s.
			MessageTimeout: v.duration("sip.limits.message_timeout", s.Limits.MessageTimeout, 20*time.Second, 10*time.Millisecond, time.Hour),
			MaxHeaders:     v.intValue("sip.limits.max_headers", s.Limits.MaxHeaders, 100, 10, 10000),
			MaxHeaderBytes: v.intValue("sip.limits.max_header_bytes", s.Limits.MaxHeaderBytes, 8192, 256, 65535),
			MaxURIBytes:    v.intValue("sip.limits.max_uri_bytes", s.Limits.MaxURIBytes, 1024, 64, 65535),
			MaxBodyBytes:   v.intValue("sip.limits.max_body_bytes", s.Limits.MaxBodyBytes, 32768, 0, 65535),
		},
	}
	out.RevealUnknownUsers = s.RevealUnknownUsers // a bool: the strict decoder refuses anything else
	if out.ExpiresMin > out.ExpiresMax {
		v.fail("sip.expires", "min %s is above max %s", out.ExpiresMin, out.ExpiresMax)
	} else if out.ExpiresDefault < out.ExpiresMin || out.ExpiresDefault > out.ExpiresMax {
		v.fail("sip.expires.default", "%s is outside [min %s, max %s]", out.ExpiresDefault, out.ExpiresMin, out.ExpiresMax)
	}
	// By default a flow may idle a little longer than the longest registration lasts.
	out.TCPIdleTimeout = v.duration("sip.tcp_idle_timeout", s.TCPIdleTimeout, out.ExpiresMax+5*time.Minute, 0, 7*24*time.Hour)
	if out.TCPIdleTimeout > 0 && out.TCPIdleTimeout <= out.ExpiresMax {
		v.fail("sip.tcp_idle_timeout", "%s would close flows of clients that only refresh (must exceed sip.expires.max %s, or be 0 to disable)", out.TCPIdleTimeout, out.ExpiresMax)
	}
	if (s.TLS.Cert == "") != (s.TLS.Key == "") {
		v.fail("sip.tls", "set both cert and key, or neither (a self-signed certificate is generated)")
	}
	// MD5 alone by default: real softphones (baresip 1.0's libre) give up on a challenge set that
	// includes an algorithm they lack, even beside MD5. SHA-256 is one line of config away.
	out.DigestAlgorithms = []string{"MD5"}
	if s.DigestAlgorithms != nil {
		out.DigestAlgorithms = nil
		seen := map[string]bool{}
		for i, a := range s.DigestAlgorithms {
			u := strings.ToUpper(strings.TrimSpace(a))
			if u != "MD5" && u != "SHA-256" {
				v.fail(fmt.Sprintf("sip.digest_algorithms[%d]", i), "%q is not supported (MD5 or SHA-256)", a)
				continue
			}
			if !seen[u] {
				seen[u] = true
				out.DigestAlgorithms = append(out.DigestAlgorithms, u)
			}
		}
		if len(out.DigestAlgorithms) == 0 {
			v.fail("sip.digest_algorithms", "must list at least one of MD5, SHA-256")
			out.DigestAlgorithms = []string{"MD5"}
		}
	}
	return out
}

func (v *validator) pools(fps []filePool) []*Pool {
	if len(fps) == 0 {
		v.fail("pools", "at least one pool is required")
	}
	var pools []*Pool
	seen := map[string]int{}
	backEnds := map[string]int{}
	for i, fp := range fps {
		path := fmt.Sprintf("pools[%d]", i)
		p := &Pool{
			Index:   i,
			FQDN:    strings.ToLower(strings.TrimSpace(fp.FQDN)),
			Edition: strings.ToLower(strings.TrimSpace(fp.Edition)),
			Backup:  strings.ToLower(strings.TrimSpace(fp.Backup)),
		}
		switch {
		case p.FQDN == "":
			v.fail(path+".fqdn", "is required (such as pool-a.contoso.com)")
		case !validFQDN(p.FQDN):
			v.fail(path+".fqdn", "%q is not a valid FQDN", fp.FQDN)
		default:
			if j, dup := seen[p.FQDN]; dup {
				v.fail(path+".fqdn", "%s is already pools[%d]", p.FQDN, j)
			}
			seen[p.FQDN] = i
		}
		p.RoutingGroups = v.intValue(path+".routing_groups", fp.RoutingGroups, DefaultRoutingGroups, 1, 100000)
		p.ResiliencyTimer = v.duration(path+".resiliency_timer", fp.ResiliencyTimer, 120*time.Second, 0, 24*time.Hour)
		p.BackEndPath = InMemory
		if fp.BackEnd != nil && strings.TrimSpace(fp.BackEnd.Path) != "" {
			p.BackEndPath = strings.TrimSpace(fp.BackEnd.Path)
			if p.BackEndPath != InMemory && !filepath.IsAbs(p.BackEndPath) && v.dir != "" {
				p.BackEndPath = filepath.Join(v.dir, p.BackEndPath)
			}
			if p.BackEndPath != InMemory {
				if j, dup := backEnds[p.BackEndPath]; dup {
					v.fail(path+".back_end.path", "%s is already the Back End of pools[%d]: each pool needs its own database", p.BackEndPath, j)
				}
				backEnds[p.BackEndPath] = i
			}
		}
		poolPorts := Ports{UDP: DefaultPort, TCP: DefaultPort, TLS: DefaultTLSPort}
		if fp.Ports != nil {
			poolPorts = v.ports(path+".ports", *fp.Ports, Ports{})
			if poolPorts == (Ports{}) {
				v.fail(path+".ports", "serves no transport: set at least one of udp, tcp, tls")
			}
		}
		for j, ffe := range fp.FrontEnds {
			fpath := fmt.Sprintf("%s.front_ends[%d]", path, j)
			fe := &FrontEnd{Pool: p, Index: j, FQDN: strings.ToLower(strings.TrimSpace(ffe.FQDN))}
			if fe.FQDN == "" && p.FQDN != "" {
				fe.FQDN = fmt.Sprintf("fe%02d.%s", j+1, p.FQDN)
			} else if fe.FQDN != "" && !validFQDN(fe.FQDN) {
				v.fail(fpath+".fqdn", "%q is not a valid FQDN", ffe.FQDN)
			}
			fe.Address = v.loopback(fpath+".address", ffe.Address)
			fe.Ports = v.ports(fpath, ffe.PortsFile, poolPorts)
			p.FrontEnds = append(p.FrontEnds, fe)
		}
		if p.Edition == "" {
			p.Edition = Enterprise
			if len(p.FrontEnds) == 1 {
				p.Edition = Standard
			}
		}
		n := len(p.FrontEnds)
		switch p.Edition {
		case Standard:
			if n != 1 {
				v.fail(path+".front_ends", "a standard edition pool has exactly 1 Front End, not %d", n)
			}
		case Enterprise:
			if n < 2 || n > MaxFrontEndsPerPool {
				v.fail(path+".front_ends", "an enterprise pool has 2 to %d Front Ends (13-16 in SfB 2019 mode), not %d", MaxFrontEndsPerPool, n)
			}
		default:
			v.fail(path+".edition", "%q is not an edition (standard or enterprise)", fp.Edition)
		}
		if fp.FrontDoor != nil {
			p.FrontDoor = v.frontDoor(path+".front_door", p, *fp.FrontDoor)
		}
		pools = append(pools, p)
	}
	return pools
}

func (v *validator) frontDoor(path string, p *Pool, ffd fileFrontDoor) *FrontDoor {
	fd := &FrontDoor{Pool: p, FQDN: strings.ToLower(strings.TrimSpace(ffd.FQDN)), Mode: strings.ToLower(strings.TrimSpace(ffd.Mode))}
	if fd.FQDN == "" {
		fd.FQDN = p.FQDN
	}
	fd.Address = v.loopback(path+".address", ffd.Address)
	fd.Ports = v.ports(path, ffd.PortsFile, Ports{})
	if fd.Ports == (Ports{}) {
		fd.Ports = Ports{UDP: DefaultPort, TCP: DefaultPort}
	}
	switch fd.Mode {
	case "":
		fd.Mode = ModeProxy
	case ModeProxy, ModeRedirect:
	default:
		v.fail(path+".mode", "%q is not a front door mode (proxy or redirect)", ffd.Mode)
	}
	return fd
}

// ports overlays the file's ports on inherited ones; 0 in the file means an ephemeral port.
func (v *validator) ports(path string, fp PortsFile, inherit Ports) Ports {
	out := inherit
	set := func(name string, p *int, dst *int) {
		if p == nil {
			return
		}
		switch {
		case *p == 0:
			*dst = PortEphemeral
		case *p < 0 || *p > 65535:
			v.fail(path+"."+name, "%d is not a port (1-65535, or 0 for one chosen by the OS)", *p)
		default:
			*dst = *p
		}
	}
	set("udp", fp.UDP, &out.UDP)
	set("tcp", fp.TCP, &out.TCP)
	set("tls", fp.TLS, &out.TLS)
	return out
}

// loopback parses a listener address that must lie in 127.0.0.0/8 (or ::1).
func (v *validator) loopback(path, s string) netip.Addr {
	s = strings.TrimSpace(s)
	if s == "" {
		v.fail(path, "is required (a loopback address such as 127.0.1.1)")
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		v.fail(path, "%q is not an IP address", s)
		return netip.Addr{}
	}
	if !a.IsLoopback() {
		v.fail(path, "%s is not a loopback address: fepool only listens on 127.0.0.0/8 or ::1", a)
	}
	return a
}

func (v *validator) pairing(p filePairing, b fileBackEnd) Pairing {
	out := Pairing{
		Heartbeat:       v.duration("pairing.heartbeat", p.Heartbeat, 5*time.Second, 100*time.Millisecond, time.Hour),
		BeforeTimer:     strings.ToLower(strings.TrimSpace(p.BeforeTimer)),
		FailoverWait:    v.duration("pairing.failover_wait", p.FailoverWait, 15*time.Second, 0, 24*time.Hour),
		FailbackWait:    v.duration("pairing.failback_wait", p.FailbackWait, 15*time.Second, 0, 24*time.Hour),
		FailbackUsers:   20000,
		FailbackPer:     time.Hour,
		SurvivableAfter: v.duration("back_end.survivable_after", b.SurvivableAfter, 30*time.Minute, 0, 7*24*time.Hour),
	}
	switch out.BeforeTimer {
	case "":
		out.BeforeTimer = Before503
	case Before503, Before480, BeforeDrop:
	default:
		v.fail("pairing.before_timer", "%q is not 503, 480 or drop", p.BeforeTimer)
	}
	if pace := p.FailbackPace; pace != nil {
		out.FailbackUsers = v.intValue("pairing.failback_pace.users", pace.Users, 20000, 1, 10_000_000)
		out.FailbackPer = v.duration("pairing.failback_pace.per", pace.Per, time.Hour, time.Millisecond, 7*24*time.Hour)
	}
	return out
}

func (v *validator) pairs(t *Topology) {
	for _, p := range t.Pools {
		if p.Backup == "" {
			continue
		}
		path := fmt.Sprintf("pools[%d].backup", p.Index)
		b := t.Pool(p.Backup)
		switch {
		case b == nil:
			v.fail(path, "%s is not a pool of this topology", p.Backup)
		case b == p:
			v.fail(path, "a pool cannot back itself up")
		case b.Backup != "" && b.Backup != p.FQDN:
			v.fail(path, "%s is paired with %s: pairing is symmetric, so it must name %s as its backup or none", b.FQDN, b.Backup, p.FQDN)
		}
	}
}

// addresses rejects two listeners on the same address, port and transport, and FQDN clashes.
func (v *validator) addresses(t *Topology) {
	type key struct {
		addr      netip.Addr
		port      int
		transport string
	}
	owner := map[key]string{}
	names := map[string]string{}
	claim := func(path, name string, a netip.Addr, ports Ports) {
		if !a.IsValid() {
			return
		}
		for _, tr := range []string{UDP, TCP, TLS} {
			port := ports.Port(tr)
			if port <= 0 { // not served, or ephemeral (never clashes)
				continue
			}
			k := key{a, port, tr}
			if tr == TLS { // TLS shares TCP's port space
				k.transport = TCP
			}
			if prev, dup := owner[k]; dup {
				v.fail(path, "%s %s is already used by %s", strings.ToUpper(tr), net.JoinHostPort(a.String(), fmt.Sprint(port)), prev)
				continue
			}
			owner[k] = name
		}
	}
	for _, p := range t.Pools {
		for _, fe := range p.FrontEnds {
			path := fmt.Sprintf("pools[%d].front_ends[%d]", p.Index, fe.Index)
			if prev, dup := names[fe.FQDN]; dup && fe.FQDN != "" {
				v.fail(path+".fqdn", "%s is already %s", fe.FQDN, prev)
			}
			names[fe.FQDN] = path
			claim(path+".address", fe.FQDN, fe.Address, fe.Ports)
		}
		if fd := p.FrontDoor; fd != nil {
			claim(fmt.Sprintf("pools[%d].front_door.address", p.Index), "front door of "+p.FQDN, fd.Address, fd.Ports)
		}
	}
}

// validFQDN accepts dotted DNS names made of letters, digits and hyphens.
func validFQDN(s string) bool {
	if len(s) == 0 || len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
