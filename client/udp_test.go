package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/client/clienttest"
)

// TestUDPRetransmitsUntilAnswered: a REGISTER lost on the way is sent again, unchanged, after
// T1; a final response repeated after the transaction ended changes nothing.
func TestUDPRetransmitsUntilAnswered(t *testing.T) {
	var n atomic.Int32
	r := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		if n.Add(1) == 1 {
			return nil // lost
		}
		ok := clienttest.OK(req, 600, regular)
		return []clienttest.Reply{{Response: ok}, {Response: ok}}
	})
	clock := clockwork.NewFakeClock()
	c, rec := newClient(t, client.Config{
		AOR: "sip:alice@contoso.com", Servers: []client.Server{{Addr: r.Addr(), Transport: "udp"}},
		RequestTimeout: 5 * time.Second, KeepAlive: -1,
	}, client.WithClock(clock))
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	reqs := r.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d REGISTERs, want the request and one retransmission", len(reqs))
	}
	if reqs[0].String() != reqs[1].String() {
		t.Errorf("the retransmission differs:\n%s\n%s", reqs[0], reqs[1])
	}
	if via := reqs[0].Via(); via == nil || !strings.HasPrefix(via.Params.GetOr("branch", ""), sip.RFC3261BranchMagicCookie) || !via.Params.Has("rport") {
		t.Errorf("top Via %v: want an RFC 3261 branch and rport", via)
	}
	time.Sleep(50 * time.Millisecond) // let the repeated 200 land
	if got := countKind(rec, client.Response); got != 1 {
		t.Errorf("%d Response events, want 1 (a repeated response belongs to no transaction)", got)
	}
}

// TestUDPRetransmittedNotifyAnsweredAgain: a retransmitted NOTIFY (same branch) gets the same
// answer again and is not acted on twice.
func TestUDPRetransmittedNotifyAnsweredAgain(t *testing.T) {
	r := registersOnly(t)
	c, rec := scripted(t, clockwork.NewFakeClock(), r)
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	msg := notify(r, 7, "deregistered;event=rejected", "")
	r.Send(msg)
	r.Send(msg)
	rec.wait(t, client.Lost)
	waitFor(t, "two answers", func() bool { return len(r.Responses()) == 2 })
	res := r.Responses()
	if res[0].StatusCode != 200 || res[0].String() != res[1].String() {
		t.Fatalf("answers differ:\n%s\n%s", res[0], res[1])
	}
	if n := countKind(rec, client.Notified); n != 1 {
		t.Fatalf("%d Notified events for one NOTIFY sent twice", n)
	}
	// A new NOTIFY (another branch) is a new request.
	r.Send(notify(r, 8, "hello", ""))
	waitFor(t, "a third answer", func() bool { return len(r.Responses()) == 3 })
	if n := countKind(rec, client.Notified); n != 2 {
		t.Fatalf("%d Notified events after a second NOTIFY", n)
	}
}

// TestUDPAnswersUnknownUser: a request for a user the socket does not serve gets 404.
func TestUDPAnswersUnknownUser(t *testing.T) {
	r := registersOnly(t)
	pool, err := client.NewPool(1, netip.Addr{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	cfg := client.Config{AOR: "sip:alice@contoso.com", Servers: []client.Server{{Addr: r.Addr(), Transport: "udp"}}, KeepAlive: -1}
	c, rec := newClient(t, cfg, client.WithPool(pool))
	cfg.AOR = "sip:bob@contoso.com"
	c2, _ := newClient(t, cfg, client.WithPool(pool))
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	r.Send(fmt.Sprintf("OPTIONS sip:carol@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-u1\r\nFrom: <sip:contoso.com>;tag=x\r\nTo: <sip:carol@contoso.com>\r\nCall-ID: u1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", r.Peer(), r.Addr()))
	waitFor(t, "an answer", func() bool { return len(r.Responses()) == 1 })
	if code := r.Responses()[0].StatusCode; code != 404 {
		t.Fatalf("answered %d, want 404", code)
	}
	c.Close()
	c2.Close()
}

// TestUDPAbandonedRequestStops: a request whose caller gave up (its context ended) is not
// retransmitted any more: the registrar must not apply what the caller was told had failed.
func TestUDPAbandonedRequestStops(t *testing.T) {
	r := registersOnly(t)
	c, rec := newClient(t, client.Config{
		AOR: "sip:alice@contoso.com", Servers: []client.Server{{Addr: r.Addr(), Transport: "udp"}},
		RequestTimeout: 5 * time.Second, KeepAlive: -1,
	}, client.WithClock(clockwork.NewFakeClock()))
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.AddContact(ctx, client.Contact{URI: "sip:bob@contoso.com"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AddContact: %v, want the context's deadline", err)
	}
	// T1 (500 ms) and more: a live transaction would have been retransmitted by now.
	time.Sleep(800 * time.Millisecond)
	services := 0
	for _, req := range r.Requests() {
		if req.Method == "SERVICE" {
			services++
		}
	}
	if services != 1 {
		t.Fatalf("%d SERVICE requests, want 1: the abandoned one was retransmitted", services)
	}
}
