package loadgen

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/loadgen/record"
	"github.com/fepool/fepool/loadgen/scenario"
)

// Live client states.
const (
	liveIdle uint8 = iota
	liveOut
	liveRegular
	liveResiliency
)

type item struct {
	ev     record.Event
	server client.Server // the event's registrar, named in ev.Server when it is recorded
	step   *record.Step
	at     time.Time // when the event happened (for the recorder's lag)
}

// serverInfo is a registrar as the stream names it, and its pool.
type serverInfo struct{ name, pool string }

// recorder is where client events go: each is stamped, written to the stream and counted in the
// live state right in the callback of the client that reported it, under one mutex. There is
// no queue in between: a single consumer goroutine was starved by the thousands of runnable
// client goroutines of a ramp (seconds behind, and blocking them once its queue filled). The
// stream's compression runs on the Writer's own goroutine.
type recorder struct {
	start   time.Time
	addrs   map[netip.AddrPort]string
	metrics *Metrics
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu         sync.Mutex // everything below
	w          *record.Writer
	stopped    bool
	state      map[int]uint8
	servers    map[client.Server]serverInfo // a few: formatted once, not per event
	at         map[int]string               // pool of the registration
	population int
	regular    map[string]int // by pool ("" = all)
	registered map[string]int
	out        int
	nStarted   int
	// over the current second
	attempts int
	lat      *hdrhistogram.Histogram
	lagMax   time.Duration
}

func newRecorder(start time.Time, w *record.Writer, population int, addrs map[netip.AddrPort]string, m *Metrics) *recorder {
	r := &recorder{
		start: start, w: w, addrs: addrs, metrics: m, population: population,
		quit: make(chan struct{}), done: make(chan struct{}),
		state: make(map[int]uint8, population), servers: map[client.Server]serverInfo{}, at: make(map[int]string, population),
		regular: map[string]int{}, registered: map[string]int{},
		lat: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 2),
	}
	go r.flushing()
	return r
}

// send records an item now; once the recorder stopped, it drops it.
func (r *recorder) send(it item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopped {
		r.handle(it)
	}
}

var eventNames = map[client.Kind]string{
	client.AttemptSent: record.Attempt, client.Response: record.Response, client.Challenged: record.Challenged,
	client.Redirected: record.Redirected, client.RegisteredEvent: record.Registered, client.Lost: record.Lost,
	client.SignedOutEvent: record.SignedOut, client.Notified: record.Notified,
}

// callback is client index's event callback: cheap, and it never blocks for long.
func (r *recorder) callback(index int) func(client.Event) {
	return func(e client.Event) {
		ev := record.Event{C: index, E: eventNames[e.Kind], Code: e.Code, RTT: e.RTT.Nanoseconds(), Refresh: e.Refresh, Final: e.Final}
		switch e.Kind {
		case client.RegisteredEvent:
			ev.Mode = e.Mode.String()
		case client.Lost, client.SignedOutEvent:
			ev.Reason = e.Reason
		}
		r.send(item{ev: ev, server: e.Server, at: e.Time})
	}
}

// started records that client index was started, at its scheduled time.
func (r *recorder) started(index int, at time.Duration) {
	r.send(item{ev: record.Event{C: index, E: record.Start}, at: r.start.Add(at)})
}

func (r *recorder) step(s record.Step) { r.send(item{step: &s}) }

func (r *recorder) contact(index, code int) {
	r.send(item{ev: record.Event{C: index, E: record.Contact, Code: code}, at: time.Now()})
}

// stop records nothing more and has what was recorded pushed to the stream (once).
func (r *recorder) stop() {
	r.once.Do(func() {
		close(r.quit)
		<-r.done
		r.mu.Lock()
		r.stopped = true
		_ = r.w.Flush()
		r.mu.Unlock()
	})
}

// stalls is how many times a client's event waited for the stream's compression.
func (r *recorder) stalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w.Stalls()
}

// flushing has the stream pushed to the file every second, so a run cut short keeps nearly all.
func (r *recorder) flushing() {
	defer close(r.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.mu.Lock()
			_ = r.w.Flush()
			r.mu.Unlock()
		case <-r.quit:
			return
		}
	}
}

