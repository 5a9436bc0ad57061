package client_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/client/clienttest"
)

func TestParseServer(t *testing.T) {
	hosts := client.Hosts{"pool-a.contoso.com": netip.MustParseAddr("127.0.1.100")}
	for _, tc := range []struct {
		in, transport, want string
		err                 bool
	}{
		{"127.0.1.100", "", "127.0.1.100:5060;transport=udp", false},
		{"127.0.1.100:5070", "tcp", "127.0.1.100:5070;transport=tcp", false},
		{"sip:127.0.1.1:5061;transport=TLS", "", "127.0.1.1:5061;transport=tls", false},
		{"127.0.1.1;transport=tls", "", "127.0.1.1:5061;transport=tls", false},
		{"[::1]:5080", "", "[::1]:5080;transport=udp", false},
		{"::1", "", "[::1]:5060;transport=udp", false},
		{"Pool-A.contoso.com:5062", "", "pool-a.contoso.com=127.0.1.100:5062;transport=udp", false},
		{"pool-z.contoso.com", "", "", true},
		{"127.0.0.1:99999", "", "", true},
		{"127.0.0.1;transport=sctp", "", "", true},
		{"[::1", "", "", true},
	} {
		s, err := client.ParseServer(tc.in, tc.transport, hosts)
		if (err != nil) != tc.err || err == nil && s.String() != tc.want {
			t.Errorf("ParseServer(%q) = %v, %v; want %s (error %v)", tc.in, s, err, tc.want, tc.err)
		}
	}
}

func TestBackoffFullJitter(t *testing.T) {
	b := client.Backoff{Min: time.Second, Max: 10 * time.Second}
	for _, tc := range []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{1, 0.999999, 999999 * time.Microsecond}, {1, 0, 0}, {2, 0.5, time.Second}, {3, 0.5, 2 * time.Second},
		{5, 0.5, 5 * time.Second}, {60, 0.5, 5 * time.Second}, {0, 1, time.Second},
	} {
		if got := b.Delay(tc.n, tc.rnd); got != tc.want {
			t.Errorf("Delay(%d, %g) = %s, want %s", tc.n, tc.rnd, got, tc.want)
		}
	}
}

func TestEventChannelNeverBlocks(t *testing.T) {
	ch := make(chan client.Event, 1)
	var dropped client.Counter
	f := client.EventChannel(ch, &dropped)
	f(client.Event{Kind: client.AttemptSent})
	f(client.Event{Kind: client.Response})
	f(client.Event{Kind: client.Lost})
	if len(ch) != 1 || dropped.Load() != 2 || (<-ch).Kind != client.AttemptSent {
		t.Fatalf("channel %d, dropped %d", len(ch), dropped.Load())
	}
}

func TestProxyAuthenticate(t *testing.T) {
	r := clienttest.Start(t, func(req *sip.Request) []clienttest.Reply {
		if req.GetHeader("Proxy-Authorization") == nil {
			res := sip.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
			c := digest.Challenge{Realm: "contoso.com", Nonce: "p1", Algorithm: "MD5", QOP: []string{"auth"}}
			res.AppendHeader(sip.NewHeader("Proxy-Authenticate", c.String()))
			return []clienttest.Reply{{Response: res}}
		}
		return []clienttest.Reply{{Response: clienttest.OK(req, 600, regular)}}
	})
	c, rec := scripted(t, clockwork.NewFakeClock(), r)
	c.Start()
	rec.wait(t, client.RegisteredEvent)
	reqs := r.Requests()
	h := reqs[len(reqs)-1].GetHeader("Proxy-Authorization")
	if h == nil || !strings.Contains(h.Value(), `nonce="p1"`) || reqs[len(reqs)-1].GetHeader("Authorization") != nil {
		t.Fatalf("credentials went to %v", reqs[len(reqs)-1].Headers())
	}
}

func TestConfigErrors(t *testing.T) {
	srv := []client.Server{{Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Transport: "udp"}}
	for _, tc := range []struct {
		cfg  client.Config
		want string
	}{
		{client.Config{AOR: "alice", Servers: srv}, "not a SIP address"},
		{client.Config{AOR: "sip:a@b.c"}, "no server"},
		{client.Config{AOR: "sip:a@b.c", Servers: []client.Server{{Addr: netip.MustParseAddrPort("10.0.0.1:5060"), Transport: "udp"}}}, "outside loopback"},
		{client.Config{AOR: "sip:a@b.c", Servers: srv, Refresh: 1.5}, "Refresh"},
		{client.Config{AOR: "sip:a@b.c", Servers: srv, UDPKeepAlive: "ping"}, "UDPKeepAlive"},
		{client.Config{AOR: "sip:a@b.c", Servers: srv, Backoff: client.Backoff{Min: time.Minute, Max: time.Second}}, "Backoff"},
	} {
		if _, err := client.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
