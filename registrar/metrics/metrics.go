// Package metrics defines the emulator's Prometheus metrics in one registry per registrar (so
// tests and several registrars in one process do not collide). Listener-level handles are
// resolved once per listener so the SIP hot path does no label lookups.
package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector.
type Metrics struct {
	Registry *prometheus.Registry

	requests     *prometheus.CounterVec
	responses    *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	parseErrors  *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	refused      *prometheus.CounterVec
	panics       *prometheus.CounterVec
	keepalives   *prometheus.CounterVec
	retrans      *prometheus.CounterVec
	conns        *prometheus.GaugeVec
	authOutcomes *prometheus.CounterVec
	Events       *prometheus.CounterVec
	// Notifies counts registration-notify requests sent, by outcome (answered, unanswered).
	Notifies *prometheus.CounterVec
}

// New creates the collectors and registers them with Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_sip_requests_total", Help: "SIP requests received, by listener and method.",
		}, []string{"listener", "method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_register_responses_total", Help: "Final responses to REGISTER, by listener and status code.",
		}, []string{"listener", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fepool_register_duration_seconds",
			Help:    "Time from a REGISTER reaching the listener's handler to its final response being sent.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16), // 25µs .. ~0.8s
		}, []string{"listener"}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_sip_parse_errors_total", Help: "Messages that could not be parsed as SIP (dropped, or the TCP connection closed).",
		}, []string{"listener"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_sip_dropped_total", Help: "Messages or connections dropped by protection limits or because they were not SIP, by reason.",
		}, []string{"listener", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_sip_refused_total", Help: "Requests answered with an error by a protection or sanity rule before any handler ran (a relay the front door did not set up, a malformed or oversized request), by reason.",
		}, []string{"listener", "reason"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_handler_panics_total", Help: "SIP handlers that panicked and were answered 500 (the first is logged with its stack, the rest sampled).",
		}, []string{"listener"}),
		keepalives: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_keepalives_total", Help: "Keep-alives received: CRLF (RFC 5626) and STUN Binding requests answered.",
		}, []string{"listener", "kind"}),
		retrans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_sip_retransmissions_total", Help: "Retransmitted UDP requests answered again with the response already sent.",
		}, []string{"listener"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fepool_tcp_connections", Help: "Open TCP and TLS connections accepted by a listener.",
		}, []string{"listener", "transport"}),
		authOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_auth_total", Help: "Digest authentication outcomes.",
		}, []string{"listener", "outcome"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_events_total", Help: "Event log entries, by kind.",
		}, []string{"kind"}),
		Notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fepool_registration_notify_total", Help: "registration-notify requests sent to move signed-in users between pools, by outcome.",
		}, []string{"outcome"}),
	}
	m.Registry.MustRegister(m.requests, m.responses, m.latency, m.parseErrors, m.dropped, m.refused, m.panics, m.keepalives, m.retrans, m.conns, m.authOutcomes, m.Events, m.Notifies,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Listener is the metrics of one SIP listener set (a Front End or a front door).
type Listener struct {
	m       *Metrics
	name    string
	Latency prometheus.Observer
	Parse   prometheus.Counter
	CRLF    prometheus.Counter
	STUN    prometheus.Counter
	// Retransmission counts requests answered from the retransmission cache.
	Retransmission prometheus.Counter
	// Panic counts handler panics.
	Panic    prometheus.Counter
	register prometheus.Counter
	options  prometheus.Counter

	mu      sync.Mutex
	codes   map[int]prometheus.Counter
	methods map[string]prometheus.Counter
	reasons map[string]prometheus.Counter
	refusal map[string]prometheus.Counter
	auth    map[string]prometheus.Counter
}

// Listener returns the handles of the named listener.
func (m *Metrics) Listener(name string) *Listener {
	return &Listener{
		m: m, name: name,
		Latency:        m.latency.WithLabelValues(name),
		Parse:          m.parseErrors.WithLabelValues(name),
		CRLF:           m.keepalives.WithLabelValues(name, "crlf"),
		STUN:           m.keepalives.WithLabelValues(name, "stun"),
		Retransmission: m.retrans.WithLabelValues(name),
		Panic:          m.panics.WithLabelValues(name),
		register:       m.requests.WithLabelValues(name, "REGISTER"),
		options:        m.requests.WithLabelValues(name, "OPTIONS"),
		codes:          map[int]prometheus.Counter{},
		methods:        map[string]prometheus.Counter{},
		reasons:        map[string]prometheus.Counter{},
		refusal:        map[string]prometheus.Counter{},
		auth:           map[string]prometheus.Counter{},
	}
}

// Request counts a request by method.
func (l *Listener) Request(method string) {
	switch method {
	case "REGISTER":
		l.register.Inc()
	case "OPTIONS":
		l.options.Inc()
	default:
		l.cached(l.methods, method, l.m.requests).Inc()
	}
}

// Response counts a final response to REGISTER.
func (l *Listener) Response(code int) {
	l.mu.Lock()
	c, ok := l.codes[code]
	if !ok {
		c = l.m.responses.WithLabelValues(l.name, strconv.Itoa(code))
		l.codes[code] = c
	}
	l.mu.Unlock()
	c.Inc()
}

// Dropped counts something dropped for a reason (rate_limit, overload, not_sip, conn_limit...).
func (l *Listener) Dropped(reason string) {
	l.cached(l.reasons, reason, l.m.dropped).Inc()
}

// Refused counts a request answered with an error by a protection or sanity rule (relay_source,
// relay_flow, version, content_length, method_case, missing_header, too_large...).
func (l *Listener) Refused(reason string) {
	l.cached(l.refusal, reason, l.m.refused).Inc()
}

// Auth counts a digest authentication outcome.
func (l *Listener) Auth(outcome string) {
	l.cached(l.auth, outcome, l.m.authOutcomes).Inc()
}

// Conns returns the open-connections gauge of a transport.
func (l *Listener) Conns(transport string) prometheus.Gauge {
	return l.m.conns.WithLabelValues(l.name, transport)
}

// cached returns vec's counter for (listener, key), keeping at most 32 keys per listener (the
// values come from the network) and folding the rest into "other".
func (l *Listener) cached(m map[string]prometheus.Counter, key string, vec *prometheus.CounterVec) prometheus.Counter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := m[key]; ok {
		return c
	}
	if len(m) >= 32 {
		key = "other"
		if c, ok := m[key]; ok {
			return c
		}
	}
	c := vec.WithLabelValues(l.name, key)
	m[key] = c
	return c
}
