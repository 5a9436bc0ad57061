package threshold

import (
	"errors"
	"strings"
	"testing"

	"github.com/fepool/fepool/loadgen/aggregate"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want Threshold
	}{
		{"p99(time_to_service) < 5s", Threshold{Quantile: "p99", Metric: "time_to_service", Op: "<", Limit: 5000}},
		{"  max(time_to_signed_in[failover]) <= 2m ", Threshold{Quantile: "max", Metric: "time_to_signed_in", Step: "failover", Op: "<=", Limit: 120000}},
		{"never_recovered == 0", Threshold{Metric: "never_recovered", Op: "==", Limit: 0}},
		{"p99.9(register_latency)<250ms", Threshold{Quantile: "p99.9", Metric: "register_latency", Op: "<", Limit: 250}},
		{"final_signed_out != 3", Threshold{Metric: "final_signed_out", Op: "!=", Limit: 3}},
		{"losses[2] >= 10", Threshold{Metric: "losses", Step: "2", Op: ">=", Limit: 10}},
	} {
		got, err := Parse(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		tc.want.Source = strings.TrimSpace(tc.src)
		if got != tc.want {
			t.Errorf("%q = %+v, want %+v", tc.src, got, tc.want)
		}
	}
	for src, want := range map[string]string{
		"p99(time_to_service)":           "no comparison",
		"p98(time_to_service) < 5s":      `unknown function "p98"`,
		"p99(time_to_service < 5s":       "missing )",
		"time_to_service < 5s":           "is a distribution",
		"p99(never_recovered) < 1":       "is a count",
		"p99(time_to_service) < soon":    "not a duration",
		"never_recovered == none":        "not a number",
		"p99(latency) < 1s":              `unknown metric "latency"`,
		"never_signed_in[ramp] == 0":     "takes no [step]",
		"p99(time_to_service[]) < 1s":    "empty step",
		"p99(time_to_service[x) < 1s":    "missing ]",
		"p99(initial_sign_in[a]) < 1s":   "takes no [step]",
		"max(recorder_lag) < 1ms and up": "not a duration",
	} {
		_, err := Parse(src)
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
	if _, err := ParseAll([]string{"never_recovered == 0", "bad", "worse < 1"}); err == nil || strings.Count(err.Error(), "bad threshold") != 2 {
		t.Errorf("ParseAll reports every error: %v", err)
	}
}

func TestJudge(t *testing.T) {
	s := aggregate.Summary{
		TimeToService:  aggregate.Dist{Count: 10, P99: 4200, Max: 6000},
		NeverRecovered: 0, Losses: 7, FinalSignedOut: 1,
		Steps: []aggregate.Step{
			{Index: 1, Name: "crash", TimeToSignedIn: aggregate.Dist{Count: 5, Max: 130000}, NeverRecovered: 0, Disrupted: 5},
			{Index: 2, Name: "failover", TimeToService: aggregate.Dist{Count: 5, P99: 900}, NeverRegainedService: 2, Degraded: 5},
		},
	}
	srcs := []string{
		"p99(time_to_service) < 5s",             // 4.2s: pass
		"max(time_to_service) < 5s",             // 6s: fail
		"max(time_to_signed_in[crash]) <= 2m",   // 130s: fail
		"p99(time_to_service[failover]) < 1s",   // pass
		"never_regained_service[failover] == 0", // 2: fail
		"never_recovered == 0",                  // pass
		"disrupted == 5",                        // pass
		"p99(time_to_signed_in[nope]) < 1s",     // unknown step: fail with error
		"p99(initial_sign_in) < 1s",             // no samples: pass
		"final_signed_out == 0",                 // fail
	}
	ts, err := ParseAll(srcs)
	if err != nil {
		t.Fatal(err)
	}
	vs := Judge(s, ts)
	want := []bool{true, false, false, true, false, true, true, false, true, false}
	for i, v := range vs {
		if v.Pass != want[i] {
			t.Errorf("%s: pass %v (actual %s, err %q), want %v", v.Threshold, v.Pass, v.Actual, v.Err, want[i])
		}
	}
	if vs[0].Actual != "4.2s" || vs[2].Actual != "2m10s" || vs[7].Err == "" || vs[8].Actual != "no samples" {
		t.Errorf("shown values: %q %q %q %q", vs[0].Actual, vs[2].Actual, vs[7].Err, vs[8].Actual)
	}
	if Passed(vs) || !Passed(vs[:1]) {
		t.Error("Passed")
	}
}
