package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/fepool/fepool/loadgen/aggregate"
)

// echartsJS is Apache ECharts 5.4.3 (the version go-echarts v2.6 targets), dist/echarts.min.js
// of the npm package echarts@5.4.3, unmodified; Apache-2.0, see assets/LICENSE. It is inlined
// into every HTML report, which therefore needs no network to render.
//
//go:embed assets/echarts.min.js
var echartsJS string

// EchartsVersion is the version of the ECharts library inlined into HTML reports.
const EchartsVersion = "5.4.3"

// maxPoints bounds the points of a time series in a chart: longer runs are bucketed.
const maxPoints = 3600

// Colours of the charts.
const (
	colRegular    = "#3ba272"
	colResiliency = "#fac858"
	colSignedOut  = "#ee6666"
	colDisruptive = "#c23531"
	colStep       = "#888888"
)

var classColours = map[string]string{"2xx": "#3ba272", "3xx": "#73c0de", "4xx": "#fc8452", "5xx": "#ee6666", "6xx": "#9a60b4"}

// jsChart is one chart for the page's script: its element and its ECharts option, built with
// go-echarts. Kind selects the formatters the script adds ("states", "time" or "cdf").
type jsChart struct {
	ID     string         `json:"id"`
	Kind   string         `json:"kind"`
	Option map[string]any `json:"option"`
}

// chartBox is a chart's place on the page.
type chartBox struct {
	ID, Title, Note string
}

type stepRow struct {
	aggregate.Step
	At, Took, Window  string
	Measured          bool
	SignedIn, Service []string
}

type distRow struct {
	Name  string
	Count int64
	Mean  string
	Qs    []string
}

type codeRow struct {
	Code  string
	Count int64
}

type page struct {
	S                    aggregate.Summary
	Start, Duration      string
	Shards               string
	Steps                []stepRow
	Dists                []distRow
	Codes                []codeRow
	Quantiles            []string
	Verdicts             bool
	Passed               bool
	Boxes                []chartBox
	Charts               []jsChart
	EchartsJS            template.JS
	EchartsVersion       string
	StateNote, RatesNote string
}

// HTML writes a run's report as one self-contained HTML file: a summary of the run, its steps,
// overall figures and verdicts, then charts of the clients' states, the latency CDFs and the
// attempts and responses per second. The ECharts library is inlined and the charts' options
// are data in the page, so it renders without network access.
func HTML(w io.Writer, s aggregate.Summary) error {
	p := page{
		S: s, Start: startTime(s.Start), Duration: fmtSeconds(s.Seconds), Shards: shards(s),
		Quantiles: quantiles, Verdicts: len(s.Verdicts) > 0 && s.NotJudged == "", Passed: passed(s.Verdicts) && s.NotJudged == "",
		EchartsJS: template.JS(echartsJS), EchartsVersion: EchartsVersion,
	}
	qs := func(d aggregate.Dist) []string {
		out := make([]string, len(quantiles))
		for i, q := range quantiles {
			out[i] = dq(d, q)
		}
		return out
	}
	for _, st := range s.Steps {
		r := stepRow{Step: st, At: "+" + fmtSeconds(st.At), Took: fmtSeconds(st.Took), Measured: measured(st)}
		if r.Measured {
			r.Window = fmtSeconds(st.Window)
			r.SignedIn, r.Service = qs(st.TimeToSignedIn), qs(st.TimeToService)
		}
		p.Steps = append(p.Steps, r)
	}
	for _, r := range []struct {
		name string
		d    aggregate.Dist
	}{
		{"Initial sign-in (start to first registered)", s.InitialSignIn},
		{"REGISTER latency (per attempt)", s.RegisterLatency},
		{"Time to signed in (all disruptive steps)", s.TimeToSignedIn},
		{"Time to service (all disruptive steps)", s.TimeToService},
		{"Recorder lag", s.RecorderLag},
	} {
		mean := none
		if r.d.Count > 0 {
			mean = fmtMs(r.d.Mean)
		}
		p.Dists = append(p.Dists, distRow{Name: r.name, Count: r.d.Count, Mean: mean, Qs: qs(r.d)})
	}
	for _, c := range codes(s.Responses) {
		p.Codes = append(p.Codes, codeRow{Code: c, Count: s.Responses[c]})
	}

	k := bucketSize(max(len(s.Series.Regular), len(s.Series.Attempts)))
	p.StateNote = "Clients by state at the end of each second, stacked."
	p.RatesNote = "Attempts and responses by class in each second."
	if k > 1 {
		p.StateNote = fmt.Sprintf("Clients by state, stacked: for each %d s, the second with the fewest clients in regular mode.", k)
		p.RatesNote = fmt.Sprintf("Attempts and responses by class per second, averaged over %d s.", k)
	}
	p.StateNote += " Vertical lines mark the scenario's steps (red dashed: disruptive)."
	p.RatesNote += " Vertical lines mark the scenario's steps (red dashed: disruptive)."
	add := func(id, title, note, kind string, option map[string]any) {
		p.Boxes = append(p.Boxes, chartBox{ID: id, Title: title, Note: note})
		p.Charts = append(p.Charts, jsChart{ID: id, Kind: kind, Option: option})
	}
	add("chart-states", "Clients by state", p.StateNote, "states", statesChart(s, k))
	if o, ok := recoveryChart(s); ok {
		add("chart-recovery", "Recovery after disruptive steps (CDF)",
			"Time from each disruptive step to signed in again (solid) and to full service, regular mode (dashed), per step. "+
				"x: latency in ms, log scale; y: percentile of the step's disrupted (or degraded) clients.", "cdf", o)
	}
	add("chart-latency", "Initial sign-in and REGISTER latency (CDF)",
		"Initial sign-in: from a client's start to its first registration. REGISTER: each attempt's response time. "+
			"x: latency in ms, log scale; y: percentile.", "cdf", latencyChart(s))
	add("chart-rates", "Attempts and responses per second", p.RatesNote, "time", ratesChart(s, k))

	return pageTemplate.Execute(w, p)
}

