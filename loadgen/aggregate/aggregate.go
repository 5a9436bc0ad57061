// Package aggregate turns a results stream (package record) into a Summary: per scenario step,
// how many clients the step disrupted and how long they took to be signed in again and to get
// full service back (DESIGN §6), per-attempt REGISTER latency, responses by code, and
// per-second time series of the clients' states, all as HDR histograms. It reads records in
// stream order and keeps only per-client state, so a soak's stream aggregates in bounded memory.
//
// Definitions (t0 = the time a disruptive step was carried out; its window lasts until the next
// disruptive step or the end of the run):
//   - disrupted: a started client signed out at some instant of the window;
//   - time to signed in: for a disrupted client registered at the window's end, the last time it
//     became registered (any mode) minus t0; otherwise it is carried over into the next window,
//     or, at the end of the run, never recovered;
//   - degraded: a started client not in regular mode at some instant of the window;
//   - time to service: for a degraded client in regular mode at the window's end, the last time
//     it entered regular mode minus t0; otherwise it never regained service.
//
// An Aggregator is not safe for concurrent use.
package aggregate

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/fepool/fepool/loadgen/record"
)

// Client states.
const (
	stateIdle uint8 = iota // not started (yet)
	stateOut
	stateRegular
	stateResiliency
)

// Histogram range: 1 µs to 2 h, 3 significant digits.
const (
	histMin    = 1
	histMax    = int64(2 * time.Hour / time.Microsecond)
	histDigits = 3
)

// CDFPercentiles are the points of each distribution's CDF in a Summary.
var CDFPercentiles = []float64{0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99, 100}

// Dist is a latency distribution.
type Dist struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	// CDF gives the value at each of CDFPercentiles (milliseconds).
	CDF []CDFPoint `json:"cdf,omitempty"`
}

// CDFPoint is one point of a CDF.
type CDFPoint struct {
	Percentile float64 `json:"p"`
	Ms         float64 `json:"ms"`
}

// Quantile returns the distribution's value at a named quantile ("p50", "p90", "p99",
// "p99.9", "max", "mean") and whether the name is known.
func (d Dist) Quantile(name string) (float64, bool) {
	switch name {
	case "p50":
		return d.P50, true
	case "p90":
		return d.P90, true
	case "p99":
		return d.P99, true
	case "p99.9", "p999":
		return d.P999, true
	case "max":
		return d.Max, true
	case "mean", "avg":
		return d.Mean, true
	}
	return 0, false
}

type hist struct{ h *hdrhistogram.Histogram }

func newHist() hist { return hist{hdrhistogram.New(histMin, histMax, histDigits)} }

func (h hist) add(d time.Duration) {
	us := max(histMin, min(int64(d/time.Microsecond), histMax))
	_ = h.h.RecordValue(us)
}

