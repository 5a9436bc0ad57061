// Package threshold is the judge stage of the load generator: pass/fail conditions on a run's
// Summary, written as data in the scenario, such as
//
//	p99(time_to_service) < 5s
//	max(time_to_signed_in[failover]) <= 2m
//	never_recovered == 0
//	p99.9(register_latency) < 250ms
//
//	disrupted[fe01 crashes] > 0
//	contacts_refused[changes refused] > 0
//
// A quantile function (p50, p90, p99, p99.9, max, mean) applies to a distribution:
// time_to_signed_in, time_to_service, register_latency, initial_sign_in or recorder_lag,
// compared with a duration. A count (never_recovered, never_regained_service, never_signed_in,
// disrupted, degraded, losses, attempts, final_signed_out, final_resiliency, final_regular,
// contacts_accepted, contacts_refused) compares with a number. `[step]` narrows a step metric
// to the step of that name (or index): the measurement window of a disruptive step, or, for
// contacts_*, the changes a contacts step made; without it, time_to_* and never_* cover every
// disruptive step.
//
// Nothing measured is no pass: a quantile of a distribution without samples fails, saying
// why ("no samples: step 'fe01 crashes' disrupted no client"), whatever its comparison. A
// bound on a step's clients (never_recovered[crash] == 0) holds when the step disrupted
// nobody: pair it with disrupted[crash] > 0. A run that did not complete is not judged at all
// (NotJudged). Everything here is pure: safe for concurrent use.
package threshold

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fepool/fepool/loadgen/aggregate"
)

// ErrSyntax marks a threshold that does not parse.
var ErrSyntax = errors.New("bad threshold")

var distributions = map[string]bool{
	"time_to_signed_in": true, "time_to_service": true, "register_latency": true, "initial_sign_in": true, "recorder_lag": true,
}

var counts = map[string]bool{
	"never_recovered": true, "never_regained_service": true, "never_signed_in": true, "disrupted": true, "degraded": true,
	"losses": true, "attempts": true, "final_signed_out": true, "final_resiliency": true, "final_regular": true,
	"contacts_accepted": true, "contacts_refused": true,
}

// contactMetrics count a contacts step's changes (their [step] names a contacts step); the
// other step-capable metrics are measured over a disruptive step's window.
var contactMetrics = map[string]bool{"contacts_accepted": true, "contacts_refused": true}

// stepCapable are the metrics that take a [step]; the others are whole-run figures.
var (
	stepCapable = map[string]bool{"time_to_signed_in": true, "time_to_service": true, "register_latency": true, "recorder_lag": true,
		"never_recovered": true, "never_regained_service": true, "disrupted": true, "degraded": true, "losses": true, "attempts": true,
		"contacts_accepted": true, "contacts_refused": true}
	quantiles = []string{"p99.9", "p999", "p50", "p90", "p99", "max", "mean", "avg"}
	ops       = []string{"<=", ">=", "==", "!=", "<", ">"}
)

// Threshold is one parsed condition.
type Threshold struct {
	Source   string
	Quantile string // "" for counts
	Metric   string
	Step     string // "" for the whole run
	Op       string
	Limit    float64 // milliseconds for durations, a number for counts
}

