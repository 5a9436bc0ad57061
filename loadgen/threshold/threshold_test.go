package threshold

import (
	"errors"
	"slices"
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
			{Index: 1, Name: "crash", Disruptive: true, Measured: true, TimeToSignedIn: aggregate.Dist{Count: 5, Max: 130000}, NeverRecovered: 0, Disrupted: 5},
			{Index: 2, Name: "failover", Disruptive: true, Measured: true, TimeToService: aggregate.Dist{Count: 5, P99: 900}, NeverRegainedService: 2, Degraded: 5},
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
		"p99(initial_sign_in) < 1s",             // no samples: fail
		"final_signed_out == 0",                 // fail
	}
	ts, err := ParseAll(srcs)
	if err != nil {
		t.Fatal(err)
	}
	vs := Judge(s, ts)
	want := []bool{true, false, false, true, false, true, true, false, false, false}
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

// A distribution without samples fails whatever its comparison, and says why: a bound that
// holds on nothing measured nothing (the shipped fe-crash scenario passed
// p99(time_to_signed_in[fe01 crashes]) < 30s on a crash nobody noticed).
func TestNoSamplesFails(t *testing.T) {
	s := aggregate.Summary{
		Completed: true,
		Steps: []aggregate.Step{
			{Index: 1, Name: "in", Action: "wait"},
			{Index: 2, Name: "fe01 crashes", Action: "crash_fe", Disruptive: true, Measured: true},
			{Index: 3, Name: "pool-a crashes", Action: "crash_pool", Disruptive: true, Measured: true, Disrupted: 5, Degraded: 5, NeverRecovered: 5, NeverRegainedService: 5},
			{Index: 4, Name: "failover", Action: "failover", Disruptive: true, Measured: true, RegisterLatency: aggregate.Dist{Count: 1, P99: 3}},
		},
	}
	for _, tc := range []struct{ src, why string }{
		{"p99(time_to_signed_in[fe01 crashes]) < 30s", "step 'fe01 crashes' disrupted no client"},
		{"max(time_to_signed_in[2]) >= 0s", "step 'fe01 crashes' disrupted no client"},
		{"p50(time_to_signed_in[pool-a crashes]) < 1m", "none of the 5 disrupted clients signed in again in step 'pool-a crashes''s window"},
		{"p99(time_to_service[failover]) < 30s", "step 'failover' degraded no client"},
		{"p99(time_to_service[pool-a crashes]) < 30s", "none of the 5 degraded clients regained full service in step 'pool-a crashes''s window"},
		{"p99(time_to_signed_in) < 30s", "none of the 5 disrupted clients signed in again"},
		{"p99(register_latency) < 1s", "no REGISTER was answered"},
		{"p99(register_latency[fe01 crashes]) < 1s", "no REGISTER was answered in step 'fe01 crashes''s window"},
		{"mean(initial_sign_in) < 1s", "no client signed in"},
		{"max(recorder_lag) != 1ms", "the load recorded no response"},
	} {
		ts, err := ParseAll([]string{tc.src})
		if err != nil {
			t.Fatal(err)
		}
		v := Judge(s, ts)[0]
		if v.Pass || v.Actual != "no samples" || v.Err != tc.why {
			t.Errorf("%s: pass %v, actual %q, err %q; want a failure saying %q", tc.src, v.Pass, v.Actual, v.Err, tc.why)
		}
	}
	// Nothing disrupted at all: the whole-run distribution says so.
	s.Steps = s.Steps[:2]
	ts, _ := ParseAll([]string{"p99(time_to_signed_in) < 30s", "p99(time_to_service) < 30s"})
	if vs := Judge(s, ts); vs[0].Pass || vs[0].Err != "no step disrupted any client" || vs[1].Pass || vs[1].Err != "no step degraded any client" {
		t.Errorf("whole run: %+v", vs)
	}
	// A step that opened no window has nothing to count: an error, not a 0 that passes.
	ts, _ = ParseAll([]string{"never_recovered[in] == 0", "disrupted[fe01 crashes] > 0", "disrupted[fe01 crashes] == 0"})
	vs := Judge(s, ts)
	if vs[0].Pass || vs[0].Err != "step 'in' opened no measurement window (it is not disruptive)" {
		t.Errorf("count on a wait: %+v", vs[0])
	}
	if vs[1].Pass || vs[1].Actual != "0" || !vs[2].Pass {
		t.Errorf("disrupted[fe01 crashes]: %+v %+v", vs[1], vs[2])
	}
}

