package loadgen_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fepool/fepool/loadgen"
	"github.com/fepool/fepool/loadgen/aggregate"
	"github.com/fepool/fepool/loadgen/record"
	"github.com/fepool/fepool/loadgen/scenario"
	"github.com/fepool/fepool/loadgen/threshold"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		i, n int
		rate float64
		ramp time.Duration
		want time.Duration
	}{
		{0, 100, 10, 0, 0},
		{5, 100, 10, 0, 500 * time.Millisecond},
		{99, 100, 1000, 0, 99 * time.Millisecond},
		{50, 100, 10, 10 * time.Second, 5 * time.Second},
		{3, 4, 0, time.Second, 750 * time.Millisecond},
		{7, 10, 0, 0, 0},
	} {
		if got := loadgen.Schedule(tc.i, tc.n, tc.rate, tc.ramp); got != tc.want {
			t.Errorf("Schedule(%d, %d, %g, %s) = %s, want %s", tc.i, tc.n, tc.rate, tc.ramp, got, tc.want)
		}
	}
}

// The test topology's pool-a users, a Front End crash, a pool failover: a small run end to end
// in-process (the emulator on loopback, the clients over real sockets).
const smallScenario = `
name: small
clients: 60
users: {pools: [pool-a.contoso.com]}
ramp: {rate: 600}
client: {keepalive: 1s, request_timeout: 500ms, backoff: {min: 100ms, max: 1s}, sockets: 4}
steps:
  - {name: signed in, wait: {until: all_regular, pool: pool-a.contoso.com, timeout: 30s}}
  - {name: fe crash, crash_fe: fe01.pool-a.contoso.com}
  - {name: noticed, hold: 3s}
  - {name: back, wait: {until: all_regular, timeout: 30s}}
  - {name: changes, contacts: {clients: 5, add: 1}}
  - {name: pool-a crashes, crash_pool: pool-a.contoso.com}
  - {name: failover, failover: {pool: pool-a.contoso.com, disaster_mode: true}}
  - {name: at pool-b, wait: {until: all_regular, pool: pool-b.contoso.com, timeout: 30s}}
thresholds:
  - never_recovered == 0
  - never_regained_service[failover] == 0
  - p99(time_to_service[failover]) < 20s
  - p99(register_latency) < 2s
`