func (h hist) dist() Dist {
	if h.h.TotalCount() == 0 {
		return Dist{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	d := Dist{
		Count: h.h.TotalCount(), Mean: h.h.Mean() / 1000,
		P50: ms(h.h.ValueAtQuantile(50)), P90: ms(h.h.ValueAtQuantile(90)), P99: ms(h.h.ValueAtQuantile(99)),
		P999: ms(h.h.ValueAtQuantile(99.9)), Max: ms(h.h.Max()),
	}
	for _, p := range CDFPercentiles {
		v := h.h.ValueAtQuantile(p)
		if p == 0 {
			v = h.h.Min()
		}
		d.CDF = append(d.CDF, CDFPoint{Percentile: p, Ms: ms(v)})
	}
	return d
}

// Verdict is one threshold judged.
type Verdict struct {
	Threshold string `json:"threshold"`
	// Actual is the measured value as shown (such as "4.21s" or "0").
	Actual string `json:"actual"`
	Pass   bool   `json:"pass"`
	// Err says why it could not be judged (an unknown step, no data): it then fails.
	Err string `json:"error,omitempty"`
}

// Step is one scenario step's results.
type Step struct {
	Index      int     `json:"index"`
	Name       string  `json:"name"`
	Action     string  `json:"action"`
	At         float64 `json:"at_s"` // seconds since the start
	Took       float64 `json:"took_s"`
	Err        string  `json:"error,omitempty"`
	Disruptive bool    `json:"disruptive"`
	// Measured: the step opened a measurement window (disruptive and carried out).
	Measured bool `json:"measured"`
	// Window is how long the step's measurement window lasted (seconds).
	Window         float64 `json:"window_s,omitempty"`
	Disrupted      int     `json:"disrupted,omitempty"`
	TimeToSignedIn Dist    `json:"time_to_signed_in"`
	NeverRecovered int     `json:"never_recovered"`
	// CarriedOver: disrupted clients not back when the next disruptive step came (they count in
	// its window); ServiceCarriedOver likewise for full service.
	CarriedOver          int  `json:"carried_over,omitempty"`
	Degraded             int  `json:"degraded,omitempty"`
	ServiceCarriedOver   int  `json:"service_carried_over,omitempty"`
	TimeToService        Dist `json:"time_to_service"`
	NeverRegainedService int  `json:"never_regained_service"`
	RegisterLatency      Dist `json:"register_latency"`
	// RecorderLag is the load generator's own delay over the window (event to record; for a
	// response, from the kernel's arrival stamp).
	RecorderLag Dist             `json:"recorder_lag"`
	Attempts    int64            `json:"attempts"`
	Losses      int64            `json:"losses"`
	Responses   map[string]int64 `json:"responses,omitempty"`
	// ContactChanges counts the contact-list changes made in the step by answer code ("0":
	// no answer).
	ContactChanges map[string]int64 `json:"contact_changes,omitempty"`
}

// Series are per-second time series; index i covers [i s, i+1 s) since the start. The state
// counts are taken at the end of each second.
type Series struct {
	Regular    []int `json:"regular"`
	Resiliency []int `json:"resiliency"`
	SignedOut  []int `json:"signed_out"`
	Attempts   []int `json:"attempts"`
	// Responses by class ("2xx", "3xx", "4xx", "5xx", "6xx") per second.
	Responses map[string][]int `json:"responses"`
}

// Summary is a whole run.
type Summary struct {
	Scenario    string    `json:"scenario"`
	Description string    `json:"description,omitempty"`
	Emulator    string    `json:"emulator,omitempty"`
	Host        string    `json:"host,omitempty"`
	Start       time.Time `json:"start"`
	Seconds     float64   `json:"seconds"`
	Clients     int       `json:"clients"`
	// Shards lists the shards whose streams were read, of Of.
	Shards []int `json:"shards"`
	Of     int   `json:"of"`
	// Started counts the clients that were started (the population of these shards).
	Started int `json:"started"`
	// EndReason says how the run ended; Truncated that a stream was cut short. Completed says
	// every stream is whole and its scenario ran to its end: the figures cover the whole plan.
	EndReason  string   `json:"end_reason"`
	Error      string   `json:"error,omitempty"`
	Truncated  bool     `json:"truncated,omitempty"`
	Completed  bool     `json:"completed"`
	Thresholds []string `json:"thresholds,omitempty"`
	// Realtime says every load process ran under real-time scheduling.
	Realtime bool `json:"realtime,omitempty"`

	InitialSignIn Dist `json:"initial_sign_in"`
	// NeverSignedIn counts started clients never registered; AllSignedInAt is when the last
	// started client first registered (seconds since the start; 0 when some never did).
	NeverSignedIn   int              `json:"never_signed_in"`
	AllSignedInAt   float64          `json:"all_signed_in_at_s,omitempty"`
	RegisterLatency Dist             `json:"register_latency"`
	RecorderLag     Dist             `json:"recorder_lag"`
	Attempts        int64            `json:"attempts"`
	Losses          int64            `json:"losses"`
	Responses       map[string]int64 `json:"responses"`
	// Final states of the clients when the scenario ended (before they signed out).
	FinalRegular    int `json:"final_regular"`
	FinalResiliency int `json:"final_resiliency"`
	FinalSignedOut  int `json:"final_signed_out"`

	Steps  []Step `json:"steps"`
	Series Series `json:"series"`

	// Verdicts are the thresholds judged against this summary (package threshold); NotJudged
	// says why they were not (the run did not complete, a step failed), and then there are none.
	Verdicts  []Verdict `json:"verdicts,omitempty"`
	NotJudged string    `json:"not_judged,omitempty"`

	// Over all disruptive steps (the thresholds' default scope).
	TimeToSignedIn       Dist `json:"time_to_signed_in"`
	TimeToService        Dist `json:"time_to_service"`
	NeverRecovered       int  `json:"never_recovered"`
	NeverRegainedService int  `json:"never_regained_service"`
}

type client struct {
	state    uint8
	startT   int64
	signedIn bool
	// the current window
	disrupted, degraded  bool
	lastReg, lastRegular int64
}

type window struct {
	step                      *Step
	t0                        int64
	signedIn, service, regLat hist
	lag                       hist
	responses                 map[string]int64
}

// Aggregator builds a Summary from records.
type Aggregator struct {
	sum     Summary
	clients map[int]*client
	// counts of started clients by state
	regular, resiliency, out int

	initial, regLat, lag, allSignedIn, allService hist
	responses                                     map[string]int64
	win                                           *window
	steps                                         []*Step
	sec                                           int // the current series second
	lastT                                         int64
	shards                                        map[int]bool
	ends                                          int // end records read (one per stream)
	incomplete                                    int // of which say the scenario did not run to its end
	// torn: the shards whose teardown was read (their clients' later events are ignored);
	// tornDown: all were, the measurement is over.
	torn     map[int]bool
	tornDown bool
	// lastFirstReg: the latest first registration of a client
	lastFirstReg int64
}

// New returns an empty aggregator.
func New() *Aggregator {
	a := &Aggregator{
		clients: map[int]*client{}, initial: newHist(), regLat: newHist(), lag: newHist(),
		allSignedIn: newHist(), allService: newHist(), responses: map[string]int64{}, shards: map[int]bool{}, torn: map[int]bool{},
	}
	a.sum.Series.Responses = map[string][]int{}
	for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "6xx"} {
		a.sum.Series.Responses[c] = nil
	}
	return a
}

// Handler feeds a record.Read into the aggregator.
func (a *Aggregator) Handler() record.Handler {
	return record.Handler{
		Header: func(h record.Header) error { a.Header(h); return nil },
		Step:   func(s record.Step) error { a.Step(s); return nil },
		Event:  func(e record.Event) error { a.Event(e); return nil },
		End:    func(e record.End) error { a.End(e); return nil },
	}
}

// Header takes a stream's header (several, when shards are merged: they must agree).
func (a *Aggregator) Header(h record.Header) {
	if a.sum.Start.IsZero() || h.Start.Before(a.sum.Start) {
		a.sum.Start = h.Start
	}
	a.sum.Scenario, a.sum.Description, a.sum.Clients, a.sum.Of = h.Scenario, h.Description, h.Clients, h.Shards
	a.sum.Thresholds = h.Thresholds
	a.sum.Emulator, a.sum.Host = h.Emulator, h.Host
	a.sum.Realtime = h.Realtime && (len(a.shards) == 0 || a.sum.Realtime)
	a.shards[h.Shard] = true
}

// shardOf is the shard that drives client c.
func (a *Aggregator) shardOf(c int) int { return c % max(1, a.sum.Of) }

// advance moves the series to time t (nanoseconds since the start).
func (a *Aggregator) advance(t int64) {
	if t > a.lastT {
		a.lastT = t
	}
	for s := int(t / int64(time.Second)); a.sec < s; a.sec++ {
		a.closeSecond()
	}
}

// grow makes room for the current second's counters.
func (a *Aggregator) grow() {
	sr := &a.sum.Series
	for len(sr.Attempts) <= a.sec {
		sr.Attempts = append(sr.Attempts, 0)
		for c := range sr.Responses {
			sr.Responses[c] = append(sr.Responses[c], 0)
		}
	}
}

// closeSecond records the clients' states at the end of the current second.
func (a *Aggregator) closeSecond() {
	a.grow()
	sr := &a.sum.Series
	sr.Regular = append(sr.Regular, a.regular)
	sr.Resiliency = append(sr.Resiliency, a.resiliency)
	sr.SignedOut = append(sr.SignedOut, a.out)
}

// Step takes a scenario step.
func (a *Aggregator) Step(s record.Step) {
	a.advance(s.T)
	for _, prev := range a.steps {
		if prev.Index == s.Index { // the step's outcome, recorded when it was done
			prev.Took, prev.Err = seconds(s.Duration), s.Err
			return
		}
	}
	if s.Action == record.Teardown {
		a.teardown(s.Shard, s.T)
		return
	}
	st := &Step{Index: s.Index, Name: s.Name, Action: s.Action, At: seconds(s.T), Took: seconds(s.Duration), Err: s.Err, Disruptive: s.Disruptive}
	a.steps = append(a.steps, st)
	if !s.Disruptive || s.Err != "" {
		return
	}
	a.closeWindow(s.T, false)
	st.Measured = true
	a.win = &window{step: st, t0: s.T, signedIn: newHist(), service: newHist(), regLat: newHist(), lag: newHist(), responses: map[string]int64{}}
	for _, c := range a.clients {
		c.disrupted = c.state == stateOut
		c.degraded = c.state == stateOut || c.state == stateResiliency
		c.lastReg, c.lastRegular = 0, 0
	}
}

// teardown ends the measurement of a shard's clients, before its load generator signs them
// out: their later events are ignored. Once every shard's is read, the last window closes
// and the final states are taken.
func (a *Aggregator) teardown(shard int, t int64) {
	if a.torn[shard] {
		return
	}
	a.torn[shard] = true
	if len(a.torn) >= len(a.shards) {
		a.finish(t)
	}
}

// finish ends the measurement at t.
func (a *Aggregator) finish(t int64) {
	if a.tornDown {
		return
	}
	a.closeWindow(t, true)
	a.tornDown = true
	a.sum.FinalRegular, a.sum.FinalResiliency, a.sum.FinalSignedOut = a.regular, a.resiliency, a.out
}

// closeWindow ends the current window at t: by the next disruptive step (clients not yet back
// are carried over into it) or by the end of the run (last: they never recovered).
func (a *Aggregator) closeWindow(t int64, last bool) {
	w := a.win
	if w == nil {
		return
	}
	st := w.step
	st.Window = seconds(t - w.t0)
	for _, c := range a.clients {
		if c.disrupted {
			st.Disrupted++
			if c.state == stateRegular || c.state == stateResiliency {
				d := time.Duration(max(0, c.lastReg-w.t0))
				w.signedIn.add(d)
				a.allSignedIn.add(d)
			} else if last {
				st.NeverRecovered++
			} else {
				st.CarriedOver++
			}
		}
		if c.degraded {
			st.Degraded++
			if c.state == stateRegular {
				d := time.Duration(max(0, c.lastRegular-w.t0))
				w.service.add(d)
				a.allService.add(d)
			} else if last {
				st.NeverRegainedService++
			} else {
				st.ServiceCarriedOver++
			}
		}
	}
	st.TimeToSignedIn, st.TimeToService, st.RegisterLatency = w.signedIn.dist(), w.service.dist(), w.regLat.dist()
	st.RecorderLag = w.lag.dist()
	st.Responses = w.responses
	a.sum.NeverRecovered += st.NeverRecovered
	a.sum.NeverRegainedService += st.NeverRegainedService
	a.win = nil
}

func (a *Aggregator) setState(c *client, s uint8) {
	if c.state == s {
		return
	}
	for _, x := range []struct {
		st uint8
		n  *int
	}{{stateRegular, &a.regular}, {stateResiliency, &a.resiliency}, {stateOut, &a.out}} {
		if c.state == x.st {
			*x.n--
		}
		if s == x.st {
			*x.n++
		}
	}
	c.state = s
}

// Event takes a client event.
func (a *Aggregator) Event(e record.Event) {
	a.advance(e.T)
	if e.Lag > 0 {
		a.lag.add(time.Duration(e.Lag))
		if a.win != nil {
			a.win.lag.add(time.Duration(e.Lag))
		}
	}
	if a.torn[a.shardOf(e.C)] {
		return // signing out after the scenario: not measured
	}
	c := a.clients[e.C]
	if c == nil {
		c = &client{}
		a.clients[e.C] = c
	}
	switch e.E {
	case record.Start:
		c.startT = e.T
		a.setState(c, stateOut)
		a.sum.Started++
	case record.Attempt:
		a.sum.Attempts++
		if a.win != nil {
			a.win.step.Attempts++
		}
		a.grow()
		a.sum.Series.Attempts[a.sec]++
	case record.Response:
		code := fmt.Sprint(e.Code)
		a.responses[code]++
		a.regLat.add(time.Duration(e.RTT))
		if a.win != nil {
			a.win.responses[code]++
			a.win.regLat.add(time.Duration(e.RTT))
		}
		if class := fmt.Sprintf("%dxx", e.Code/100); a.sum.Series.Responses[class] != nil || e.Code >= 200 && e.Code < 700 {
			a.grow() // grow first: it replaces the map's slices
			a.sum.Series.Responses[class][a.sec]++
		}
	case record.Registered:
		prev := c.state
		s := stateRegular
		if e.Mode == "resiliency" {
			s = stateResiliency
		}
		if c.state == stateIdle { // an event of a client whose start was not recorded
			a.sum.Started++
			c.startT = e.T
		}
		a.setState(c, s)
		if !c.signedIn {
			c.signedIn = true
			a.initial.add(time.Duration(e.T - c.startT))
			a.lastFirstReg = max(a.lastFirstReg, e.T)
		}
		if a.win != nil {
			if prev != stateRegular && prev != stateResiliency {
				c.lastReg = e.T
			}
			if s == stateRegular && prev != stateRegular {
				c.lastRegular = e.T
			}
			if s == stateResiliency {
				c.degraded = true
			}
		}
	case record.Contact:
		if len(a.steps) > 0 {
			st := a.steps[len(a.steps)-1]
			if st.ContactChanges == nil {
				st.ContactChanges = map[string]int64{}
			}
			st.ContactChanges[fmt.Sprint(e.Code)]++
		}
	case record.Lost, record.SignedOut:
		a.sum.Losses++
		if a.win != nil {
			a.win.step.Losses++
			c.disrupted, c.degraded = true, true
		}
		if c.state != stateIdle {
			a.setState(c, stateOut)
		}
	}
}

// legacyCompleted is the end reason of a completed run in streams written before End.Completed
// existed (the same version of the format): such a run did complete.
const legacyCompleted = "the scenario completed"

// End takes a stream's end record.
func (a *Aggregator) End(e record.End) {
	a.advance(e.T)
	a.ends++
	completed := e.Completed || e.Reason == legacyCompleted
	// the reason shown is the first stream's, unless a later one did not complete or failed
	if a.sum.EndReason == "" || e.Err != "" || !completed && a.incomplete == 0 {
		a.sum.EndReason = e.Reason
	}
	if !completed {
		a.incomplete++
	}
	if e.Err != "" {
		a.sum.Error = e.Err
	}
}

// Summary finishes the aggregation (truncated: a stream was cut short) and returns it.
func (a *Aggregator) Summary(truncated bool) Summary {
	end := a.lastT
	a.finish(end)
	a.closeSecond()
	s := a.sum
	s.Seconds = seconds(end)
	ended := a.ends >= len(a.shards) // one stream per shard
	s.Truncated = truncated || !ended
	s.Completed = !s.Truncated && a.incomplete == 0
	if !ended && s.EndReason == "" {
		s.EndReason = "the results stream ends without an end record (the load generator was killed)"
	}
	for sh := range a.shards {
		s.Shards = append(s.Shards, sh)
	}
	slices.Sort(s.Shards)
	s.InitialSignIn, s.RegisterLatency, s.RecorderLag = a.initial.dist(), a.regLat.dist(), a.lag.dist()
	s.TimeToSignedIn, s.TimeToService = a.allSignedIn.dist(), a.allService.dist()
	s.Responses = a.responses
	for _, c := range a.clients {
		if c.state != stateIdle && !c.signedIn {
			s.NeverSignedIn++
		}
	}
	if s.NeverSignedIn == 0 && s.Started > 0 {
		s.AllSignedInAt = seconds(a.lastFirstReg)
	}
	for _, st := range a.steps {
		s.Steps = append(s.Steps, *st)
	}
	return s
}

func seconds(ns int64) float64 { return math.Round(float64(ns)/1e6) / 1e3 }

// FormatMs shows milliseconds as a short duration (850µs, 12.3ms, 4.21s, 2m3s).
func FormatMs(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