// handle stamps and writes an item and updates the live state (with mu held).
func (r *recorder) handle(it item) {
	now := time.Now()
	if it.step != nil {
		_ = r.w.Step(*it.step)
		return
	}
	ev := it.ev
	var srv serverInfo
	if it.server.Addr.IsValid() {
		srv = r.server(it.server)
		ev.Server = srv.name
	}
	ev.T = it.at.Sub(r.start).Nanoseconds()
	lag := now.Sub(it.at)
	if ev.E != record.Start && lag > 0 {
		ev.Lag = lag.Nanoseconds()
	}
	_ = r.w.Event(ev)
	if ev.E != record.Start && lag > r.lagMax {
		r.lagMax = lag
	}
	if m := r.metrics; m != nil && ev.Lag > 0 {
		m.lag.Observe(lag.Seconds())
	}
	switch ev.E {
	case record.Start:
		r.nStarted++
		r.set(ev.C, liveOut, "")
	case record.Attempt:
		r.attempts++
		if r.metrics != nil {
			r.metrics.attempts.Inc()
		}
	case record.Response:
		_ = r.lat.RecordValue(max(1, ev.RTT/int64(time.Microsecond)))
		if r.metrics != nil {
			r.metrics.responses.WithLabelValues(strconv.Itoa(ev.Code)).Inc()
			r.metrics.latency.Observe(time.Duration(ev.RTT).Seconds())
		}
	case record.Registered:
		s := liveRegular
		if ev.Mode == client.Resiliency.String() {
			s = liveResiliency
		}
		r.set(ev.C, s, srv.pool)
	case record.Lost, record.SignedOut:
		if r.state[ev.C] != liveIdle {
			r.set(ev.C, liveOut, "")
		}
		if r.metrics != nil {
			r.metrics.losses.Inc()
		}
	}
}

// server names a registrar as the stream does ("ip:port;transport=udp") and finds its pool
// (with mu held).
func (r *recorder) server(s client.Server) serverInfo {
	if info, ok := r.servers[s]; ok {
		return info
	}
	info := serverInfo{name: s.String(), pool: r.addrs[s.Addr]}
	r.servers[s] = info
	return info
}

// set moves a client to a state (with mu held).
func (r *recorder) set(c int, s uint8, pool string) {
	old, oldPool := r.state[c], r.at[c]
	switch old {
	case liveOut:
		r.out--
	case liveRegular:
		r.regular[""]--
		r.regular[oldPool]--
		r.registered[""]--
		r.registered[oldPool]--
	case liveResiliency:
		r.registered[""]--
		r.registered[oldPool]--
	}
	switch s {
	case liveOut:
		r.out++
	case liveRegular:
		r.regular[""]++
		r.regular[pool]++
		r.registered[""]++
		r.registered[pool]++
	case liveResiliency:
		r.registered[""]++
		r.registered[pool]++
	}
	r.state[c], r.at[c] = s, pool
	if m := r.metrics; m != nil {
		m.clients.WithLabelValues("regular").Set(float64(r.regular[""]))
		m.clients.WithLabelValues("resiliency").Set(float64(r.registered[""] - r.regular[""]))
		m.clients.WithLabelValues("signed_out").Set(float64(r.out))
	}
}

// satisfied reports whether a wait's condition holds: every client of the population
// registered (in regular mode for UntilRegular), with a Front End of pool when it is set.
func (r *recorder) satisfied(until, pool string) (ok bool, have, want int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	have = r.registered[pool]
	if until == scenario.UntilRegular {
		have = r.regular[pool]
	}
	return have >= r.population, have, r.population
}

// tick returns the live status and starts a new second.
func (r *recorder) tick() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{
		Started: r.nStarted, Regular: r.regular[""], Resiliency: r.registered[""] - r.regular[""], SignedOut: r.out,
		AttemptsPerSec: r.attempts, RecorderLagMax: r.lagMax,
	}
	if r.lat.TotalCount() > 0 {
		st.P99 = time.Duration(r.lat.ValueAtQuantile(99)) * time.Microsecond
	}
	r.attempts, r.lagMax = 0, 0
	r.lat.Reset()
	return st
}

// Metrics are the load generator's Prometheus metrics while it runs.
type Metrics struct {
	clients   *prometheus.GaugeVec
	attempts  prometheus.Counter
	losses    prometheus.Counter
	responses *prometheus.CounterVec
	latency   prometheus.Histogram
	lag       prometheus.Histogram
}

// NewMetrics registers the load generator's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		clients:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fepool_load_clients", Help: "Simulated clients by state (regular, resiliency, signed_out)."}, []string{"state"}),
		attempts: prometheus.NewCounter(prometheus.CounterOpts{Name: "fepool_load_register_attempts_total", Help: "REGISTER requests sent."}),
		losses:   prometheus.NewCounter(prometheus.CounterOpts{Name: "fepool_load_losses_total", Help: "Registrations lost or sign-ins failed."}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fepool_load_register_responses_total", Help: "Final responses to REGISTER by code."},
			[]string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fepool_load_register_duration_seconds", Help: "REGISTER request to final response.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 18)}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fepool_load_recorder_lag_seconds", Help: "Client event to recorded: the load generator's own delay.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12)}),
	}
	reg.MustRegister(m.clients, m.attempts, m.losses, m.responses, m.latency, m.lag)
	return m
}