// bucketSize is how many seconds one point of a time series covers for n seconds of run.
func bucketSize(n int) int {
	if n <= maxPoints {
		return 1
	}
	return (n + maxPoints - 1) / maxPoints
}

// finite keeps a chart's numbers JSON-encodable.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func point(x, y float64) opts.LineData {
	return opts.LineData{Value: []float64{finite(x), finite(y)}}
}

// timeAxes are the options of a chart over the run's seconds.
func timeAxes(yName string) []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithAnimation(false),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "0"}),
		charts.WithGridOpts(opts.Grid{Left: "20", Right: "40", Top: "40", Bottom: "60", ContainLabel: opts.Bool(true)}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "seconds since start", NameLocation: "middle", NameGap: 25, Min: 0, Max: "dataMax"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: yName, MinInterval: 1, AxisLabel: &opts.AxisLabel{Show: opts.Bool(true)}}),
		charts.WithDataZoomOpts(opts.DataZoom{Type: "inside", XAxisIndex: 0, FilterMode: "none"},
			opts.DataZoom{Type: "slider", XAxisIndex: 0, FilterMode: "none"}),
	}
}

// markLine is one vertical line at a step.
type markLine struct {
	Name      string          `json:"name"`
	XAxis     float64         `json:"xAxis"`
	LineStyle *opts.LineStyle `json:"lineStyle,omitempty"`
}

// addStepMarkers adds a series "steps" holding a vertical line per step, labelled with its name.
func addStepMarkers(c *charts.Line, steps []aggregate.Step) {
	if len(steps) == 0 {
		return
	}
	var lines []any
	for _, st := range steps {
		style := &opts.LineStyle{Color: colStep, Type: "dotted", Width: 1}
		if st.Disruptive {
			style = &opts.LineStyle{Color: colDisruptive, Type: "dashed", Width: 1.5}
		}
		lines = append(lines, markLine{Name: st.Name, XAxis: finite(st.At), LineStyle: style})
	}
	c.AddSeries("steps", []opts.LineData{}, charts.WithSeriesOpts(func(s *charts.SingleSeries) {
		s.Color = colDisruptive
		s.MarkLines = &opts.MarkLines{Data: lines, MarkLineStyle: opts.MarkLineStyle{
			Symbol: []string{"none", "none"},
			Label: &opts.Label{Show: opts.Bool(true), Formatter: "{b}", Position: "insideEndTop", FontSize: 11,
				Color: "#222", BackgroundColor: "rgba(255,255,255,0.8)"},
		}}
	}))
}

