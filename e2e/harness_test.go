//go:build e2e

// Package e2e runs the real fepool binary against real SIP peers (SIPp, baresip, linphonec,
// sipsak), all on loopback. scripts/test.sh installs the peers and runs these tests with
// -tags e2e.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fepool/fepool/registrar/admin"
)

var fepoolBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fepool-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fepoolBin = filepath.Join(dir, "fepool")
	build := exec.Command("go", "build", "-o", fepoolBin, "../cmd/fepool")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fepool:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need fails the test when a peer is missing: CI must run every peer, not skip it.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: scripts/test.sh installs it (apt-get install sip-tester baresip-core linphone-cli sipsak)", tool)
		}
	}
}

// server is a running `fepool serve`.
type server struct {
	url    string
	token  string
	cmd    *exec.Cmd
	admin  *admin.Client
	logs   *syncBuffer
	top    admin.Topology
	exited chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve starts fepool serve on a topology and stops it (SIGTERM, exit 0 expected) at cleanup.
func serve(t *testing.T, topology string) *server {
	t.Helper()
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, []byte(topology), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "admin.json")
	s := &server{logs: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(fepoolBin, "serve", "--config", topo, "--state-file", state, "--admin-listen", "127.0.0.1:0")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	go func() { exitErr = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			if exitErr != nil {
				t.Errorf("fepool serve exited with %v after SIGTERM; log:\n%s", exitErr, tail(s.logs.String(), 30))
			}
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			t.Errorf("fepool serve did not stop within 15s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("fepool serve log:\n%s", tail(s.logs.String(), 60))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct{ URL, Token string }
		if b, err := os.ReadFile(state); err == nil && json.Unmarshal(b, &st) == nil && st.Token != "" {
			s.url, s.token = st.URL, st.Token
			s.admin = admin.NewClient(st.URL, st.Token)
			break
		}
		select {
		case <-s.exited:
			t.Fatalf("fepool serve exited at start:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("fepool serve not ready after 20s:\n%s", s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	top, err := s.admin.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.top = top
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fe returns a Front End's bound address for a transport.
func (s *server) fe(t *testing.T, fqdn, transport string) netip.AddrPort {
	t.Helper()
	for _, f := range s.top.FrontEnds {
		if f.FQDN == fqdn {
			return mustAddr(t, map[string]string{"udp": f.UDP, "tcp": f.TCP, "tls": f.TLS}[transport])
		}
	}
	t.Fatalf("no Front End %s", fqdn)
	return netip.AddrPort{}
}

// door returns a pool's front door address for a transport.
func (s *server) door(t *testing.T, pool, transport string) netip.AddrPort {
	t.Helper()
	for _, p := range s.top.Pools {
		if p.FQDN == pool && p.FrontDoor != nil {
			return mustAddr(t, map[string]string{"udp": p.FrontDoor.UDP, "tcp": p.FrontDoor.TCP, "tls": p.FrontDoor.TLS}[transport])
		}
	}
	t.Fatalf("no front door for %s", pool)
	return netip.AddrPort{}
}

func mustAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return a
}

func (s *server) userInfo(t *testing.T, aor string) admin.UserPoolInfo {
	t.Helper()
	info, err := s.admin.UserPoolInfo(context.Background(), aor)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func (s *server) registrations(t *testing.T, aor string) admin.Registrations {
	t.Helper()
	r, err := s.admin.Registrations(context.Background(), aor)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ctl runs `fepool ctl` against the server.
func (s *server) ctl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(fepoolBin, args...)
	cmd.Env = append(os.Environ(), "FEPOOL_ADMIN="+s.url, "FEPOOL_ADMIN_TOKEN="+s.token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fepool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// run runs a command with a timeout and returns its combined output and exit code.
func run(t *testing.T, timeout time.Duration, dir string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s:\n%s", name, timeout, tail(string(out), 40))
	}
	return string(out), code
}

// topology is the e2e topology: the default's shape on ephemeral ports, crashes detected in 1 s.
const topology = `
domain: contoso.com
fabric: {failure_detection: 1s}
pools:
  - fqdn: pool-a.contoso.com
    edition: enterprise
    backup: pool-b.contoso.com
    routing_groups: 64
    ports: {udp: 0, tcp: 0, tls: 0}
    front_door: {address: 127.0.1.100, udp: 0, tcp: 0, mode: proxy}
    front_ends: [{address: 127.0.1.1}, {address: 127.0.1.2}, {address: 127.0.1.3}]
  - fqdn: pool-b.contoso.com
    edition: enterprise
    backup: pool-a.contoso.com
    routing_groups: 64
    ports: {udp: 0, tcp: 0, tls: 0}
    front_door: {address: 127.0.2.100, udp: 0, tcp: 0, mode: proxy}
    front_ends: [{address: 127.0.2.1}, {address: 127.0.2.2}, {address: 127.0.2.3}]
users:
  - {range: "user{00000..09999}@contoso.com", pool: pool-a.contoso.com, password: secret}
  - {range: "user{10000..19999}@contoso.com", pool: pool-b.contoso.com, password: secret}
`
