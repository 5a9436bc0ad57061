package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fepool/fepool/loadgen/aggregate"
	"github.com/fepool/fepool/loadgen/record"
)

const ms = int64(time.Millisecond)

// run builds a realistic Summary the way `fepool report` does: a results stream written with
// record.Writer, read back into an aggregate.Aggregator. Four clients sign in, a wait, then a
// disruptive step ("crash pool A") loses three of them: one comes back in resiliency then
// regular mode, one straight to regular, one never.
func run(t *testing.T, scenario, stepName string) aggregate.Summary {
	t.Helper()
	var buf bytes.Buffer
	w, err := record.NewWriter(&buf, record.Header{
		Start: time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC), Scenario: scenario, Description: "crash the primary pool under load",
		Clients: 4, Shard: 0, Shards: 1, Thresholds: []string{"p99(time_to_service) < 5s", "never_recovered == 0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(e record.Event) {
		if err := w.Event(e); err != nil {
			t.Fatal(err)
		}
	}
	register := func(c int, at int64, code int, rtt int64, mode string) {
		ev(record.Event{T: at, C: c, E: record.Attempt})
		ev(record.Event{T: at + rtt, C: c, E: record.Response, Code: code, RTT: rtt, Lag: 200 * int64(time.Microsecond)})
		if code == 200 {
			ev(record.Event{T: at + rtt, C: c, E: record.Registered, Mode: mode})
		}
	}
	for c := range 4 {
		t0 := int64(c) * 10 * ms
		ev(record.Event{T: t0, C: c, E: record.Start})
		register(c, t0+ms, 401, 3*ms, "")
		register(c, t0+5*ms, 200, 12*ms+int64(c)*ms, "regular")
	}
	if err := w.Step(record.Step{T: 1000 * ms, Index: 0, Name: "settle", Action: "wait", Duration: 2000 * ms}); err != nil {
		t.Fatal(err)
	}
	if err := w.Step(record.Step{T: 3000 * ms, Index: 1, Name: stepName, Action: "crash_pool", Disruptive: true, Duration: 40 * ms}); err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		ev(record.Event{T: 3100*ms + int64(c)*ms, C: c, E: record.Lost, Reason: "connection reset"})
		register(c, 3200*ms, 503, 2*ms, "")
	}
	register(0, 4000*ms, 200, 20*ms, "resiliency")
	register(0, 6000*ms, 200, 15*ms, "regular")
	register(1, 5000*ms, 200, 18*ms, "regular")
	ev(record.Event{T: 9000 * ms, C: 3, E: record.Notified})
	if err := w.Close(record.End{T: 10000 * ms, Reason: "scenario completed"}); err != nil {
		t.Fatal(err)
	}

	a := aggregate.New()
	truncated, err := record.Read(&buf, a.Handler())
	if err != nil {
		t.Fatal(err)
	}
	s := a.Summary(truncated)
	s.Verdicts = []aggregate.Verdict{
		{Threshold: "p99(time_to_service) < 5s", Actual: "3.02s", Pass: true},
		{Threshold: "never_recovered == 0", Actual: "1", Pass: false},
	}
	return s
}