// statesChart is the clients by state over time, k seconds a point. The areas are stacked here
// rather than by ECharts, which stacks the first value dimension (x) when both axes are values:
// each point is [x, top of the area, the state's count], and the areas are drawn from the top
// one down so that each covers the one below it.
func statesChart(s aggregate.Summary, k int) map[string]any {
	c := charts.NewLine()
	c.SetGlobalOptions(timeAxes("clients")...)
	c.SetGlobalOptions(charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "0",
		Data: []string{"regular", "resiliency", "signed out", "steps"}}))
	sr := s.Series
	n := min(len(sr.Regular), len(sr.Resiliency), len(sr.SignedOut))
	var reg, res, out []opts.LineData
	last := -1.0
	if n > 0 { // nobody is signed in before the start
		zero := opts.LineData{Value: []float64{0, 0, 0}}
		reg, res, out = append(reg, zero), append(res, zero), append(out, zero)
		last = 0
	}
	for b := 0; b < n; b += k {
		// the second of the bucket with the fewest clients in regular mode (ties: the last)
		j := b
		for i := b; i < min(b+k, n); i++ {
			if sr.SignedOut[i]+sr.Resiliency[i] >= sr.SignedOut[j]+sr.Resiliency[j] {
				j = i
			}
		}
		x := float64(j + 1) // the counts are taken at the end of the second
		if s.Seconds > 0 {
			x = min(x, s.Seconds)
		}
		if x <= last {
			continue
		}
		last = x
		r, e, o := float64(sr.Regular[j]), float64(sr.Resiliency[j]), float64(sr.SignedOut[j])
		reg = append(reg, opts.LineData{Value: []float64{x, r, r}})
		res = append(res, opts.LineData{Value: []float64{x, r + e, e}})
		out = append(out, opts.LineData{Value: []float64{x, r + e + o, o}})
	}
	for _, se := range []struct {
		name, colour string
		data         []opts.LineData
	}{{"signed out", colSignedOut, out}, {"resiliency", colResiliency, res}, {"regular", colRegular, reg}} {
		c.AddSeries(se.name, se.data,
			charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}),
			charts.WithAreaStyleOpts(opts.AreaStyle{Opacity: opts.Float(1)}),
			charts.WithLineStyleOpts(opts.LineStyle{Width: 1}),
			charts.WithItemStyleOpts(opts.ItemStyle{Color: se.colour}))
	}
	addStepMarkers(c, s.Steps)
	c.Validate()
	return c.JSON()
}

// ratesChart is the attempts and responses by class per second, averaged over k seconds.
func ratesChart(s aggregate.Summary, k int) map[string]any {
	c := charts.NewLine()
	c.SetGlobalOptions(timeAxes("per second")...)
	series := func(name, colour string, v []int) {
		var data []opts.LineData
		for b := 0; b < len(v); b += k {
			e := min(b+k, len(v))
			sum := 0
			for _, x := range v[b:e] {
				sum += x
			}
			data = append(data, point(float64(b), float64(sum)/float64(e-b)))
		}
		if len(data) > 0 { // the last value lasts until the end of its bucket
			data = append(data, point(float64(len(v)), data[len(data)-1].Value.([]float64)[1]))
		}
		c.AddSeries(name, data,
			charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}),
			charts.WithLineStyleOpts(opts.LineStyle{Width: 1.5}),
			charts.WithItemStyleOpts(opts.ItemStyle{Color: colour}))
	}
	series("attempts", "#5470c6", s.Series.Attempts)
	for _, class := range []string{"2xx", "3xx", "4xx", "5xx", "6xx"} {
		v := s.Series.Responses[class]
		total := 0
		for _, x := range v {
			total += x
		}
		if total > 0 || class == "2xx" {
			series(class, classColours[class], v)
		}
	}
	addStepMarkers(c, s.Steps)
	c.Validate()
	return c.JSON()
}

