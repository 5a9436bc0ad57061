package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fepool/fepool/registrar/registrartest"
	"github.com/fepool/fepool/registrar/topology"
)

// runCLI runs one command line in-process.
func runCLI(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(ctx, args, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestPowershellArgs(t *testing.T) {
	got := powershellArgs([]string{"ctl", "Get-CsPoolFabricState", "-PoolFqdn", "p", "-Verbose:$true", "-c", "x", "--json", "--", "-Identity"})
	want := []string{"ctl", "Get-CsPoolFabricState", "--PoolFqdn", "p", "--Verbose=true", "-c", "x", "--json", "--", "-Identity"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestServeCheck(t *testing.T) {
	code, out, _ := runCLI(t, context.Background(), "serve", "--check")
	if code != 0 || !strings.Contains(out, "embedded default (configs/default.yaml): valid") || !strings.Contains(out, "fe03.pool-b.contoso.com") || !strings.Contains(out, "20000 users") {
		t.Fatalf("serve --check: %d\n%s", code, out)
	}
	for _, want := range []string{"2048 TCP/TLS connections per IP", "a TCP/TLS message within 20s", "Unknown users: answered as a wrong password"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --check does not say %q:\n%s", want, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("domain: contoso.com\npools:\n  - fqdn: p.contoso.com\n    front_ends: [{address: 10.0.0.1}]\n"), 0o644)
	code, _, errOut := runCLI(t, context.Background(), "serve", "--check", "--config", bad)
	if code != exitConfig || !strings.Contains(errOut, bad+":4:") || !strings.Contains(errOut, "not a loopback address") {
		t.Fatalf("bad topology: %d %s", code, errOut)
	}
	code, _, errOut = runCLI(t, context.Background(), "serve", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != exitConfig || !strings.Contains(errOut, "topology file not found") {
		t.Fatalf("missing topology: %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, context.Background(), "serve", "--bogus"); code != exitUsage {
		t.Fatalf("unknown flag: %d", code)
	}
	if code, _, _ := runCLI(t, context.Background(), "frobnicate"); code != exitUsage {
		t.Fatalf("unknown command: %d", code)
	}
	if code, out, _ := runCLI(t, context.Background(), "version"); code != 0 || !strings.HasPrefix(out, "fepool ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestServeAndCtl(t *testing.T) {
	dir := t.TempDir()
	topo := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(topo, []byte(registrartest.Topology), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var serveCode int
	var serveErr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveCode, _, serveErr = runCLI(t, ctx, "serve", "--config", topo, "--state-file", state, "--log-level", "warn")
	}()
	defer func() {
		cancel()
		wg.Wait()
		if serveCode != 0 {
			t.Errorf("serve exited %d: %s", serveCode, serveErr)
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Error("serve left its state file behind")
		}
	}()
	var s adminState
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(state)
		if err == nil && json.Unmarshal(b, &s) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never wrote %s: %s", state, serveErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctl := func(args ...string) (int, string, string) {
		return runCLI(t, context.Background(), append([]string{"ctl", "--admin", s.URL, "--token", s.Token}, args...)...)
	}
	code, out, errOut := ctl("Get-CsUserPoolInfo", "-Identity", "sip:user00042@contoso.com")
	if code != 0 || !regexpMatch(out, `(?m)^PrimaryPoolFqdn\s+: pool-a\.contoso\.com$`) || !regexpMatch(out, `(?m)^BackupPoolFqdn\s+: pool-b\.contoso\.com$`) {
		t.Fatalf("Get-CsUserPoolInfo: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = ctl("get-cspoolfabricstate", "-poolfqdn", "pool-a.contoso.com", "-Verbose")
	if code != 0 || !strings.Contains(out, "Routing groups with missing replicas: 0") {
		t.Fatalf("Get-CsPoolFabricState -Verbose: %d\n%s", code, out)
	}
	code, out, _ = ctl("userinfo", "sip:user01042@contoso.com", "--json")
	var info struct{ PrimaryPoolFqdn string }
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info.PrimaryPoolFqdn != "pool-b.contoso.com" {
		t.Fatalf("userinfo --json: %d %s", code, out)
	}
	if code, out, _ := ctl("crash", "fe02.pool-a.contoso.com"); code != 0 || !strings.Contains(out, "Failed") {
		t.Fatalf("crash: %d %s", code, out)
	}
	if code, _, errOut := ctl("crash", "fe02.pool-a.contoso.com"); code != exitAPIError || !strings.Contains(errOut, "is not running") {
		t.Fatalf("crash again: %d %s", code, errOut)
	}
	if code, out, _ := ctl("Start-CsWindowsService", "-ComputerName", "fe02.pool-a.contoso.com"); code != 0 || !strings.Contains(out, "Started") {
		t.Fatalf("start: %d %s", code, out)
	}
	if code, out, _ := ctl("reset", "-PoolFqdn", "pool-a.contoso.com", "-ResetType", "ServiceReset"); code != 0 || !strings.Contains(out, "ServiceReset") {
		t.Fatalf("reset: %d %s", code, out)
	}
	if code, _, errOut := ctl("userinfo", "-Identity", "sip:nobody@contoso.com"); code != exitAPIError || !strings.Contains(errOut, "no user") {
		t.Fatalf("unknown user: %d %s", code, errOut)
	}
	if code, _, errOut := ctl("userinfo"); code != exitUsage || !strings.Contains(errOut, "-Identity is required") {
		t.Fatalf("missing identity: %d %s", code, errOut)
	}
	if code, out, _ := ctl("events"); code != 0 || !strings.Contains(out, "32108") || !strings.Contains(out, "FrontEndCrashed") {
		t.Fatalf("events: %d %s", code, out)
	}
	if code, out, _ := ctl("pools"); code != 0 || !strings.Contains(out, "pool-b.contoso.com") {
		t.Fatalf("pools: %d %s", code, out)
	}
	if code, out, _ := ctl("health"); code != 0 || !strings.Contains(out, "true") {
		t.Fatalf("health: %d %s", code, out)
	}
	if code, out, _ := ctl("Get-CsComputer", "-Pool", "pool-b.contoso.com"); code != 0 || strings.Contains(out, "pool-a") || !strings.Contains(out, "fe03.pool-b.contoso.com") {
		t.Fatalf("Get-CsComputer: %d %s", code, out)
	}
	// Pairing and disaster recovery.
	const pa = "pool-a.contoso.com"
	if code, out, _ := ctl("Invoke-CsPoolFailOver", "-PoolFqdn", pa, "-WhatIf", "-WaitTime", "00:00:30"); code != 0 || !strings.Contains(out, "What if:") || !strings.Contains(out, "30s") {
		t.Fatalf("failover -WhatIf: %d %s", code, out)
	}
	if code, out, _ := ctl("failover", "-PoolFqdn", pa, "-Confirm"); code != 0 || !strings.Contains(out, "Cancelled: nothing changed") {
		t.Fatalf("failover -Confirm answered no: %d %s", code, out)
	}
	if code, _, errOut := ctl("failover", pa, "-WaitTime", "soon"); code != exitUsage || !strings.Contains(errOut, "-WaitTime") {
		t.Fatalf("bad -WaitTime: %d %s", code, errOut)
	}
	if code, _, errOut := ctl("failback", pa); code != exitAPIError || !strings.Contains(errOut, "not FailedOver") {
		t.Fatalf("failback of an active pool: %d %s", code, errOut)
	}
	if code, _, errOut := ctl("failover", "pool-x.contoso.com", "-DisasterMode"); code != exitAPIError || !strings.Contains(errOut, "no pool") {
		t.Fatalf("failover of an unknown pool: %d %s", code, errOut)
	}
	if code, out, _ := ctl("pool-crash", pa); code != 0 || !regexpMatch(out, `(?m)^Heartbeat\s+: not heard`) {
		t.Fatalf("pool-crash: %d %s", code, out)
	}
	if code, out, _ := ctl("Invoke-CsPoolFailOver", "-PoolFqdn", pa, "-DisasterMode", "-Force"); code != 0 || !regexpMatch(out, `(?m)^State\s+: FailedOver$`) {
		t.Fatalf("failover -DisasterMode: %d %s", code, out)
	}
	if code, out, _ := ctl("Get-CsPoolBackupRelationship", "-PoolFqdn", pa); code != 0 || !regexpMatch(out, `(?m)^State\s+: FailedOver$`) || !regexpMatch(out, `(?m)^BackupPoolState\s+: Active$`) {
		t.Fatalf("Get-CsPoolBackupRelationship: %d %s", code, out)
	}
	if code, out, _ := ctl("userinfo", "sip:user00042@contoso.com"); code != 0 || !regexpMatch(out, `(?m)^RegisteredAtPoolFqdn\s+: pool-b\.contoso\.com$`) {
		t.Fatalf("userinfo after failover: %d %s", code, out)
	}
	if code, out, _ := ctl("pool-start", pa); code != 0 || !strings.Contains(out, "3 of 3 running") {
		t.Fatalf("pool-start: %d %s", code, out)
	}
	if code, out, _ := ctl("Invoke-CsPoolFailBack", "-PoolFqdn", pa, "-WaitTime", "0", "--wait"); code != 0 || !strings.Contains(out, "FailingBack") || !strings.Contains(out, "Active") {
		t.Fatalf("failback --wait: %d %s", code, out)
	}
	if code, out, _ := ctl("readiness", "-PoolFqdn", "pool-b.contoso.com"); code != 0 || !regexpMatch(out, `(?m)^ReadinessState\s+: Ready$`) {
		t.Fatalf("Get-CsPoolUpgradeReadinessState: %d %s", code, out)
	}
	if code, out, _ := ctl("backend-down", pa); code != 0 || !regexpMatch(out, `(?m)^BackEnd\s+: DOWN`) {
		t.Fatalf("backend-down: %d %s", code, out)
	}
	if code, out, _ := ctl("contacts", "sip:user00042@contoso.com"); code != 0 || !regexpMatch(out, `(?m)^BackEndPool\s+: pool-a\.contoso\.com$`) {
		t.Fatalf("contacts: %d %s", code, out)
	}
	if code, out, _ := ctl("partition", pa); code != 0 || !regexpMatch(out, `(?m)^Heartbeat\s+: partitioned`) {
		t.Fatalf("partition: %d %s", code, out)
	}
	if code, _, errOut := ctl("partition", pa); code != exitAPIError || !strings.Contains(errOut, "already partitioned") {
		t.Fatalf("partition twice: %d %s", code, errOut)
	}
	for _, a := range []string{"heal", "backend-up"} {
		if code, out, errOut := ctl(a, pa); code != 0 {
			t.Fatalf("%s: %d %s %s", a, code, out, errOut)
		}
	}

	// Nobody listening: a clear message and exit 1.
	code, _, errOut = runCLI(t, context.Background(), "ctl", "--admin", "http://127.0.0.1:1", "--token", "x", "pools")
	if code != exitError || !strings.Contains(errOut, "is 'fepool serve' running?") {
		t.Fatalf("unreachable: %d %s", code, errOut)
	}
}

func regexpMatch(s, re string) bool { return regexp.MustCompile(re).MatchString(s) }

func TestPhone(t *testing.T) {
	envr := registrartest.Start(t, registrartest.Topology)
	door := envr.DoorAddr(t, "pool-a.contoso.com", "udp")
	in, feed := io.Pipe()
	out := &registrartest.LogBuffer{}
	done := make(chan int)
	go func() {
		done <- run(context.Background(), []string{"phone", "--user", "sip:user00042@contoso.com", "--password", "secret",
			"--server", "pool-a.contoso.com:" + strconv.Itoa(int(door.Port())), "--host", "pool-a.contoso.com=" + door.Addr().String()},
			env{stdin: in, stdout: out, stderr: out, getenv: func(string) string { return "" }})
	}()
	waitOut := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("phone output lacks %q:\n%s", want, out.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitOut("registered pool-a.contoso.com=")
	fmt.Fprintln(feed, "status")
	waitOut("Mode      : regular")
	fmt.Fprintln(feed, "add user00043@contoso.com")
	waitOut("add sip:user00043@contoso.com: done")
	if cs, _ := envr.R.Contacts("user00042@contoso.com"); len(cs.Contacts) != 1 || cs.Contacts[0].URI != "sip:user00043@contoso.com" {
		t.Fatalf("contacts after add: %+v", cs)
	}
	fmt.Fprintln(feed, "remove")
	waitOut("remove needs a SIP URI")
	fmt.Fprintln(feed, "unregister")
	waitOut("signed-out")
	fmt.Fprintln(feed, "add sip:user00044@contoso.com")
	waitOut("add sip:user00044@contoso.com: client: not registered")
	if regs, _ := envr.R.Registrations("user00042@contoso.com"); len(regs.Bindings) != 0 {
		t.Fatalf("unregister left %+v", regs)
	}
	fmt.Fprintln(feed, "bogus")
	waitOut(`unknown command "bogus"`)
	fmt.Fprintln(feed, "quit")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("phone exited %d:\n%s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("phone did not quit")
	}
	feed.Close()
	if code, _, errOut := runCLI(t, context.Background(), "phone", "--user", "nobody", "--server", "127.0.0.1"); code != exitUsage || !strings.Contains(errOut, "not a SIP address") {
		t.Fatalf("bad user: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, context.Background(), "phone", "--user", "sip:a@b.c", "--server", "pool-z.contoso.com"); code != exitUsage || !strings.Contains(errOut, "hosts map") {
		t.Fatalf("unresolvable server: %d %s", code, errOut)
	}
}

const loadScenarioYAML = `
name: cli-small
clients: 30
users: {pools: [pool-a.contoso.com]}
ramp: {rate: 300}
client: {keepalive: 1s, request_timeout: 500ms, backoff: {min: 100ms, max: 1s}}
steps:
  - {name: signed in, wait: {until: all_regular, timeout: 30s}}
  - {name: fe crash, crash_fe: fe02.pool-a.contoso.com}
  - {name: noticed, hold: 3s}
  - {name: back, wait: {until: all_regular, timeout: 30s}}
  - {name: restart, start_fe: fe02.pool-a.contoso.com}
thresholds: [never_recovered == 0, "p99(register_latency) < 5s"]
`

func TestLoadAndReport(t *testing.T) {
	envr := registrartest.Start(t, registrartest.Topology)
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.yaml")
	sc := filepath.Join(dir, "small.yaml")
	if err := os.WriteFile(topo, []byte(registrartest.Topology), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sc, []byte(loadScenarioYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	api := []string{"--admin", "http://" + envr.R.AdminAddr().String(), "--token", envr.R.Token()}
	out := filepath.Join(dir, "run")
	args := append([]string{"load", "--scenario", sc, "--topology", topo, "--out", out, "--metrics", "", "--log-level", "warn"}, api...)
	code, stdout, stderr := runCLI(t, context.Background(), args...)
	if code != 0 || !strings.Contains(stdout, "PASS never_recovered == 0") || !strings.Contains(stdout, "fe crash") {
		t.Fatalf("load: %d\n%s\n%s", code, stdout, stderr)
	}
	for _, f := range []string{"results.jsonl.gz", "summary.json", "report.html"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// The stream renders again, elsewhere.
	again := filepath.Join(dir, "again")
	code, stdout, _ = runCLI(t, context.Background(), "report", "--out", again, filepath.Join(out, "results.jsonl.gz"))
	if code != 0 || !strings.Contains(stdout, "cli-small") {
		t.Fatalf("report: %d %s", code, stdout)
	}
	// Two shards drive one emulator from the same start; their results merge into one run.
	startAt := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	var wg sync.WaitGroup
	shardOut := make([]string, 2)
	for k := range 2 {
		shardOut[k] = filepath.Join(dir, fmt.Sprintf("cli-small-shard%dof2", k))
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"load", "--scenario", sc, "--topology", topo, "--out", shardOut[k], "--shard", fmt.Sprintf("%d/2", k), "--start-at", startAt, "--quiet", "--log-level", "warn"}, api...)
			if code, stdout, stderr := runCLI(t, context.Background(), args...); code != 0 {
				t.Errorf("shard %d: %d\n%s\n%s", k, code, stdout, stderr)
			}
		}()
	}
	wg.Wait()
	code, stdout, stderr = runCLI(t, context.Background(), "report", "merge", shardOut[1], filepath.Join(shardOut[0], "results.jsonl.gz"))
	if code != 0 || !strings.Contains(stdout, "0,1 of 2") {
		t.Fatalf("merge: %d\n%s\n%s", code, stdout, stderr)
	}
	var merged struct{ Started, NeverRecovered int }
	if b, err := os.ReadFile(filepath.Join(dir, "cli-small-merged", "summary.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &merged); err != nil || merged.Started != 30 {
		t.Fatalf("merged summary: %+v %v", merged, err)
	}
	if code, _, stderr := runCLI(t, context.Background(), "report", "merge", shardOut[0], shardOut[0]); code != exitUsage || !strings.Contains(stderr, "both shard 0/2") {
		t.Fatalf("merging a shard with itself: %d %s", code, stderr)
	}

	// A threshold that fails has its own exit code.
	strict := strings.Replace(loadScenarioYAML, `"p99(register_latency) < 5s"`, `"p99(register_latency) < 1us"`, 1)
	strict = strings.Replace(strict, "clients: 30", "clients: 5", 1)
	if err := os.WriteFile(sc, []byte(strict), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"load", "--scenario", sc, "--topology", topo, "--out", filepath.Join(dir, "strict"), "--metrics", "", "--quiet", "--log-level", "warn"}, api...)
	if code, stdout, _ := runCLI(t, context.Background(), args...); code != exitThresholds || !strings.Contains(stdout, "FAIL p99(register_latency) < 1us") {
		t.Fatalf("failed threshold: %d\n%s", code, stdout)
	}
	// Bad scenarios are refused before anything starts, naming the line.
	bad := strings.Replace(loadScenarioYAML, "crash_fe: fe02.pool-a", "crash_fe: fe09.pool-a", 1)
	if err := os.WriteFile(sc, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"load", "--scenario", sc, "--topology", topo, "--out", filepath.Join(dir, "bad")}, api...)
	if code, _, stderr := runCLI(t, context.Background(), args...); code != exitUsage || !strings.Contains(stderr, "small.yaml:9:") {
		t.Fatalf("bad scenario: %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Error("a refused scenario created its results directory")
	}
	if code, _, stderr := runCLI(t, context.Background(), "load", "--scenario", "no-such-scenario", "--admin", "http://127.0.0.1:1", "--token", "x"); code != exitUsage || !strings.Contains(stderr, "fe-crash") {
		t.Fatalf("unknown scenario: %d %s", code, stderr)
	}
	// An emulator that is not there: a clear message, exit 1, found before anything is created.
	unreach := filepath.Join(dir, "unreach")
	code, _, stderr = runCLI(t, context.Background(), "load", "--scenario", "fe-crash", "--clients", "10", "--out", unreach, "--metrics", "", "--admin", "http://127.0.0.1:1", "--token", "x")
	if code != exitError || !strings.Contains(stderr, "admin API") {
		t.Fatalf("unreachable emulator: %d %s", code, stderr)
	}
	if _, err := os.Stat(unreach); !os.IsNotExist(err) {
		t.Errorf("a run refused before it started left its results directory: %v", err)
	}
}

// configs/demo.yaml is the default topology with shorter timers, nothing else.
func TestDemoTopologyIsTheDefaultWithShortTimers(t *testing.T) {
	demo, err := demoTopology()
	if err != nil {
		t.Fatal(err)
	}
	def := topology.Default()
	if demo.Pools[0].ResiliencyTimer >= def.Pools[0].ResiliencyTimer || demo.Pairing == def.Pairing {
		t.Fatalf("demo timers are not shorter: %v %+v", demo.Pools[0].ResiliencyTimer, demo.Pairing)
	}
	demo.Source, demo.Fabric, demo.Pairing = def.Source, def.Fabric, def.Pairing
	for i, p := range demo.Pools {
		p.ResiliencyTimer = def.Pools[i].ResiliencyTimer
	}
	if !reflect.DeepEqual(demo, def) {
		t.Error("configs/demo.yaml differs from configs/default.yaml in more than its timers")
	}
}

func TestRealtimeProcs(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cpus, procs      int
		userSet          bool
		want             int
		wantErrSubstring string
	}{
		{name: "two CPUs: one left", cpus: 2, procs: 2, want: 1},
		{name: "eight CPUs: seven", cpus: 8, procs: 8, want: 7},
		{name: "GOMAXPROCS already lower", cpus: 8, procs: 3, want: 3},
		{name: "GOMAXPROCS set by the user", cpus: 2, procs: 2, userSet: true, want: 2},
		{name: "one CPU", cpus: 1, procs: 1, wantErrSubstring: "at least 2 CPUs"},
		{name: "one CPU, GOMAXPROCS set", cpus: 1, procs: 1, userSet: true, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := realtimeProcs(tc.cpus, tc.procs, tc.userSet)
			if tc.wantErrSubstring != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstring) {
					t.Fatalf("got %d, %v; want an error saying %q", got, err, tc.wantErrSubstring)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// runLoadCLI runs one command line in-process, with fileLimit as the open-file limits the
// process has (soft, hard; nil: the real ones).
func runLoadCLI(t *testing.T, ctx context.Context, fileLimit []uint64, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if fileLimit != nil {
		e.raiseFileLimit = func() (uint64, uint64, error) { return fileLimit[0], fileLimit[1], nil }
	}
	code = run(ctx, args, e)
	return code, out.String(), errb.String()
}

// What can be checked before a run starts is, before the results directory exists: each
// refusal names the problem and what to do, exits non-zero, and leaves nothing behind.
func TestLoadPreflight(t *testing.T) {
	envr := registrartest.Start(t, registrartest.Topology)
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, []byte(registrartest.Topology), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, yaml string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// no clients: every user of pool-a, 1,001 of them (the count the open-file check must use)
	all := write("all.yaml", "name: all\nusers: {pools: [pool-a.contoso.com]}\nsteps: [{name: crash, crash_fe: fe02.pool-a.contoso.com}]\nthresholds: [never_recovered == 0]\n")
	big := write("big.yaml", "name: big\nclients: 10\nsteps: [{name: crash, crash_fe: fe05.big.contoso.com}]\n")
	admin := "http://" + envr.R.AdminAddr().String()
	for _, tc := range []struct {
		name      string
		limit     []uint64
		args      []string
		code      int
		want      []string
		crashedFE bool
	}{
		{name: "more clients than the pool has users", args: []string{"--scenario", all, "--topology", topo, "--clients", "5000", "--token", envr.R.Token()},
			code: exitUsage, want: []string{"the population does not fit the topology: 5000 clients asked for, but " + topo + " has only 1001 users in pool-a.contoso.com", "ask for fewer clients (--clients"}},
		{name: "wrong admin token", args: []string{"--scenario", all, "--topology", topo, "--token", "not-the-token"},
			code: exitUsage, want: []string{"the emulator refused the admin token", "HTTP 401", "pass the token 'fepool serve' printed at start (--token or FEPOOL_ADMIN_TOKEN)"}},
		{name: "open-file limit too low for the real population", limit: []uint64{1000, 1000}, args: []string{"--scenario", all, "--topology", topo, "--token", envr.R.Token()},
			code: exitUsage, want: []string{"the open-file limit is 1000 (hard limit 1000) but this process's 1001 clients (udp) need about 1257 file descriptors", "ulimit -n 1257", "--shard i/n", "client.sockets"}},
		{name: "an emulator running another topology", args: []string{"--scenario", big, "--topology", filepath.Join("..", "..", "configs", "enterprise-12.yaml"), "--token", envr.R.Token()},
			code: exitUsage, want: []string{"names Front End fe05.big.contoso.com, which the emulator (test.yaml) does not run", "--topology"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			args := append([]string{"load", "--out", out, "--metrics", "", "--quiet", "--admin", admin}, tc.args...)
			code, stdout, stderr := runLoadCLI(t, context.Background(), tc.limit, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a run refused before it started left %s: %v", out, err)
			}
			if f := envr.FrontEnd(t, "fe02.pool-a.contoso.com"); f.State != "Started" {
				t.Errorf("a refused run carried out a step: fe02 is %s", f.State)
			}
		})
	}
}

// A run that did not do all its scenario prints no verdict: its thresholds are not judged, the
// summary, summary.json and report.html say why, and the exit code is not 0 (1, or 130 when
// interrupted). Each scenario's thresholds would pass on what it recorded.
func TestLoadNotJudged(t *testing.T) {
	envr := registrartest.Start(t, registrartest.Topology)
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, []byte(registrartest.Topology), 0o644); err != nil {
		t.Fatal(err)
	}
	const head = "clients: 5\nusers: {pools: [pool-a.contoso.com]}\nramp: {rate: 100}\nthresholds: [never_recovered == 0, never_signed_in == 0]\n"
	for _, tc := range []struct {
		name, scenario string
		interrupt      bool
		code           int
		why, stderr    string
	}{
		{name: "bound", scenario: "max_duration: 2s\nsteps:\n  - {name: signed in, wait: {until: all_regular, timeout: 30s}}\n  - {name: long hold, hold: 1m}\n",
			code: exitError, why: "the run did not complete: the run reached its bound of 2s (max_duration) before the scenario's end", stderr: "thresholds not judged: the run did not complete"},
		{name: "wait timed out", scenario: "steps:\n  - {name: at pool-b, wait: {until: all_regular, pool: pool-b.contoso.com, timeout: 1s}}\n",
			code: exitError, why: "step 1 'at pool-b' failed: wait timed out after 1s: 0 of 5 clients regular at pool-b.contoso.com", stderr: "thresholds not judged: step 1 'at pool-b' failed"},
		{name: "interrupted", scenario: "steps:\n  - {name: signed in, wait: {until: all_regular, timeout: 30s}}\n  - {name: long hold, hold: 1m}\n", interrupt: true,
			code: exitInterrupted, why: "the run did not complete: interrupted: interrupt signal received", stderr: "interrupted: interrupt signal received: thresholds not judged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(sc, []byte("name: nj\n"+head+tc.scenario), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tc.name, " ", "-"))
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if tc.interrupt {
				// as Ctrl-C does (signal.NotifyContext's cause), once the run is under way
				watching := make(chan struct{})
				defer func() { cancel(nil); <-watching }() // the watch ends with the test
				go func() {
					defer close(watching)
					deadline := time.Now().Add(30 * time.Second)
					for time.Now().Before(deadline) && ctx.Err() == nil {
						if regs, _ := envr.R.Registrations("user00000@contoso.com"); len(regs.Bindings) > 0 {
							break
						}
						time.Sleep(10 * time.Millisecond)
					}
					cancel(errors.New("interrupt signal received"))
				}()
			}
			code, stdout, stderr := runCLI(t, ctx, "load", "--scenario", sc, "--topology", topo, "--out", out, "--metrics", "", "--quiet", "--log-level", "error",
				"--admin", "http://"+envr.R.AdminAddr().String(), "--token", envr.R.Token())
			if code != tc.code || !strings.Contains(stdout, "thresholds NOT JUDGED: "+tc.why) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d)\n%s\n%s", code, tc.code, stdout, stderr)
			}
			if strings.Contains(stdout, "all thresholds passed") || strings.Contains(stdout, "PASS ") {
				t.Errorf("a run not judged printed a verdict:\n%s", stdout)
			}
			var sum struct {
				Completed bool   `json:"completed"`
				NotJudged string `json:"not_judged"`
				Verdicts  []any  `json:"verdicts"`
			}
			b, err := os.ReadFile(filepath.Join(out, "summary.json"))
			if err != nil || json.Unmarshal(b, &sum) != nil || !strings.HasPrefix(sum.NotJudged, tc.why) || len(sum.Verdicts) != 0 {
				t.Errorf("summary.json: %+v %v", sum, err)
			}
			if page, err := os.ReadFile(filepath.Join(out, "report.html")); err != nil || !strings.Contains(string(page), "NOT JUDGED") || strings.Contains(string(page), "every threshold passed") {
				t.Errorf("report.html does not say the thresholds were not judged (%v)", err)
			}
			// rendered again, the stream says the same, with exit 1
			code, stdout, _ = runCLI(t, context.Background(), "report", "--out", filepath.Join(out, "again"), out)
			if code != exitError || !strings.Contains(stdout, "thresholds NOT JUDGED: "+tc.why) {
				t.Errorf("report: exit %d\n%s", code, stdout)
			}
		})
	}
}
