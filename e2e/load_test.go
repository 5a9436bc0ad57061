//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoadRealtime runs `fepool load --realtime` against `fepool serve`: every thread of the load
// process runs under SCHED_RR while it works, the run says so at start and in its summary, and
// it passes as it would without.
func TestLoadRealtime(t *testing.T) {
	srv := serve(t, topology)
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.yaml")
	sc := filepath.Join(dir, "realtime.yaml")
	if err := os.WriteFile(topo, []byte(topology), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sc, []byte(`name: realtime
clients: 40
ramp: {rate: 200}
steps:
  - {name: signed in, wait: {until: all_signed_in, timeout: 30s}}
  - {name: idle, hold: 2s}
thresholds: [never_signed_in == 0]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	logs := &syncBuffer{}
	cmd := exec.Command(fepoolBin, "load", "--realtime", "--scenario", sc, "--topology", topo, "--out", out,
		"--admin", srv.url, "--token", srv.token, "--quiet", "--metrics", "", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// While it runs (its clients are signed in by then), every thread has policy 2 (SCHED_RR).
	var policies map[string]int
	deadline := time.After(45 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-exited:
			break wait
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("fepool load did not finish within 45s:\n%s", logs.String())
		case <-tick.C:
			if p := threadPolicies(cmd.Process.Pid); len(p) > 0 {
				policies = p
			}
		}
	}
	if strings.Contains(logs.String(), "kernel refused real-time scheduling") {
		t.Skipf("the kernel does not permit real-time scheduling here:\n%s", logs.String())
	}
	if err != nil {
		t.Fatalf("fepool load --realtime: %v\n%s", err, logs.String())
	}
	if len(policies) == 0 {
		t.Fatal("never saw the load process's threads")
	}
	for tid, p := range policies {
		if p != 2 {
			t.Errorf("thread %s has scheduling policy %d, not SCHED_RR (2)", tid, p)
		}
	}
	if s := logs.String(); !strings.Contains(s, "scheduling: real-time (SCHED_RR 1)") || !strings.Contains(s, "(real-time scheduling)") {
		t.Errorf("the run does not say it ran under real-time scheduling:\n%s", s)
	}
	var sum struct{ Realtime bool }
	if b, err := os.ReadFile(filepath.Join(out, "summary.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &sum); err != nil || !sum.Realtime {
		t.Errorf("summary.json: realtime %v (%v)", sum.Realtime, err)
	}
}

// threadPolicies reads the scheduling policy of each thread of a process (field 41 of
// /proc/PID/task/TID/stat).
func threadPolicies(pid int) map[string]int {
	base := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	m := map[string]int{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(base, e.Name(), "stat"))
		if err != nil {
			continue
		}
		// the fields after the command name, which is in parentheses: state is field 3
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 39 {
			continue
		}
		if p, err := strconv.Atoi(f[38]); err == nil {
			m[e.Name()] = p
		}
	}
	return m
}