// cdfAxes are the options of a CDF chart: x latency in ms (log), y percentile.
func cdfAxes() []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithAnimation(false),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Type: "scroll", Top: "0"}),
		charts.WithGridOpts(opts.Grid{Left: "20", Right: "40", Top: "40", Bottom: "30", ContainLabel: opts.Bool(true)}),
		charts.WithXAxisOpts(opts.XAxis{Type: "log", Name: "latency (ms, log scale)", NameLocation: "middle", NameGap: 25}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "percentile (%)", Min: 0, Max: 100, AxisLabel: &opts.AxisLabel{Show: opts.Bool(true)}}),
	}
}

// addCDF adds a distribution's CDF as a series (nothing for an empty one).
func addCDF(c *charts.Line, name, colour, lineType string, d aggregate.Dist) bool {
	var data []opts.LineData
	for _, pt := range d.CDF {
		if pt.Ms > 0 && !math.IsInf(pt.Ms, 0) && !math.IsNaN(pt.Ms) { // a log axis has no 0
			data = append(data, point(pt.Ms, pt.Percentile))
		}
	}
	if d.Count == 0 || len(data) == 0 {
		return false
	}
	style := opts.LineStyle{Width: 2, Type: lineType}
	var item opts.ItemStyle
	if colour != "" {
		style.Color, item.Color = colour, colour
	}
	c.AddSeries(name, data,
		charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(true), SymbolSize: 4}),
		charts.WithLineStyleOpts(style), charts.WithItemStyleOpts(item))
	return true
}

// palette colours a step's pair of CDFs.
var palette = []string{"#5470c6", "#ee6666", "#3ba272", "#fc8452", "#9a60b4", "#73c0de", "#fac858", "#ea7ccc", "#91cc75"}

// recoveryChart is the CDFs of time to signed in and to service per disruptive step.
func recoveryChart(s aggregate.Summary) (map[string]any, bool) {
	c := charts.NewLine()
	c.SetGlobalOptions(cdfAxes()...)
	drawn := false
	i := 0
	for _, st := range s.Steps {
		if !measured(st) {
			continue
		}
		colour := palette[i%len(palette)]
		i++
		label := "#" + strconv.Itoa(st.Index) + " " + st.Name
		a := addCDF(c, label+": time to signed in", colour, "solid", st.TimeToSignedIn)
		b := addCDF(c, label+": time to service", colour, "dashed", st.TimeToService)
		drawn = drawn || a || b
	}
	if !drawn {
		return nil, false
	}
	c.Validate()
	return c.JSON(), true
}

// latencyChart is the CDFs of the initial sign-in and the per-attempt REGISTER latency.
func latencyChart(s aggregate.Summary) map[string]any {
	c := charts.NewLine()
	c.SetGlobalOptions(cdfAxes()...)
	addCDF(c, "initial sign-in", "#5470c6", "solid", s.InitialSignIn)
	addCDF(c, "REGISTER (per attempt)", "#fc8452", "solid", s.RegisterLatency)
	c.Validate()
	return c.JSON()
}