// results is a results stream for a run of sc, and what reads it back once the run is over.
func results(t *testing.T, sc *scenario.Scenario) (*record.Writer, func() aggregate.Summary) {
	t.Helper()
	var buf bytes.Buffer
	w, err := record.NewWriter(&buf, record.Header{Start: time.Now(), Scenario: sc.Name, Clients: sc.Clients, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	return w, func() aggregate.Summary {
		t.Helper()
		agg := aggregate.New()
		truncated, err := record.Read(&buf, agg.Handler())
		if err != nil || truncated {
			t.Fatalf("read: %v truncated %v", err, truncated)
		}
		return agg.Summary(false)
	}
}

func TestRunSmallScenario(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	sc, err := scenario.Parse("small.yaml", []byte(smallScenario), env.Top)
	if err != nil {
		t.Fatal(err)
	}
	w, summary := results(t, sc)
	var statuses []loadgen.Status
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	end, err := loadgen.Run(ctx, loadgen.Config{Scenario: sc, Admin: env.Admin, Shards: 1, Results: w,
		Status: func(s loadgen.Status) { statuses = append(statuses, s) }})
	if err != nil {
		t.Fatalf("run: %v (%+v)", err, end)
	}
	sum := summary()
	if !end.Completed || !sum.Completed || threshold.NotJudged(sum) != "" {
		t.Errorf("a run to its scenario's end is complete and judged: end %+v, summary completed %v, not judged %q", end, sum.Completed, threshold.NotJudged(sum))
	}
	if sum.Started != 60 || sum.NeverSignedIn != 0 || sum.InitialSignIn.Count != 60 || len(sum.Steps) != 8 {
		t.Fatalf("summary: started %d never %d initial %d steps %d", sum.Started, sum.NeverSignedIn, sum.InitialSignIn.Count, len(sum.Steps))
	}
	crash := sum.Steps[1]
	if !crash.Disruptive || crash.Disrupted == 0 || crash.Disrupted == 60 || crash.TimeToSignedIn.Count != int64(crash.Disrupted) {
		t.Errorf("FE crash: disrupted %d of 60, %d recovered", crash.Disrupted, crash.TimeToSignedIn.Count)
	}
	if c := sum.Steps[4].ContactChanges; c["200"] != 5 {
		t.Errorf("contact changes: %v", c)
	}
	fo := sum.Steps[6]
	if fo.Degraded != 60 || fo.TimeToService.Count != 60 || fo.NeverRegainedService != 0 {
		t.Errorf("failover: degraded %d, regained %d, never %d", fo.Degraded, fo.TimeToService.Count, fo.NeverRegainedService)
	}
	ts, err := threshold.ParseAll(strings.Split(strings.TrimSpace(`never_recovered == 0
never_regained_service[failover] == 0`), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range threshold.Judge(sum, append(ts, sc.Thresholds...)) {
		if !v.Pass {
			t.Errorf("threshold %s: %s %s", v.Threshold, v.Actual, v.Err)
		}
	}
	if len(statuses) == 0 || statuses[len(statuses)-1].Population != 60 {
		t.Errorf("live statuses: %d", len(statuses))
	}
	if sum.FinalRegular != 60 || sum.FinalSignedOut != 0 {
		t.Errorf("final states (before the clients sign out): regular %d signed out %d", sum.FinalRegular, sum.FinalSignedOut)
	}
}

// A run that stops before its scenario's end says why, never that the scenario completed, and
// keeps what it recorded: interrupted (Ctrl-C), at its max_duration, or because the emulator
// died (an error, noticed by the watch instead of waiting out a step that can no longer end).
func TestRunStopped(t *testing.T) {
	for _, tc := range []struct {
		name, bound string
		atHold      func(env *rt.Env, cancel context.CancelFunc)
		wantReason  string
		wantErr     error
	}{
		{name: "interrupted", bound: "1h", atHold: func(_ *rt.Env, cancel context.CancelFunc) { cancel() }, wantReason: "interrupted"},
		{name: "bound", bound: "2s", wantReason: "the run reached its bound of 2s"},
		{name: "emulator dies", bound: "1h", atHold: func(env *rt.Env, _ context.CancelFunc) { env.R.Close() },
			wantReason: "stopped: emulator: its admin API stopped answering", wantErr: loadgen.ErrEmulator},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := rt.Start(t, rt.Topology)
			sc, err := scenario.Parse("long.yaml", []byte(`
name: long
clients: 10
users: {pools: [pool-a.contoso.com]}
ramp: {rate: 100}
max_duration: `+tc.bound+`
steps:
  - {name: signed in, wait: {until: all_regular, timeout: 30s}}
  - {name: long wait, wait: {until: all_signed_in, pool: pool-b.contoso.com, timeout: 10m}} # never: they are pool-a's users
`), env.Top)
			if err != nil {
				t.Fatal(err)
			}
			w, summary := results(t, sc)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var once sync.Once
			end, err := loadgen.Run(ctx, loadgen.Config{Scenario: sc, Admin: env.Admin, Shards: 1, Results: w, WatchEvery: 50 * time.Millisecond,
				Status: func(s loadgen.Status) {
					if tc.atHold != nil && s.Step == "long wait" {
						once.Do(func() { tc.atHold(env, cancel) })
					}
				}})
			if !errors.Is(err, tc.wantErr) || !strings.HasPrefix(end.Reason, tc.wantReason) {
				t.Fatalf("end %+v, err %v; want %q, %v", end, err, tc.wantReason, tc.wantErr)
			}
			sum := summary()
			if sum.EndReason != end.Reason || sum.InitialSignIn.Count != 10 || len(sum.Steps) != 2 {
				t.Errorf("summary: end %q, initial sign-ins %d, steps %d", sum.EndReason, sum.InitialSignIn.Count, len(sum.Steps))
			}
			// the step the end cut short says so, not that it failed ("context canceled")
			if st := sum.Steps[len(sum.Steps)-1]; !strings.HasPrefix(st.Err, "cut short: ") || strings.Contains(st.Err, "context canceled") {
				t.Errorf("the step cut short reads %q", st.Err)
			}
			// its thresholds are not judged: the figures miss what the rest of the scenario was for
			if why := threshold.NotJudged(sum); end.Completed || sum.Completed || !strings.HasPrefix(why, "the run did not complete: "+tc.wantReason) {
				t.Errorf("end completed %v, summary completed %v, not judged %q", end.Completed, sum.Completed, why)
			}
		})
	}
}

// TestClientsComeFromTheirOwnSources: clients with sockets of their own send from 127.1.0.x, a
// thousand to an address, not all from 127.0.0.1, so the registrar's per-IP limits (connections
// over TCP, the message rate over UDP) do not take a large population for one flooding host.
func TestClientsComeFromTheirOwnSources(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) { clientsComeFromTheirOwnSources(t, transport) })
	}
}

func clientsComeFromTheirOwnSources(t *testing.T, transport string) {
	env := rt.Start(t, rt.Topology)
	sc, err := scenario.Parse("tcp.yaml", []byte(`
name: tcp
clients: 3
users: {pools: [pool-a.contoso.com]}
client: {transport: `+transport+`, request_timeout: 2s}
steps:
  - {name: signed in, wait: {until: all_regular, timeout: 30s}}
  - {name: held, hold: 3s}
`), env.Top)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := results(t, sc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var sources []string // of the registrations, read once all are signed in
	status := func(s loadgen.Status) {
		if s.Regular != 3 || sources != nil {
			return
		}
		sources = []string{}
		for _, aor := range []string{"open@contoso.com", "user00000@contoso.com", "user00001@contoso.com", "user00002@contoso.com", "user00003@contoso.com"} {
			regs, err := env.R.Registrations(aor)
			if err != nil {
				t.Errorf("%s: %v", aor, err)
			}
			for _, b := range regs.Bindings {
				sources = append(sources, b.Transport+" "+b.Source)
			}
		}
	}
	if _, err := loadgen.Run(ctx, loadgen.Config{Scenario: sc, Admin: env.Admin, Shards: 1, Results: w, Status: status}); err != nil {
		t.Fatal(err)
	}
	if len(sources) != 3 {
		t.Fatalf("never saw the 3 clients signed in: %q", sources)
	}
	for _, src := range sources {
		if want := strings.ToUpper(transport) + " 127.1.0.1:"; !strings.HasPrefix(src, want) {
			t.Errorf("registered as %q, want %s...", src, want)
		}
	}
}