func renderHTML(t *testing.T, s aggregate.Summary) string {
	t.Helper()
	var b strings.Builder
	if err := HTML(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// specs decodes the charts' data of a rendered page (it must be valid JSON).
func specs(t *testing.T, page string) []jsChart {
	t.Helper()
	const prefix = "var specs = "
	i := strings.Index(page, prefix)
	if i < 0 {
		t.Fatal("no charts' data in the page")
	}
	rest := page[i+len(prefix):]
	j := strings.Index(rest, ";\n")
	if j < 0 {
		t.Fatal("the charts' data does not end")
	}
	var out []jsChart
	if err := json.Unmarshal([]byte(rest[:j]), &out); err != nil {
		t.Fatalf("the charts' data is not JSON: %v", err)
	}
	return out
}

var scriptSrc = regexp.MustCompile(`(?i)<script[^>]*\bsrc\s*=`)

func TestHTML(t *testing.T) {
	s := run(t, "failover-soak", "crash pool A")
	if s.Steps[1].Disrupted != 3 || s.Steps[1].NeverRecovered != 1 {
		t.Fatalf("unexpected summary: %+v", s.Steps[1])
	}
	page := renderHTML(t, s)

	for _, want := range []string{
		"<!DOCTYPE html>", "failover-soak", "crash pool A", "settle", "crash_pool", "scenario completed",
		"2025-03-14 09:26:53 UTC", "p99(time_to_service) &lt; 5s", "never_recovered == 0",
		`class="pass">PASS`, `class="fail">FAIL`, `<span class="badge fail">FAIL</span>`,
		"Initial sign-in", "REGISTER latency", "Recorder lag", "<td>503</td>", "<td>401</td>",
		"echarts.init(", `id="chart-states"`, `id="chart-recovery"`, `id="chart-latency"`, `id="chart-rates"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// self-contained: the library is inlined, nothing is loaded from elsewhere
	if !strings.Contains(page, echartsJS) {
		t.Error("the ECharts library is not inlined")
	}
	if m := scriptSrc.FindString(page); m != "" {
		t.Errorf("the page loads a script: %q", m)
	}
	for _, bad := range []string{"go-echarts.github.io", "<link ", "cdn."} {
		if strings.Contains(page, bad) {
			t.Errorf("the page refers to %q", bad)
		}
	}

	cs := specs(t, page)
	if len(cs) != 4 {
		t.Fatalf("%d charts, want 4", len(cs))
	}
	states, _ := json.Marshal(cs[0].Option)
	for _, want := range []string{`"name":"regular"`, `"name":"resiliency"`, `"name":"signed out"`,
		`{"value":[4,4,3]}`, `{"value":[4,1,0]}`, `{"value":[4,1,1]}`, // at 4s: 1 regular, 0 resiliency, 3 signed out, stacked
		`"markLine"`, `"name":"crash pool A","xAxis":3`, `"name":"settle","xAxis":1`} {
		if !strings.Contains(string(states), want) {
			t.Errorf("the states chart lacks %s: %s", want, states)
		}
	}
	recovery, _ := json.Marshal(cs[1].Option)
	for _, want := range []string{"#1 crash pool A: time to signed in", "#1 crash pool A: time to service", `"type":"log"`} {
		if !strings.Contains(string(recovery), want) {
			t.Errorf("the recovery chart lacks %s", want)
		}
	}
	rates, _ := json.Marshal(cs[3].Option)
	for _, want := range []string{`"name":"attempts"`, `"name":"2xx"`, `"name":"4xx"`, `"name":"5xx"`, `"name":"crash pool A"`} {
		if !strings.Contains(string(rates), want) {
			t.Errorf("the rates chart lacks %s", want)
		}
	}
	if strings.Contains(string(rates), `"name":"6xx"`) {
		t.Error("the rates chart shows a class without responses")
	}
}

func TestHTMLEscapes(t *testing.T) {
	s := run(t, `<script>alert("scenario")</script>`, `</script><script>alert('step')</script>`)
	s.Description = `<img src=x onerror=alert(1)>`
	s.Error = `<b>boom</b> & more`
	s.Verdicts[0].Threshold = `<i>p99</i>`
	page := renderHTML(t, s)
	doc := strings.Replace(page, echartsJS, "", 1) // the library's own markup is not the summary's
	for _, bad := range []string{"<script>alert", "</script><script>", "<img", "<b>boom", "<i>p99"} {
		if strings.Contains(doc, bad) {
			t.Errorf("the page holds unescaped %q", bad)
		}
	}
	if n := strings.Count(strings.ToLower(doc), "<script"); n != 2 {
		t.Errorf("%d <script> elements, want 2 (the library and the charts)", n)
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;scenario&#34;)&lt;/script&gt;", "&lt;b&gt;boom&lt;/b&gt; &amp; more", "&lt;img src=x"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks the escaped %q", want)
		}
	}
	// the step's name reaches the charts intact, as data
	cs := specs(t, page)
	b, _ := json.Marshal(cs[0].Option)
	var opt struct {
		Series []struct {
			MarkLine struct {
				Data []struct{ Name string }
			} `json:"markLine"`
		}
	}
	if err := json.Unmarshal(b, &opt); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, se := range opt.Series {
		for _, d := range se.MarkLine.Data {
			found = found || d.Name == `</script><script>alert('step')</script>`
		}
	}
	if !found {
		t.Error("the step's name did not reach the chart's markers")
	}
}

func TestHTMLEmptyAndLong(t *testing.T) {
	// an empty summary (a stream with only a header) renders
	page := renderHTML(t, aggregate.New().Summary(true))
	if !strings.Contains(page, "No steps.") || !strings.Contains(page, "No responses.") || len(specs(t, page)) != 3 {
		t.Error("the empty summary's page is not as expected")
	}

	// a long soak's series are bucketed, and the bucket keeps the worst second
	n := 3*maxPoints + 7
	s := aggregate.Summary{Scenario: "soak", Seconds: float64(n)}
	for i := range n {
		out := 0
		if i == 5000 {
			out = 40
		}
		s.Series.Regular = append(s.Series.Regular, 100-out)
		s.Series.Resiliency = append(s.Series.Resiliency, 0)
		s.Series.SignedOut = append(s.Series.SignedOut, out)
		s.Series.Attempts = append(s.Series.Attempts, 10)
	}
	s.Series.Responses = map[string][]int{"2xx": s.Series.Attempts}
	cs := specs(t, renderHTML(t, s))
	var opt struct {
		Series []struct {
			Name string
			Data []struct{ Value []float64 }
		}
	}
	b, _ := json.Marshal(cs[0].Option)
	if err := json.Unmarshal(b, &opt); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for _, se := range opt.Series {
		if len(se.Data) > maxPoints+1 {
			t.Errorf("series %s has %d points", se.Name, len(se.Data))
		}
		if se.Name == "signed out" {
			for _, d := range se.Data {
				worst = max(worst, d.Value[2])
			}
		}
	}
	if worst != 40 {
		t.Errorf("the bucketed states lost the worst second: %v signed out at most", worst)
	}
}

func TestText(t *testing.T) {
	s := run(t, "failover-soak", "crash pool A")
	var b strings.Builder
	Text(&b, s)
	out := b.String()
	for _, want := range []string{
		"scenario:", "failover-soak — crash the primary pool under load", "start:", "2025-03-14 09:26:53 UTC",
		"duration:", "10s", "clients:", "4 (started 4, all signed in by 50ms; shards 0 of 1)", "end:", "scenario completed",
		"final:", "regular 3, resiliency 0, signed out 1",
		"SIGNED IN p50", "NEVER RECOVERED", "settle", "crash pool A", "crash_pool", "+3s",
		"initial sign-in", "REGISTER (per attempt)", "time to service (all steps)",
		"responses: 200: 7, 401: 4, 503: 3", "recorder lag: p99 200µs, max 200µs",
		"PASS p99(time_to_service) < 5s (3.02s)", "FAIL never_recovered == 0 (1)", "some thresholds FAILED",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the text lacks %q:\n%s", want, out)
		}
	}
	// the disruptive step's row: 3 disrupted; time to signed in p50 1.02s (client 0, registered
	// in resiliency mode at 4.02s) and max 2.02s (client 1); 1 never recovered (client 2)
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "crash pool A") {
			row = l
		}
	}
	if f := strings.Fields(row); len(f) < 16 || f[6] != "3" || f[7] != "1.02s" || f[9] != "2.02s" || f[10] != "1" || f[15] != "1" {
		t.Errorf("the step's row is %q (fields %q)", row, f)
	}
	t.Log("\n" + out)
}

// The recorder lag line says what the lag depended on, and what to do when it was over 1 ms.
func TestTextLagNote(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p99      float64
		realtime bool
		want     string
	}{
		{"low", 0.2, false, "recorder lag: p99 200µs, max 200µs\n"},
		{"high", 4, false, "recorder lag: p99 4ms, max 4ms (the load waited for a CPU or for its garbage collector: fepool load --realtime puts it ahead of the emulator)\n"},
		{"real-time", 4, true, "recorder lag: p99 4ms, max 4ms (real-time scheduling)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := aggregate.Summary{Realtime: tc.realtime, RecorderLag: aggregate.Dist{Count: 10, P99: tc.p99, Max: tc.p99}}
			var b strings.Builder
			Text(&b, s)
			if !strings.Contains(b.String(), tc.want) {
				t.Errorf("want %q in:\n%s", tc.want, b.String())
			}
		})
	}
}

func TestTextCleansControls(t *testing.T) {
	s := aggregate.Summary{Scenario: "a\x1b[31mred\tb\nc", Steps: []aggregate.Step{{Name: "x\ty", Action: "wait"}}}
	var b strings.Builder
	Text(&b, s)
	if strings.ContainsRune(b.String(), '\x1b') || strings.Contains(b.String(), "x\ty") {
		t.Errorf("control characters reached the terminal: %q", b.String())
	}
}

func TestFmtMs(t *testing.T) {
	for _, c := range []struct {
		ms   float64
		want string
	}{
		{0.85, "850µs"}, {12.34, "12.3ms"}, {4210, "4.21s"}, {123000, "2m3s"}, {1.5, "1.5ms"}, {0, "0s"},
	} {
		if got := fmtMs(c.ms); got != c.want {
			t.Errorf("fmtMs(%v) = %q, want %q", c.ms, got, c.want)
		}
	}
}

// The inlined library must not end its <script> element early, and stays a reasonable size.
func TestEmbeddedLibrary(t *testing.T) {
	lower := strings.ToLower(echartsJS)
	for _, bad := range []string{"</script", "<!--", "<script"} {
		if strings.Contains(lower, bad) {
			t.Errorf("echarts.min.js holds %q", bad)
		}
	}
	if len(echartsJS) < 500<<10 || len(echartsJS) > 1200<<10 {
		t.Errorf("echarts.min.js is %d bytes", len(echartsJS))
	}
	if !strings.Contains(echartsJS, `"`+EchartsVersion+`"`) {
		t.Errorf("echarts.min.js is not version %s", EchartsVersion)
	}
}

// A run whose thresholds were not judged says so and why, in both reports, and never that they
// passed, even were passing verdicts left in the summary.
func TestNotJudged(t *testing.T) {
	s := run(t, "failover-soak", "crash pool A")
	s.Completed, s.EndReason = false, "interrupted: interrupt signal received"
	s.NotJudged = "the run did not complete: interrupted: interrupt signal received"
	s.Verdicts[1].Pass = true // every verdict passes: still no pass

	var b strings.Builder
	Text(&b, s)
	out := b.String()
	if !strings.Contains(out, "thresholds NOT JUDGED: the run did not complete: interrupted: interrupt signal received\n  p99(time_to_service) < 5s\n  never_recovered == 0\n") {
		t.Errorf("the text does not say the thresholds were not judged:\n%s", out)
	}
	for _, bad := range []string{"all thresholds passed", "PASS ", "FAIL "} {
		if strings.Contains(out, bad) {
			t.Errorf("the text of a run not judged holds %q:\n%s", bad, out)
		}
	}

	page := renderHTML(t, s)
	if !strings.Contains(page, `<span class="badge notjudged">NOT JUDGED</span> the run did not complete: interrupted: interrupt signal received`) ||
		!strings.Contains(page, `<p class="muted">Not judged: the run did not complete`) {
		t.Error("the page does not say the thresholds were not judged")
	}
	for _, bad := range []string{"every threshold passed", `class="pass">PASS`, `<span class="badge pass">`} {
		if strings.Contains(page, bad) {
			t.Errorf("the page of a run not judged holds %q", bad)
		}
	}
}

func TestStepErr(t *testing.T) {
	for err, want := range map[string]string{
		"wait all_regular timed out after 5m0s": "failed: wait all_regular timed out after 5m0s",
		"cut short: interrupted":                "cut short: interrupted",
	} {
		if got := stepErr(err); got != want {
			t.Errorf("stepErr(%q) = %q, want %q", err, got, want)
		}
	}
}
