package scenario

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fepool/fepool/configs"
	"github.com/fepool/fepool/loadgen/aggregate"
	"github.com/fepool/fepool/loadgen/threshold"
	"github.com/fepool/fepool/registrar/topology"
)

// Every shipped scenario loads against the topology it names.
func TestShippedScenarios(t *testing.T) {
	entries, err := fs.ReadDir(configs.Scenarios, "scenarios")
	if err != nil || len(entries) < 5 {
		t.Fatalf("scenarios: %v (%d)", err, len(entries))
	}
	for _, e := range entries {
		path := filepath.Join("..", "..", "configs", "scenarios", e.Name())
		s, err := Load(path, nil)
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			continue
		}
		if s.Name+".yaml" != e.Name() || len(s.Steps) == 0 || s.Topology == nil {
			t.Errorf("%s: name %q, %d steps", e.Name(), s.Name, len(s.Steps))
		}
		for _, miss := range unrequired(s) {
			t.Errorf("%s: %s", e.Name(), miss)
		}
	}
}

// unrequired lists the steps of s meant to disrupt clients that no threshold requires to: a
// crash or stop of a Front End or pool and a failback must sign some clients out (disrupted >
// 0), a failover must find some degraded (in resiliency mode, not always signed out). A step
// another disruptive step follows at once is exempt: they make one event (the crashes that
// take quorum away), and the clients count in the last one's window. A threshold requires it
// when it fails on a run where the step disrupted and degraded nobody.
func unrequired(s *Scenario) []string {
	var out []string
	nobody := aggregate.Summary{Completed: true}
	for _, st := range s.Steps {
		nobody.Steps = append(nobody.Steps, aggregate.Step{Index: st.Index, Name: st.Name, Action: st.Action, Disruptive: st.Disruptive(), Measured: st.Disruptive()})
	}
	for i, st := range s.Steps {
		metric := map[string]string{CrashFE: "disrupted", StopFE: "disrupted", CrashPool: "disrupted", StopPool: "disrupted", FailBack: "disrupted", FailOver: "degraded"}[st.Action]
		if metric == "" {
			continue
		}
		if i+1 < len(s.Steps) {
			if next := s.Steps[i+1]; next.Disruptive() && next.After == 0 && !next.HasAt {
				continue
			}
		}
		required := false
		for _, v := range threshold.Judge(nobody, s.Thresholds) {
			t, _ := threshold.Parse(v.Threshold)
			named := t.Step == st.Name || t.Step == fmt.Sprint(st.Index)
			required = required || t.Metric == metric && named && !v.Pass
		}
		if !required {
			out = append(out, fmt.Sprintf("step %d %q (%s) is not required to disrupt anyone: add %s[%s] > 0", st.Index, st.Name, st.Action, metric, st.Name))
		}
	}
	return out
}

