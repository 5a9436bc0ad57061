package registrar_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v2"
)

// stunBinding sends a STUN Binding request on conn and returns the XOR-MAPPED-ADDRESS.
func stunBinding(t *testing.T, conn *net.UDPConn) netip.AddrPort {
	t.Helper()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := conn.Write(req.Raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no STUN answer: %v", err)
	}
	res := &stun.Message{Raw: buf[:n]}
	if err := res.Decode(); err != nil || res.Type != stun.BindingSuccess || res.TransactionID != req.TransactionID {
		t.Fatalf("STUN answer %v type %v: %v", res, res.Type, err)
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(res); err != nil {
		t.Fatal(err)
	}
	ip, _ := netip.AddrFromSlice(xor.IP.To4())
	return netip.AddrPortFrom(ip, uint16(xor.Port))
}
