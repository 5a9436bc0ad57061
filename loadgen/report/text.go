// Package report renders a load-test run's aggregate.Summary for people: a plain-text summary
// for the terminal (Text) and one self-contained HTML file with charts (HTML).
package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/fepool/fepool/loadgen/aggregate"
)

// none stands for a value that does not exist (an empty distribution, a step without window).
const none = "-"

// fmtMs shows milliseconds as a short duration, or none for a value that is not a number.
func fmtMs(ms float64) string {
	if math.IsNaN(ms) || math.IsInf(ms, 0) {
		return none
	}
	return aggregate.FormatMs(ms)
}

// answers lists contact-change outcomes by code ("0": no answer).
func answers(m map[string]int64) string {
	codes := make([]string, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	var parts []string
	for _, c := range codes {
		name := c
		if c == "0" {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, m[c]))
	}
	return strings.Join(parts, ", ")
}

// withCarried shows a never-recovered count with the clients carried over into the next step.
func withCarried(never, carried int) string {
	if carried == 0 {
		return strconv.Itoa(never)
	}
	return fmt.Sprintf("%d (+%d carried over)", never, carried)
}

// fmtSeconds shows seconds as a short duration.
func fmtSeconds(s float64) string { return fmtMs(s * 1000) }

// quantiles are the columns of a distribution in the reports.
var quantiles = []string{"p50", "p90", "p99", "p99.9", "max"}

// dq is a distribution's value at a quantile, or none when it is empty.
func dq(d aggregate.Dist, q string) string {
	if d.Count == 0 {
		return none
	}
	v, ok := d.Quantile(q)
	if !ok {
		return none
	}
	return fmtMs(v)
}

// lagNote says what the recorder lag depended on: the load's scheduling, and what to do when
// it exceeded a millisecond.
func lagNote(s aggregate.Summary) string {
	if s.Realtime {
		return " (real-time scheduling)"
	}
	if p99, ok := s.RecorderLag.Quantile("p99"); ok && p99 > 1 {
		return " (the load waited for a CPU or for its garbage collector: fepool load --realtime puts it ahead of the emulator)"
	}
	return ""
}

// measured says whether a step opened a measurement window (a disruptive step that did not fail).
func measured(st aggregate.Step) bool { return st.Measured }

// codes returns the response codes in numeric order.
func codes(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b string) int {
		x, errA := strconv.Atoi(a)
		y, errB := strconv.Atoi(b)
		if errA == nil && errB == nil && x != y {
			return x - y
		}
		return strings.Compare(a, b)
	})
	return ks
}

// shards shows which shards a summary covers.
func shards(s aggregate.Summary) string {
	if len(s.Shards) == 0 {
		return none
	}
	parts := make([]string, len(s.Shards))
	for i, sh := range s.Shards {
		parts[i] = strconv.Itoa(sh)
	}
	return fmt.Sprintf("%s of %d", strings.Join(parts, ","), s.Of)
}

// startTime shows the run's start in UTC.
func startTime(t time.Time) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format("2006-01-02 15:04:05 MST")
}

// passed tells whether every verdict passed (false when there is none).
func passed(vs []aggregate.Verdict) bool {
	for _, v := range vs {
		if !v.Pass {
			return false
		}
	}
	return len(vs) > 0
}

// clean makes a string from the summary safe for a terminal and a tab-separated table: control
// characters (escape sequences, tabs, newlines) become spaces or U+FFFD.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return unicode.ReplacementChar
		}
		return r
	}, s)
}