// Parse reads a threshold.
func Parse(src string) (Threshold, error) {
	t := Threshold{Source: strings.TrimSpace(src)}
	s := t.Source
	var op string
	var at int
	for i := 0; i < len(s) && op == ""; i++ {
		for _, o := range ops {
			if strings.HasPrefix(s[i:], o) {
				op, at = o, i
				break
			}
		}
	}
	if op == "" {
		return t, fmt.Errorf("%w %q: no comparison (one of < <= > >= == !=)", ErrSyntax, src)
	}
	t.Op = op
	left, right := strings.TrimSpace(s[:at]), strings.TrimSpace(s[at+len(op):])
	if open := strings.IndexByte(left, '('); open >= 0 {
		if !strings.HasSuffix(left, ")") {
			return t, fmt.Errorf("%w %q: missing ) after %q", ErrSyntax, src, left[:open])
		}
		t.Quantile = strings.ToLower(strings.TrimSpace(left[:open]))
		left = strings.TrimSpace(left[open+1 : len(left)-1])
		known := false
		for _, q := range quantiles {
			known = known || q == t.Quantile
		}
		if !known {
			return t, fmt.Errorf("%w %q: unknown function %q (p50, p90, p99, p99.9, max, mean)", ErrSyntax, src, t.Quantile)
		}
	}
	if open := strings.IndexByte(left, '['); open >= 0 {
		if !strings.HasSuffix(left, "]") {
			return t, fmt.Errorf("%w %q: missing ] after the step", ErrSyntax, src)
		}
		t.Step = strings.TrimSpace(left[open+1 : len(left)-1])
		left = strings.TrimSpace(left[:open])
		if t.Step == "" {
			return t, fmt.Errorf("%w %q: empty step name in []", ErrSyntax, src)
		}
	}
	t.Metric = strings.ToLower(left)
	switch {
	case distributions[t.Metric]:
		if t.Quantile == "" {
			return t, fmt.Errorf("%w %q: %s is a distribution: write p99(%s) or max(%s)", ErrSyntax, src, t.Metric, t.Metric, t.Metric)
		}
		d, err := time.ParseDuration(right)
		if err != nil {
			return t, fmt.Errorf("%w %q: %q is not a duration such as 5s or 250ms", ErrSyntax, src, right)
		}
		t.Limit = float64(d) / float64(time.Millisecond)
	case counts[t.Metric]:
		if t.Quantile != "" {
			return t, fmt.Errorf("%w %q: %s is a count: compare it directly (%s == 0)", ErrSyntax, src, t.Metric, t.Metric)
		}
		n, err := strconv.ParseFloat(right, 64)
		if err != nil {
			return t, fmt.Errorf("%w %q: %q is not a number", ErrSyntax, src, right)
		}
		t.Limit = n
	default:
		return t, fmt.Errorf("%w %q: unknown metric %q (distributions: time_to_signed_in, time_to_service, register_latency, initial_sign_in, recorder_lag; counts: never_recovered, never_regained_service, never_signed_in, disrupted, degraded, losses, attempts, final_signed_out, final_resiliency, final_regular, contacts_accepted, contacts_refused)", ErrSyntax, src, t.Metric)
	}
	if t.Step != "" && !stepCapable[t.Metric] {
		return t, fmt.Errorf("%w %q: %s is a whole-run figure: it takes no [step]", ErrSyntax, src, t.Metric)
	}
	return t, nil
}

// ContactStep reports whether the threshold's [step] must name a contacts step (its metric
// counts contact-list changes); otherwise a [step] must name a disruptive step, whose
// measurement window the metric covers.
func (t Threshold) ContactStep() bool { return contactMetrics[t.Metric] }

