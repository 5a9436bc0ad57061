// Package clienttest is a scripted SIP responder for testing the client against behaviour a
// real registrar rarely shows: redirect loops, garbage, silence, stale nonces, floods of
// NOTIFYs. It listens on a real loopback UDP socket; a Script decides each answer.
package clienttest

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Reply is one answer to a request: a response, raw bytes, or nothing; after Delay.
type Reply struct {
	Response *sip.Response
	Raw      []byte
	Delay    time.Duration
}

// Script decides the replies to a request (none: stay silent). It runs on the responder's
// read goroutine.
type Script func(req *sip.Request) []Reply

// Responder answers SIP over UDP according to a script.
type Responder struct {
	t      testing.TB
	conn   *net.UDPConn
	parser *sip.Parser
	script Script

	mu        sync.Mutex
	forget    bool // do not keep requests (large populations)
	requests  []*sip.Request
	responses []*sip.Response // the client's answers to requests sent with Send
	peer      netip.AddrPort  // where the last request came from
	wg        sync.WaitGroup
}

// Start listens on 127.0.0.1:0 until the test ends.
func Start(t testing.TB, script Script) *Responder {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	r := &Responder{t: t, conn: conn, parser: sip.NewParser(), script: script}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		conn.Close()
		r.wg.Wait()
	})
	return r
}

// Addr is where the responder listens.
func (r *Responder) Addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetScript replaces the script.
func (r *Responder) SetScript(s Script) {
	r.mu.Lock()
	r.script = s
	r.mu.Unlock()
}

// Forget stops keeping the requests received (for large populations).
func (r *Responder) Forget() {
	r.mu.Lock()
	r.forget, r.requests = true, nil
	r.mu.Unlock()
}

// Requests returns the requests received so far.
func (r *Responder) Requests() []*sip.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*sip.Request(nil), r.requests...)
}

func (r *Responder) serve() {
	defer r.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg, err := r.parser.ParseSIP(buf[:n])
		if err != nil {
			continue // STUN or junk: not scripted
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			if res, ok := msg.(*sip.Response); ok {
				r.mu.Lock()
				r.responses = append(r.responses, res)
				r.mu.Unlock()
			}
			continue
		}
		req.SetSource(from.String())
		r.mu.Lock()
		if !r.forget {
			r.requests = append(r.requests, req)
		}
		r.peer = from
		script := r.script
		r.mu.Unlock()
		for _, rep := range script(req) {
			data := rep.Raw
			if rep.Response != nil {
				data = []byte(rep.Response.String())
			}
			if rep.Delay > 0 {
				time.Sleep(rep.Delay)
			}
			_, _ = r.conn.WriteToUDPAddrPort(data, from)
		}
	}
}

// Respond builds a response to req with extra headers ("Name: value").
func Respond(req *sip.Request, code int, reason string, headers ...string) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		res.AppendHeader(sip.NewHeader(name, value))
	}
	return res
}

// OK is a 200 for a REGISTER, echoing its Contact with the given expiry and presence-State.
func OK(req *sip.Request, expires int, presence string) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if c := req.Contact(); c != nil {
		cc := c.Clone()
		cc.Params.Remove("expires")
		cc.Params.Add("expires", fmt.Sprint(expires))
		res.AppendHeader(cc)
	}
	if presence != "" {
		res.AppendHeader(sip.NewHeader("presence-State", presence))
	}
	return res
}

// Send sends a request (a NOTIFY, say) to the address the last request came from.
func (r *Responder) Send(raw string) {
	r.mu.Lock()
	peer := r.peer
	r.mu.Unlock()
	if !peer.IsValid() {
		r.t.Fatal("clienttest: no peer yet")
	}
	if _, err := r.conn.WriteToUDPAddrPort([]byte(raw), peer); err != nil {
		r.t.Fatal(err)
	}
}

// Responses returns the responses received so far (the client's answers to what Send sent).
func (r *Responder) Responses() []*sip.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*sip.Response(nil), r.responses...)
}

// Peer is where the last request came from.
func (r *Responder) Peer() netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peer
}
