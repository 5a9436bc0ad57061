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