func TestUnrequired(t *testing.T) {
	for _, tc := range []struct {
		name, thresholds string
		want             []string
	}{
		{"none", "[never_recovered == 0]", []string{`step 2 "crash"`, `step 3 "failover" (failover) is not required to disrupt anyone: add degraded[failover] > 0`}},
		{"upper bound only", `["disrupted[crash] < 5", "degraded[failover] >= 0"]`, []string{`step 2 "crash"`, `step 3 "failover"`}},
		{"wrong metric", `["degraded[crash] > 0", "disrupted[failover] > 0"]`, []string{`step 2 "crash"`, `step 3 "failover"`}},
		{"both", `["disrupted[crash] > 0", "degraded[3] >= 1"]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(strings.Replace(good, "{at: 30s, crash_pool", "{name: crash, at: 30s, crash_pool", 1), "{after: 5s, failover", "{name: failover, after: 5s, failover", 1)
			src = src[:strings.Index(src, "thresholds:")] + "thresholds: " + tc.thresholds + "\n"
			s, err := Parse("t.yaml", []byte(src), topology.Default())
			if err != nil {
				t.Fatal(err)
			}
			got := unrequired(s)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("got %q, want %q...", got[i], tc.want[i])
				}
			}
		})
	}
}

const good = `
name: t
clients: 10
users: {pools: [pool-a.contoso.com]}
steps:
  - {name: in, wait: {until: all_regular, timeout: 1m}}
  - {at: 30s, crash_pool: pool-a.contoso.com}
  - {after: 5s, failover: {pool: pool-a.contoso.com, disaster_mode: true, wait_time: "00:00:10"}}
  - {hold: 10s}
thresholds: ["p99(time_to_service[3]) < 5s", never_recovered == 0]
`

func TestParse(t *testing.T) {
	s, err := Parse("t.yaml", []byte(good), topology.Default())
	if err != nil {
		t.Fatal(err)
	}
	if s.Rate != DefaultRate || s.Client.Transport != "udp" || s.Client.Via != ViaFrontEnds || s.Client.Expires != 600*time.Second {
		t.Errorf("defaults: %+v", s)
	}
	st := s.Steps[1]
	if st.Action != CrashPool || st.Target != "pool-a.contoso.com" || !st.HasAt || st.At != 30*time.Second || st.Name != "2 crash_pool pool-a.contoso.com" || st.Line != 7 || !st.Disruptive() {
		t.Errorf("step 2: %+v", st)
	}
	if fo := s.Steps[2]; fo.Action != FailOver || !fo.DisasterMode || fo.After != 5*time.Second || fo.WaitTime != "00:00:10" {
		t.Errorf("step 3: %+v", fo)
	}
	if s.Steps[0].Disruptive() || s.Steps[3].Disruptive() || len(s.Thresholds) != 2 {
		t.Errorf("steps/thresholds: %+v", s)
	}
}

func TestBadScenarios(t *testing.T) {
	for _, tc := range []struct{ name, edit, want string }{
		{"unknown step", strings.Replace(good, "hold: 10s", "explode: 10s", 1), `t.yaml:9:6: unknown field "explode"`},
		{"unknown pool", strings.Replace(good, "crash_pool: pool-a", "crash_pool: pool-z", 1), `t.yaml:7:`},
		{"unknown pool text", strings.Replace(good, "crash_pool: pool-a", "crash_pool: pool-z", 1), `"pool-z.contoso.com" is not a pool of the topology`},
		{"bad time", strings.Replace(good, "at: 30s", "at: soon", 1), `steps[1].at: "soon" is not a duration`},
		{"two actions", strings.Replace(good, "{hold: 10s}", "{hold: 10s, end: true}", 1), "has 2 actions (hold, end)"},
		{"no action", strings.Replace(good, "{hold: 10s}", "{after: 10s}", 1), "says when but not what"},
		{"time goes back", strings.Replace(good, "{hold: 10s}", "{at: 10s, hold: 10s}", 1), "is before the previous timed step"},
		{"bad wait", strings.Replace(good, "until: all_regular", "until: everyone", 1), `"everyone" is not all_signed_in or all_regular`},
		{"bad wait time", strings.Replace(good, `wait_time: "00:00:10"`, `wait_time: later`, 1), "steps[2].failover.wait_time: wait time \"later\""},
		{"bad threshold", strings.Replace(good, "never_recovered == 0", "never_recovered = 0", 1), "thresholds[1]"},
		{"threshold step", strings.Replace(good, "time_to_service[3]", "time_to_service[nope]", 1), `no step named "nope"`},
		{"threshold on a wait", strings.Replace(good, "time_to_service[3]", "time_to_service[in]", 1), `thresholds[0]: time_to_service[in] would measure nothing: step "in" is a wait step`},
		{"count on a hold", strings.Replace(good, "never_recovered == 0", `"never_recovered[4] == 0"`, 1), `step "4" is a hold step, which opens no measurement window`},
		{"contacts on a crash", strings.Replace(good, "never_recovered == 0", `"contacts_refused[2] > 0"`, 1), `contacts_refused counts the changes of a contacts step; step "2" is a crash_pool step`},
		{"no name", strings.Replace(good, "name: t\n", "", 1), "name: is required"},
		{"bad transport", good + "client: {transport: sctp}\n", `client.transport: "sctp"`},
		{"unknown fe", strings.Replace(good, "{hold: 10s}", "{crash_fe: fe09.pool-a.contoso.com}", 1), "is not a Front End of the topology"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.edit), topology.Default())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
