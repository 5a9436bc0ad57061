package frontend

import (
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/fepool/fepool/registrar/location"
)

// FuzzRegister feeds arbitrary datagrams through what a Front End does with a REGISTER before
// and after the Cluster: parse, extract the request, apply it to a record, render the Contacts
// and the transaction key. None of it may panic.
func FuzzRegister(f *testing.F) {
	f.Add([]byte(register))
	f.Add([]byte("REGISTER sip:c SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:u@c>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\n\r\n"))
	f.Add([]byte("REGISTER sip:c SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: u\r\nContact: <sip:a@b>;expires=99999999999999999999\r\n\r\n"))
	f.Add([]byte("OPTIONS sip:c SIP/2.0\r\n\r\n"))
	parser := sip.NewParser()
	pol := location.Policy{Min: 300 * time.Second, Max: 900 * time.Second, Default: 600 * time.Second, MaxEndpoints: 8}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := parser.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		req.SetSource("127.0.0.1:5080")
		_, _ = txKey(req)
		aor, _ := aorOf(req)
		lr, err := registerRequest(req, Addrs{UDP: netip.MustParseAddrPort("127.0.1.1:5060")})
		if err != nil {
			return
		}
		r := location.Apply(aor, nil, lr, pol, now)
		if r.Record != nil {
			for i := range r.Record.Bindings {
				_ = bindingContact(&r.Record.Bindings[i], now)
			}
			// A refresh of what was just stored.
			lr.CSeq++
			location.Apply(aor, r.Record, lr, pol, now.Add(time.Minute))
		}
	})
}
