package scenario

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fepool/fepool/configs"
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
thresholds: ["p99(time_to_service[in]) < 5s", never_recovered == 0]
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
		{"threshold step", strings.Replace(good, "time_to_service[in]", "time_to_service[nope]", 1), `no step named "nope"`},
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
