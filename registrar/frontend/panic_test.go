package frontend

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/fepool/fepool/registrar/metrics"
	"github.com/fepool/fepool/registrar/topology"
)

// TestPanicsAreCountedAndTheirStacksSampled: a flood of requests that make a handler panic gets
// 500s, every one counted, and one stack in the log, not one per request.
func TestPanicsAreCountedAndTheirStacksSampled(t *testing.T) {
	var logs bytes.Buffer
	m := metrics.New()
	e := newEndpoint("fe01.test", netip.MustParseAddr("127.0.0.1"), topology.Ports{}, Options{Log: zerolog.New(&logs), Metrics: m}, "frontend")
	boom := func(*sip.Request) *sip.Response { panic("boom") }
	for i := 0; i < 1000; i++ {
		if res := e.safely(parse(t, register), boom); res.StatusCode != 500 {
			t.Fatalf("answer %d", res.StatusCode)
		}
	}
	if n := strings.Count(logs.String(), "handler panicked"); n != 1 {
		t.Fatalf("%d panics logged for 1000, want 1 (log %d bytes)", n, logs.Len())
	}
	if !strings.Contains(logs.String(), "goroutine") {
		t.Fatal("the logged panic has no stack")
	}
	var counted dto.Metric
	if err := e.m.Panic.(prometheus.Metric).Write(&counted); err != nil {
		t.Fatal(err)
	}
	if got := counted.GetCounter().GetValue(); got != 1000 {
		t.Fatalf("panics counted %v, want 1000", got)
	}

	var p panicSampler
	now := time.Unix(0, 0)
	for i, tc := range []struct {
		after    time.Duration
		logged   bool
		unlogged int
	}{
		{0, true, 0}, {time.Second, false, 0}, {time.Second, false, 0}, {time.Minute, true, 2}, {time.Second, false, 0},
	} {
		now = now.Add(tc.after)
		unlogged, ok := p.log(now)
		if ok != tc.logged || unlogged != tc.unlogged {
			t.Errorf("panic %d: logged %v with %d unlogged, want %v with %d", i, ok, unlogged, tc.logged, tc.unlogged)
		}
	}
}

// BenchmarkSanity is what the sanity checks add to every request (a Lync-like REGISTER with
// digest credentials), beside BenchmarkParseRegister, the parse they follow.
func BenchmarkSanity(b *testing.B) {
	e := newEndpoint("fe01.test", netip.MustParseAddr("127.0.0.1"), topology.Ports{}, Options{Metrics: metrics.New(), Limits: topology.Limits{MaxHeaders: 100, MaxHeaderBytes: 8192, MaxURIBytes: 1024, MaxBodyBytes: 32768}}, "frontend")
	e.handlers[sip.REGISTER] = func(*sip.Request) *sip.Response { return nil }
	req, err := sip.NewParser().ParseSIP([]byte(lyncRegister))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := e.sanity(req.(*sip.Request)); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkParseRegister(b *testing.B) {
	p := sip.NewParser()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseSIP([]byte(lyncRegister)); err != nil {
			b.Fatal(err)
		}
	}
}

const lyncRegister = "REGISTER sip:contoso.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-524287-1---3c1ad2a1f0e6e1d5;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"Contact: <sip:user00042@127.0.0.1:40000;transport=udp>;+sip.instance=\"<urn:uuid:6f2b4c8e-1a2b-4c3d-8e9f-0a1b2c3d4e5f>\";reg-id=1\r\n" +
	"To: <sip:user00042@contoso.com>\r\n" +
	"From: <sip:user00042@contoso.com>;tag=8a7b6c5d\r\n" +
	"Call-ID: 3c1ad2a1f0e6e1d5@127.0.0.1\r\n" +
	"CSeq: 2 REGISTER\r\n" +
	"Expires: 600\r\n" +
	"Supported: path, outbound, gruu\r\n" +
	"User-Agent: fepool-load\r\n" +
	"Authorization: Digest username=\"user00042\", realm=\"contoso.com\", nonce=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", uri=\"sip:contoso.com\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, cnonce=\"abcdef\", qop=auth, nc=00000001\r\n" +
	"Content-Length: 0\r\n\r\n"
