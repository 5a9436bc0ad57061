package client

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestResponseParserLeavesFromTo: responses parse without From and To, which sipgo still parses
// on first use; what the client reads (Via branch, CSeq, Contact params) is there.
func TestResponseParserLeavesFromTo(t *testing.T) {
	msg, err := udpResponseParser.ParseSIP([]byte("SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx1;rport=5070\r\n" +
		"From: <sip:alice@contoso.com>;tag=a1\r\nTo: <sip:alice@contoso.com>;tag=b2\r\n" +
		"Call-ID: c1\r\nCSeq: 2 REGISTER\r\n" +
		"Contact: <sip:alice@127.0.0.1:5070>;expires=300;+sip.instance=\"<urn:uuid:1>\", <sip:alice@127.0.0.2>;expires=60\r\n" +
		"Content-Length: 0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	res := msg.(*sip.Response)
	if _, parsed := res.GetHeader("From").(*sip.FromHeader); parsed {
		t.Error("From was parsed")
	}
	if f := res.From(); f == nil || f.Address.User != "alice" {
		t.Errorf("From on first use: %v", f)
	}
	if b, _ := res.Via().Params.Get("branch"); b != "z9hG4bKx1" || res.CSeq().MethodName != sip.REGISTER {
		t.Errorf("Via branch %q, CSeq %v", b, res.CSeq())
	}
	var expires []string
	for _, h := range res.GetHeaders("Contact") {
		if ch, ok := h.(*sip.ContactHeader); ok {
			e, _ := ch.Params.Get("expires")
			expires = append(expires, e)
		}
	}
	if len(expires) != 2 || expires[0] != "300" || expires[1] != "60" {
		t.Errorf("Contact expires: %v", expires)
	}
}