// ParseAll parses every threshold, reporting all errors.
func ParseAll(srcs []string) ([]Threshold, error) {
	var out []Threshold
	var errs []error
	for _, s := range srcs {
		t, err := Parse(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// NotJudged says why a run's thresholds cannot be judged, or "" when they can: a run judged
// on part of its scenario would pass on figures that miss what the scenario set out to measure
// (the clients a later step would have disrupted, those not back yet). So a run that was
// interrupted, reached its bound, lost its emulator, had a step fail (a wait that timed out
// included: what followed ran on a state the scenario did not reach) or whose results stream
// was cut short is not judged.
func NotJudged(s aggregate.Summary) string {
	switch {
	case s.Truncated:
		return "the results stream was cut short (" + s.EndReason + ")"
	case !s.Completed:
		why := "the run did not complete: " + s.EndReason
		if s.Error != "" && !strings.Contains(s.EndReason, s.Error) {
			why += " (" + s.Error + ")"
		}
		return why
	}
	for _, st := range s.Steps {
		if st.Err != "" {
			return fmt.Sprintf("step %d '%s' failed: %s", st.Index, st.Name, st.Err)
		}
	}
	return ""
}

// JudgeRun judges a run: the verdicts, or none and why (NotJudged) when the run cannot be
// judged (said even when there are no thresholds: the run still did not do what it planned).
func JudgeRun(s aggregate.Summary, ts []Threshold) (verdicts []aggregate.Verdict, notJudged string) {
	if why := NotJudged(s); why != "" {
		return nil, why
	}
	return Judge(s, ts), ""
}

// Judge evaluates thresholds against a summary (whether or not the run completed: JudgeRun
// checks that first).
func Judge(s aggregate.Summary, ts []Threshold) []aggregate.Verdict {
	out := make([]aggregate.Verdict, 0, len(ts))
	for _, t := range ts {
		v := aggregate.Verdict{Threshold: t.Source}
		val, shown, err := t.measure(s)
		var empty *noSamples
		switch {
		case errors.As(err, &empty):
			v.Err, v.Actual = empty.why, "no samples"
		case err != nil:
			v.Err, v.Actual = err.Error(), "n/a"
		default:
			v.Actual, v.Pass = shown, compare(val, t.Op, t.Limit)
		}
		out = append(out, v)
	}
	return out
}

// noSamples is a distribution with nothing in it, and why.
type noSamples struct{ why string }

func (e *noSamples) Error() string { return "no samples: " + e.why }

// Passed reports whether every verdict passed.
func Passed(vs []aggregate.Verdict) bool {
	for _, v := range vs {
		if !v.Pass {
			return false
		}
	}
	return true
}

func compare(v float64, op string, limit float64) bool {
	switch op {
	case "<":
		return v < limit
	case "<=":
		return v <= limit
	case ">":
		return v > limit
	case ">=":
		return v >= limit
	case "==":
		return v == limit
	}
	return v != limit
}

func (t Threshold) step(s aggregate.Summary) (*aggregate.Step, error) {
	for i := range s.Steps {
		if s.Steps[i].Name == t.Step || strconv.Itoa(s.Steps[i].Index) == t.Step {
			return &s.Steps[i], nil
		}
	}
	return nil, fmt.Errorf("no step %q in this run", t.Step)
}

// measure returns the metric's value (milliseconds or a count) and how to show it.
func (t Threshold) measure(s aggregate.Summary) (float64, string, error) {
	var st *aggregate.Step
	if t.Step != "" {
		var err error
		if st, err = t.step(s); err != nil {
			return 0, "", err
		}
	}
	if st != nil && !st.Measured && !t.ContactStep() {
		why := "it is not disruptive"
		if st.Err != "" {
			why = "it failed: " + st.Err
		}
		return 0, "", fmt.Errorf("step '%s' opened no measurement window (%s)", st.Name, why)
	}
	if distributions[t.Metric] {
		var d aggregate.Dist
		switch t.Metric {
		case "time_to_signed_in":
			d = s.TimeToSignedIn
			if st != nil {
				d = st.TimeToSignedIn
			}
		case "time_to_service":
			d = s.TimeToService
			if st != nil {
				d = st.TimeToService
			}
		case "register_latency":
			d = s.RegisterLatency
			if st != nil {
				d = st.RegisterLatency
			}
		case "initial_sign_in":
			d = s.InitialSignIn
		case "recorder_lag":
			d = s.RecorderLag
			if st != nil {
				d = st.RecorderLag
			}
		}
		if d.Count == 0 {
			return 0, "", &noSamples{t.empty(s, st)}
		}
		v, _ := d.Quantile(t.Quantile)
		return v, aggregate.FormatMs(v), nil
	}
	var n int64
	switch t.Metric {
	case "never_recovered":
		n = int64(s.NeverRecovered)
		if st != nil {
			n = int64(st.NeverRecovered)
		}
	case "never_regained_service":
		n = int64(s.NeverRegainedService)
		if st != nil {
			n = int64(st.NeverRegainedService)
		}
	case "disrupted", "degraded":
		for _, x := range s.Steps {
			if st == nil || x.Index == st.Index {
				if t.Metric == "disrupted" {
					n += int64(x.Disrupted)
				} else {
					n += int64(x.Degraded)
				}
			}
		}
	case "losses":
		n = s.Losses
		if st != nil {
			n = st.Losses
		}
	case "attempts":
		n = s.Attempts
		if st != nil {
			n = st.Attempts
		}
	case "contacts_accepted", "contacts_refused":
		for _, x := range s.Steps {
			if st != nil && x.Index != st.Index {
				continue
			}
			for code, k := range x.ContactChanges {
				c, _ := strconv.Atoi(code)
				switch {
				case c >= 200 && c < 300 && t.Metric == "contacts_accepted",
					c >= 300 && t.Metric == "contacts_refused": // 0: no answer, neither
					n += k
				}
			}
		}
	case "never_signed_in":
		n = int64(s.NeverSignedIn)
	case "final_signed_out":
		n = int64(s.FinalSignedOut)
	case "final_resiliency":
		n = int64(s.FinalResiliency)
	case "final_regular":
		n = int64(s.FinalRegular)
	}
	return float64(n), strconv.FormatInt(n, 10), nil
}

// empty says why the threshold's distribution has no samples.
func (t Threshold) empty(s aggregate.Summary, st *aggregate.Step) string {
	disrupted, degraded := 0, 0
	for _, x := range s.Steps {
		if st == nil || x.Index == st.Index {
			disrupted += x.Disrupted
			degraded += x.Degraded
		}
	}
	in := ""
	if st != nil {
		in = fmt.Sprintf(" in step '%s''s window", st.Name)
	}
	switch {
	case t.Metric == "time_to_signed_in" && st != nil && disrupted == 0:
		return fmt.Sprintf("step '%s' disrupted no client", st.Name)
	case t.Metric == "time_to_signed_in" && disrupted == 0:
		return "no step disrupted any client"
	case t.Metric == "time_to_signed_in":
		return fmt.Sprintf("none of the %d disrupted clients signed in again%s", disrupted, in)
	case t.Metric == "time_to_service" && st != nil && degraded == 0:
		return fmt.Sprintf("step '%s' degraded no client", st.Name)
	case t.Metric == "time_to_service" && degraded == 0:
		return "no step degraded any client"
	case t.Metric == "time_to_service":
		return fmt.Sprintf("none of the %d degraded clients regained full service%s", degraded, in)
	case t.Metric == "register_latency":
		return "no REGISTER was answered" + in
	case t.Metric == "initial_sign_in":
		return "no client signed in"
	}
	return "the load recorded no response" + in
}