// Text writes the final summary of a run for a terminal: the run, a table of the steps, the
// overall latencies, the responses by code, the recorder lag and the verdicts.
func Text(w io.Writer, s aggregate.Summary) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }

	name := clean(s.Scenario)
	if s.Description != "" {
		name += " — " + clean(s.Description)
	}
	line("scenario:", name)
	line("start:", startTime(s.Start))
	line("duration:", fmtSeconds(s.Seconds))
	signedIn := fmt.Sprintf("never signed in %d", s.NeverSignedIn)
	if s.AllSignedInAt > 0 {
		signedIn = "all signed in by " + fmtSeconds(s.AllSignedInAt)
	}
	line("clients:", fmt.Sprintf("%d (started %d, %s; shards %s)", s.Clients, s.Started, signedIn, shards(s)))
	line("end:", clean(s.EndReason))
	if s.Error != "" {
		line("error:", clean(s.Error))
	}
	if s.Truncated {
		line("truncated:", "yes: a results stream was cut short, the figures cover what was recorded")
	}
	line("final:", fmt.Sprintf("regular %d, resiliency %d, signed out %d", s.FinalRegular, s.FinalResiliency, s.FinalSignedOut))
	tw.Flush()

	if len(s.Steps) > 0 {
		fmt.Fprintln(w)
		line("#", "STEP", "ACTION", "AT", "DISRUPTED", "SIGNED IN p50", "p99", "max", "NEVER RECOVERED",
			"DEGRADED", "SERVICE p50", "p99", "max", "NEVER REGAINED")
		for _, st := range s.Steps {
			cells := []string{strconv.Itoa(st.Index), clean(st.Name), clean(st.Action), "+" + fmtSeconds(st.At)}
			switch {
			case measured(st):
				cells = append(cells, strconv.Itoa(st.Disrupted),
					dq(st.TimeToSignedIn, "p50"), dq(st.TimeToSignedIn, "p99"), dq(st.TimeToSignedIn, "max"),
					withCarried(st.NeverRecovered, st.CarriedOver), strconv.Itoa(st.Degraded),
					dq(st.TimeToService, "p50"), dq(st.TimeToService, "p99"), dq(st.TimeToService, "max"),
					withCarried(st.NeverRegainedService, st.ServiceCarriedOver))
			case st.Err != "":
				cells = append(cells, clean(stepErr(st.Err)))
			default:
				cells = append(cells, none, none, none, none, none, none, none, none, none, none)
			}
			line(cells...)
		}
		tw.Flush()
	}

	for _, st := range s.Steps {
		if len(st.ContactChanges) > 0 {
			fmt.Fprintf(w, "contact changes in step %d %s: %s\n", st.Index, clean(st.Name), answers(st.ContactChanges))
		}
	}
	fmt.Fprintln(w)
	line("LATENCY", "COUNT", "p50", "p90", "p99", "p99.9", "max")
	for _, r := range []struct {
		name string
		d    aggregate.Dist
	}{
		{"initial sign-in", s.InitialSignIn},
		{"REGISTER (per attempt)", s.RegisterLatency},
		{"time to signed in (all steps)", s.TimeToSignedIn},
		{"time to service (all steps)", s.TimeToService},
	} {
		cells := []string{r.name, strconv.FormatInt(r.d.Count, 10)}
		for _, q := range quantiles {
			cells = append(cells, dq(r.d, q))
		}
		line(cells...)
	}
	tw.Flush()
	fmt.Fprintf(w, "attempts %d, losses %d, never recovered %d, never regained service %d\n",
		s.Attempts, s.Losses, s.NeverRecovered, s.NeverRegainedService)

	var rs []string
	for _, c := range codes(s.Responses) {
		rs = append(rs, fmt.Sprintf("%s: %d", clean(c), s.Responses[c]))
	}
	if len(rs) == 0 {
		rs = append(rs, "none")
	}
	fmt.Fprintf(w, "responses: %s\n", strings.Join(rs, ", "))
	fmt.Fprintf(w, "recorder lag: p99 %s, max %s%s\n", dq(s.RecorderLag, "p99"), dq(s.RecorderLag, "max"), lagNote(s))

	switch {
	case s.NotJudged != "" && len(s.Thresholds) > 0:
		// never a verdict on a run that did not do what its scenario planned
		fmt.Fprintf(w, "\nthresholds NOT JUDGED: %s\n", clean(s.NotJudged))
		for _, t := range s.Thresholds {
			fmt.Fprintf(w, "  %s\n", clean(t))
		}
	case len(s.Verdicts) > 0:
		fmt.Fprintln(w)
		for _, v := range s.Verdicts {
			verdict := "FAIL"
			if v.Pass {
				verdict = "PASS"
			}
			l := fmt.Sprintf("%s %s (%s)", verdict, clean(v.Threshold), clean(v.Actual))
			if v.Err != "" {
				l += ": " + clean(v.Err)
			}
			fmt.Fprintln(w, l)
		}
		if passed(s.Verdicts) {
			fmt.Fprintln(w, "all thresholds passed")
		} else {
			fmt.Fprintln(w, "some thresholds FAILED")
		}
	case len(s.Thresholds) > 0:
		fmt.Fprintf(w, "\nthresholds not judged: %s\n", clean(strings.Join(s.Thresholds, "; ")))
	}
}

// stepErr is what a step's error says in a report: a step the run's end cut short says so (its
// error starts "cut short: "), any other failed.
func stepErr(err string) string {
	if strings.HasPrefix(err, "cut short: ") {
		return err
	}
	return "failed: " + err
}