func TestContactChanges(t *testing.T) {
	s := aggregate.Summary{Completed: true, Steps: []aggregate.Step{
		{Index: 1, Name: "refused", Action: "contacts", ContactChanges: map[string]int64{"503": 4, "0": 1, "200": 1}},
		{Index: 2, Name: "accepted", Action: "contacts", ContactChanges: map[string]int64{"200": 6}},
	}}
	srcs := []string{
		"contacts_refused[refused] == 4",  // the unanswered one is neither
		"contacts_accepted[refused] == 1", //
		"contacts_refused[accepted] == 0", //
		"contacts_accepted == 7",          // whole run
		"contacts_refused[accepted] > 0",  // fails
	}
	ts, err := ParseAll(srcs)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range Judge(s, ts) {
		if v.Pass != (i < 4) {
			t.Errorf("%s: pass %v (actual %s, err %q)", v.Threshold, v.Pass, v.Actual, v.Err)
		}
	}
}

// A run that did not do all its scenario is not judged, and says why; a completed one is.
func TestJudgeRun(t *testing.T) {
	done := aggregate.Summary{Completed: true, EndReason: "the scenario completed", NeverRecovered: 0,
		Steps: []aggregate.Step{{Index: 1, Name: "crash", Action: "crash_fe", Disruptive: true, Measured: true, Disrupted: 3}}}
	ts, err := ParseAll([]string{"never_recovered == 0", "disrupted[crash] > 0"})
	if err != nil {
		t.Fatal(err)
	}
	vs, why := JudgeRun(done, ts)
	if why != "" || len(vs) != 2 || !Passed(vs) {
		t.Fatalf("completed run: %+v %q", vs, why)
	}
	for _, tc := range []struct {
		name string
		edit func(*aggregate.Summary)
		want string
	}{
		{"interrupted", func(s *aggregate.Summary) { s.Completed, s.EndReason = false, "interrupted: interrupt signal received" },
			"the run did not complete: interrupted: interrupt signal received"},
		{"bound", func(s *aggregate.Summary) {
			s.Completed, s.EndReason = false, "the run reached its bound of 2h0m0s (max_duration) before the scenario's end"
		}, "the run did not complete: the run reached its bound of 2h0m0s"},
		{"emulator died", func(s *aggregate.Summary) {
			s.Completed, s.EndReason, s.Error = false, "stopped: emulator: its admin API stopped answering", "emulator: its admin API stopped answering"
		}, "the run did not complete: stopped: emulator: its admin API stopped answering"},
		{"cut short", func(s *aggregate.Summary) {
			s.Completed, s.Truncated, s.EndReason = false, true, "the results stream ends without an end record (the load generator was killed)"
		}, "the results stream was cut short (the results stream ends without an end record"},
		{"step failed", func(s *aggregate.Summary) {
			s.Steps = append(s.Steps, aggregate.Step{Index: 2, Name: "back", Action: "wait", Err: "wait timed out after 5m0s: 2 of 10 clients regular"})
		}, "step 2 'back' failed: wait timed out after 5m0s: 2 of 10 clients regular"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := done
			s.Steps = slices.Clone(done.Steps)
			tc.edit(&s)
			vs, why := JudgeRun(s, ts)
			if len(vs) != 0 || !strings.HasPrefix(why, tc.want) {
				t.Fatalf("verdicts %+v, not judged %q; want none and %q", vs, why, tc.want)
			}
		})
	}
}
