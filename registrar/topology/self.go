package topology

import (
	"net/netip"
	"strings"
)

// NamesEmulator reports whether host (a name, or an IP literal with or without brackets; no
// port) names the emulator itself: the SIP domain or realm, a pool, Front End or front door
// FQDN, or the address of a Front End or front door. Digest authentication takes a credential
// computed for one of these for a Request-URI naming another (SIPp computes it for the
// address it sends to).
func (t *Topology) NamesEmulator(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false
	}
	if host == t.Domain || strings.EqualFold(host, t.Realm) {
		return true
	}
	addr, err := netip.ParseAddr(host)
	isAddr := err == nil
	addr = addr.Unmap()
	for _, p := range t.Pools {
		if !isAddr && host == p.FQDN {
			return true
		}
		if fd := p.FrontDoor; fd != nil && (isAddr && fd.Address == addr || !isAddr && host == fd.FQDN) {
			return true
		}
		for _, fe := range p.FrontEnds {
			if isAddr && fe.Address == addr || !isAddr && host == fe.FQDN {
				return true
			}
		}
	}
	return false
}