// The page. Every value from the summary goes through html/template's contextual escaping; the
// charts' options are marshalled by it as JSON inside the script (so a "</script>" in a step's
// name stays a string). Only the ECharts library is inserted verbatim.
var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms": fmtMs, "secs": fmtSeconds, "stepErr": stepErr,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fepool load report: {{.S.Scenario}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em auto; max-width: 1600px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .2em .45em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 11em; }
.pass { background: #e3f6e3; color: #11661b; font-weight: bold; }
.fail { background: #fbe3e3; color: #a01515; font-weight: bold; }
.warn { color: #a01515; }
.notjudged { background: #fff1d6; color: #7a4b00; font-weight: bold; }
.muted { color: #777; }
.badge { display: inline-block; padding: .15em .6em; border-radius: .3em; }
.chart { width: 100%; height: 440px; }
.scroll { overflow-x: auto; }
.note { color: #555; font-size: .85em; margin: .2em 0 .4em; }
.desc { color: #444; }
</style>
</head>
<body>
<h1>fepool load report: {{.S.Scenario}}</h1>
{{with .S.Description}}<p class="desc">{{.}}</p>{{end}}
{{if and .S.NotJudged .S.Thresholds}}<p>Verdict: <span class="badge notjudged">NOT JUDGED</span> {{.S.NotJudged}}</p>
{{else if .Verdicts}}<p>Verdict: {{if .Passed}}<span class="badge pass">PASS</span> every threshold passed{{else}}<span class="badge fail">FAIL</span> some thresholds failed{{end}}</p>{{end}}

<h2>Run</h2>
<table class="kv">
<tr><th>Scenario</th><td>{{.S.Scenario}}</td></tr>
<tr><th>Start</th><td>{{.Start}}</td></tr>
<tr><th>Duration</th><td>{{.Duration}}</td></tr>
<tr><th>Clients</th><td>{{.S.Clients}} (started {{.S.Started}}, never signed in {{.S.NeverSignedIn}})</td></tr>
<tr><th>Shards</th><td>{{.Shards}}</td></tr>
<tr><th>End</th><td>{{.S.EndReason}}</td></tr>
{{with .S.Error}}<tr><th>Error</th><td class="warn">{{.}}</td></tr>{{end}}
{{if .S.Truncated}}<tr><th>Truncated</th><td class="warn">a results stream was cut short: the figures cover what was recorded</td></tr>{{end}}
<tr><th>Final states</th><td>regular {{.S.FinalRegular}}, resiliency {{.S.FinalResiliency}}, signed out {{.S.FinalSignedOut}}</td></tr>
</table>

<h2>Thresholds</h2>
{{if .Verdicts}}
<table>
<tr><th>Verdict</th><th>Threshold</th><th>Actual</th><th>Error</th></tr>
{{range .S.Verdicts}}<tr><td class="{{if .Pass}}pass{{else}}fail{{end}}">{{if .Pass}}PASS{{else}}FAIL{{end}}</td><td><code>{{.Threshold}}</code></td><td class="num">{{.Actual}}</td><td>{{.Err}}</td></tr>
{{end}}</table>
{{else if .S.Thresholds}}
<p class="muted">Not judged{{with .S.NotJudged}}: {{.}}{{end}}</p>
<ul>{{range .S.Thresholds}}<li><code>{{.}}</code></li>{{end}}</ul>
{{else}}
<p class="muted">No thresholds.</p>
{{end}}

<h2>Steps</h2>
{{if .Steps}}
<div class="scroll"><table>
<tr><th rowspan="2">#</th><th rowspan="2">Step</th><th rowspan="2">Action</th><th rowspan="2" class="num">At</th><th rowspan="2" class="num">Took</th><th rowspan="2" class="num">Window</th>
<th rowspan="2" class="num">Disrupted</th><th colspan="5">Time to signed in</th><th rowspan="2" class="num">Never recovered</th>
<th rowspan="2" class="num">Degraded</th><th colspan="5">Time to service</th><th rowspan="2" class="num">Never regained service</th>
<th rowspan="2" class="num">Attempts</th><th rowspan="2" class="num">Losses</th></tr>
<tr>{{range .Quantiles}}<th class="num">{{.}}</th>{{end}}{{range .Quantiles}}<th class="num">{{.}}</th>{{end}}</tr>
{{range .Steps}}<tr>
<td class="num">{{.Index}}</td><td>{{.Name}}{{with .Err}}<br><span class="warn">{{stepErr .}}</span>{{end}}</td><td>{{.Action}}{{if .Disruptive}} <span class="muted">(disruptive)</span>{{end}}</td>
<td class="num">{{.At}}</td><td class="num">{{.Took}}</td>
{{if .Measured}}<td class="num">{{.Window}}</td>
<td class="num">{{.Disrupted}}</td>{{range .SignedIn}}<td class="num">{{.}}</td>{{end}}<td class="num{{if .NeverRecovered}} fail{{end}}">{{.NeverRecovered}}{{with .CarriedOver}}<br><span class="muted">{{.}} carried over</span>{{end}}</td>
<td class="num">{{.Degraded}}</td>{{range .Service}}<td class="num">{{.}}</td>{{end}}<td class="num{{if .NeverRegainedService}} fail{{end}}">{{.NeverRegainedService}}{{with .ServiceCarriedOver}}<br><span class="muted">{{.}} carried over</span>{{end}}</td>
<td class="num">{{.Attempts}}</td><td class="num">{{.Losses}}</td>
{{else}}<td colspan="18" class="muted">{{if .Disruptive}}no measurement window (the step failed){{else}}not disruptive{{end}}</td>{{end}}
</tr>
{{end}}</table></div>
{{else}}
<p class="muted">No steps.</p>
{{end}}

<h2>Overall</h2>
<table>
<tr><th>Distribution</th><th class="num">Count</th><th class="num">Mean</th>{{range .Quantiles}}<th class="num">{{.}}</th>{{end}}</tr>
{{range .Dists}}<tr><td>{{.Name}}</td><td class="num">{{.Count}}</td><td class="num">{{.Mean}}</td>{{range .Qs}}<td class="num">{{.}}</td>{{end}}</tr>
{{end}}</table>
<table class="kv">
<tr><th>Attempts</th><td class="num">{{.S.Attempts}}</td></tr>
<tr><th>Losses</th><td class="num">{{.S.Losses}}</td></tr>
<tr><th>Never recovered</th><td class="num{{if .S.NeverRecovered}} fail{{end}}">{{.S.NeverRecovered}}</td></tr>
<tr><th>Never regained service</th><td class="num{{if .S.NeverRegainedService}} fail{{end}}">{{.S.NeverRegainedService}}</td></tr>
<tr><th>Recorder lag</th><td class="num">{{if .S.RecorderLag.Count}}p99 {{ms .S.RecorderLag.P99}}, max {{ms .S.RecorderLag.Max}}{{else}}none recorded{{end}}</td></tr>
</table>

<h2>Responses by code</h2>
{{if .Codes}}<table>
<tr><th>Code</th><th class="num">Count</th></tr>
{{range .Codes}}<tr><td>{{.Code}}</td><td class="num">{{.Count}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No responses.</p>{{end}}

<h2>Charts</h2>
{{range .Boxes}}<h3>{{.Title}}</h3>
<p class="note">{{.Note}}</p>
<div class="chart" id="{{.ID}}"></div>
{{end}}
<p class="muted">Charts drawn with Apache ECharts {{.EchartsVersion}} (Apache License 2.0), inlined in this file.</p>

<script>{{.EchartsJS}}</script>
<script>
(function () {
  "use strict";
  function fmtMs(ms) {
    if (!isFinite(ms)) return "-";
    if (ms < 1) return Math.round(ms * 1000) + "µs";
    if (ms < 1000) return Number(ms.toPrecision(3)) + "ms";
    var s = ms / 1000;
    if (s < 60) return Number(s.toPrecision(3)) + "s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m" + Math.round(s - m * 60) + "s";
    return Math.floor(m / 60) + "h" + (m % 60) + "m";
  }
  function esc(t) {
    return String(t).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  var specs = {{.Charts}};
  var all = [];
  specs.forEach(function (spec) {
    var el = document.getElementById(spec.id);
    if (!el || typeof echarts === "undefined") return;
    var o = spec.option;
    if (spec.kind === "states" || spec.kind === "time") {
      // states: [x, top of the stacked area, count], drawn from the top area down
      var col = spec.kind === "states" ? 2 : 1;
      o.tooltip.formatter = function (ps) {
        if (!ps.length || !ps[0].value) return "";
        var h = "+" + esc(ps[0].value[0]) + " s";
        (col === 2 ? ps.slice().reverse() : ps).forEach(function (p) {
          if (p.value && p.value.length > col) h += "<br>" + p.marker + esc(p.seriesName) + ": <b>" + (Math.round(p.value[col] * 100) / 100) + "</b>";
        });
        return h;
      };
    }
    if (spec.kind === "cdf") {
      o.xAxis.forEach(function (a) { a.axisLabel = {formatter: function (v) { return fmtMs(v); }}; });
      o.tooltip.formatter = function (p) {
        if (p.componentType !== "series") return esc(p.name);
        return esc(p.seriesName) + "<br>p" + p.value[1] + ": <b>" + fmtMs(p.value[0]) + "</b>";
      };
    }
    var chart = echarts.init(el, null, {renderer: "canvas"});
    chart.setOption(o);
    all.push(chart);
  });
  window.addEventListener("resize", function () { all.forEach(function (c) { c.resize(); }); });
})();
</script>
</body>
</html>
`))
