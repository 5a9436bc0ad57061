package registrar_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/registrar"
	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/fabric"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

// eventually polls cond: timer callbacks of the fake clock run on their own goroutines.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func poolState(env *rt.Env, fqdn string) admin.Pool {
	for _, p := range env.R.Pools() {
		if p.FQDN == fqdn {
			return p
		}
	}
	return admin.Pool{}
}

func TestPoolQuorumLossShutdownColdStartRecovery(t *testing.T) {
	clock := clockwork.NewFakeClock()
	env := rt.Start(t, rt.Topology, registrar.WithClock(clock))
	survivor := env.Primary(t, alice)
	var others []string
	for _, f := range env.R.FrontEnds() {
		if f.Pool == "pool-a.contoso.com" && f.FQDN != survivor {
			others = append(others, f.FQDN)
		}
	}
	// A TCP client of the survivor is disconnected when quorum is lost (32189).
	tcp := rt.NewPhone(t, "tcp")
	if res, _ := tcp.RegisterAuth(env.Addr(t, survivor, "tcp"), tcp.Register(alice, "", 600), "user00042", "secret"); res.StatusCode != 200 {
		t.Fatal(res.StartLine())
	}
	for _, fe := range others {
		if _, err := env.R.FrontEndAction(fe, "stop"); err != nil {
			t.Fatal(err)
		}
	}
	p := poolState(env, "pool-a.contoso.com")
	if p.FabricState != "QuorumLost" || p.ShutdownAt == nil || !p.ShutdownAt.Equal(clock.Now().Add(5*time.Minute)) {
		t.Fatalf("pool after losing 2 of 3: %+v", p)
	}
	if fe := env.FrontEnd(t, survivor); fe.Connections != 0 || fe.State != "Starting" {
		t.Fatalf("survivor: %+v (connections should be closed, state Starting)", fe)
	}
	ph := rt.NewPhone(t, "udp")
	res, _ := ph.RegisterAuth(env.Addr(t, survivor, "udp"), ph.Register(alice, "", 600), "user00042", "secret")
	if res.StatusCode != 503 || rt.Header(res, "Retry-After") != "30" || !strings.HasPrefix(rt.Header(res, "ms-diagnostics"), "5000;") {
		t.Fatalf("REGISTER without quorum: %s Retry-After %q ms-diagnostics %q", res.StartLine(), rt.Header(res, "Retry-After"), rt.Header(res, "ms-diagnostics"))
	}
	assertEvents(t, env, 32163, 32189, 32173)
	// A pool without quorum serves nobody: its backup pool stops hearing it.
	if dr := poolState(env, "pool-a.contoso.com").DisasterRecovery; dr == nil || dr.Heard || dr.TimerLeft == 0 || !hasEvent(env, "HeartbeatLost") {
		t.Fatalf("pairing after quorum loss: %+v", dr)
	}

	clock.Advance(5 * time.Minute)
	eventually(t, "the survivor to stop its services", func() bool { return env.FrontEnd(t, survivor).State == "Stopped" })
	if p := poolState(env, "pool-a.contoso.com"); p.FabricState != "Stopped" {
		t.Fatalf("pool after the shutdown delay: %s", p.FabricState)
	}

	// Cold start: 3 of 3 needed; QuorumLossRecovery needs pool quorum (2).
	if _, err := env.R.FrontEndAction(others[0], "start"); err != nil {
		t.Fatal(err)
	}
	if fe := env.FrontEnd(t, others[0]); fe.State != "Starting" {
		t.Fatalf("first FE back: %s, want Starting", fe.State)
	}
	assertEvents(t, env, 32174, 32170)
	if _, err := env.R.ResetRegistrarState("pool-a.contoso.com", admin.ResetRequest{ResetType: "QuorumLossRecovery"}); err == nil {
		t.Fatal("QuorumLossRecovery with 1 of 3 running succeeded")
	}
	if _, err := env.R.FrontEndAction(others[1], "start"); err != nil {
		t.Fatal(err)
	}
	if p := poolState(env, "pool-a.contoso.com"); p.FabricState != "Starting" {
		t.Fatalf("2 of 3: %s, want Starting", p.FabricState)
	}
	if _, err := env.R.ResetRegistrarState("pool-a.contoso.com", admin.ResetRequest{ResetType: "QuorumLossRecovery"}); err != nil {
		t.Fatal(err)
	}
	if p := poolState(env, "pool-a.contoso.com"); p.FabricState != "Started" || p.MissingReplicas != 16 {
		t.Fatalf("after recovery: %+v (2 running FEs hold 2 of 3 replicas)", p)
	}
	ph.NewCallID()
	res, _ = ph.RegisterAuth(env.Addr(t, env.Primary(t, alice), "udp"), ph.Register(alice, "", 600), "user00042", "secret")
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER after recovery: %s", res.StartLine())
	}
}

const twelve = `
domain: contoso.com
admin: {listen: "127.0.0.1:0"}
fabric: {failure_detection: 2s}
pools:
  - fqdn: big.contoso.com
    routing_groups: 24
    ports: {udp: 0}
    front_ends: [%s]
users:
  - {range: "user{0000..0999}@contoso.com", pool: big.contoso.com, password: secret}
`

func TestRoutingGroupLossIn12FrontEndPool(t *testing.T) {
	var fes []string
	for i := 1; i <= 12; i++ {
		fes = append(fes, fmt.Sprintf("{address: 127.0.3.%d}", i))
	}
	clock := clockwork.NewFakeClock()
	env := rt.Start(t, fmt.Sprintf(twelve, strings.Join(fes, ", ")), registrar.WithClock(clock))
	user := "user0007@contoso.com"
	info, _ := env.R.UserPoolInfo(user)
	replicas := append([]string{info.PrimaryPoolPrimaryRegistrar}, info.PrimaryPoolBackupRegistrars...)
	if len(replicas) != 3 {
		t.Fatalf("replicas %v", replicas)
	}
	ph := rt.NewPhone(t, "udp")
	if res, _ := ph.RegisterAuth(env.Addr(t, replicas[0], "udp"), ph.Register(user, "", 600), "user0007", "secret"); res.StatusCode != 200 {
		t.Fatal(res.StartLine())
	}
	// The three replicas crash together; the fabric notices them together 2s later.
	for _, fe := range replicas {
		if _, err := env.R.FrontEndAction(fe, "crash"); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Second)
	eventually(t, "the crashes to be detected", func() bool {
		fs, _ := env.R.FabricState("big.contoso.com", true)
		return len(fs.MissingReplicas) > 0 && fs.MissingReplicas[0].Primary == ""
	})
	if p := poolState(env, "big.contoso.com"); p.FabricState != "Started" {
		t.Fatalf("9 of 12 running keeps pool quorum, state %s", p.FabricState)
	}
	other := ""
	for _, f := range env.R.FrontEnds() {
		if f.State == "Started" {
			other = f.FQDN
			break
		}
	}
	ph.NewCallID()
	res, _ := ph.RegisterAuth(env.Addr(t, other, "udp"), ph.Register(user, "", 600), "user0007", "secret")
	if res.StatusCode != 503 || !strings.HasPrefix(rt.Header(res, "ms-diagnostics"), "1007;") {
		t.Fatalf("REGISTER for a user of a lost RG: %s %q", res.StartLine(), rt.Header(res, "ms-diagnostics"))
	}
	if _, err := env.R.ResetRegistrarState("big.contoso.com", admin.ResetRequest{ResetType: string(fabric.QuorumLossRecovery)}); err != nil {
		t.Fatal(err)
	}
	primary := env.Primary(t, user)
	res, _ = ph.RegisterAuth(env.Addr(t, primary, "udp"), ph.Register(user, "", 600), "user0007", "secret")
	if res.StatusCode != 200 || !strings.Contains(rt.Header(res, "presence-State"), `"added"`) {
		t.Fatalf("after QuorumLossRecovery: %s %q (the registration was lost: added)", res.StartLine(), rt.Header(res, "presence-State"))
	}
}

func TestServiceResetRebalancesKeepingRegistrations(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	ph := rt.NewPhone(t, "udp")
	users := []string{}
	for i := 0; i < 40; i++ {
		aor := fmt.Sprintf("user%05d@contoso.com", i)
		ph.NewCallID()
		if res, _ := ph.RegisterAuth(env.Addr(t, env.Primary(t, aor), "udp"), ph.Register(aor, "", 600), aor[:9], "secret"); res.StatusCode != 200 {
			t.Fatalf("%s: %s", aor, res.StartLine())
		}
		users = append(users, aor)
	}
	fe1 := "fe01.pool-a.contoso.com"
	if _, err := env.R.FrontEndAction(fe1, "stop"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.R.FrontEndAction(fe1, "start"); err != nil {
		t.Fatal(err)
	}
	if fe := env.FrontEnd(t, fe1); fe.Primaries != 0 {
		t.Fatalf("a restarted FE took %d primaries by itself", fe.Primaries)
	}
	if _, err := env.R.ResetRegistrarState("pool-a.contoso.com", admin.ResetRequest{}); err != nil {
		t.Fatal(err)
	}
	if fe := env.FrontEnd(t, fe1); fe.Primaries == 0 {
		t.Fatal("ServiceReset did not give the restarted FE primaries")
	}
	for _, aor := range users {
		if regs, _ := env.R.Registrations(aor); len(regs.Bindings) != 1 {
			t.Fatalf("%s lost its binding in the rebalance (registrar %s)", aor, regs.Registrar)
		}
	}
	if _, err := env.R.ResetRegistrarState("pool-a.contoso.com", admin.ResetRequest{ResetType: "FullReset"}); err != nil {
		t.Fatal(err)
	}
	if p := poolState(env, "pool-a.contoso.com"); p.RegisteredUsers != 0 {
		t.Fatalf("FullReset kept %d registered users", p.RegisteredUsers)
	}
	for _, bad := range []admin.ResetRequest{{ResetType: "Reboot"}, {ResetType: "MachineStateRemoved"}, {ResetType: "MachineStateRemoved", MachineFqdn: "fe01.pool-b.contoso.com"}} {
		if _, err := env.R.ResetRegistrarState("pool-a.contoso.com", bad); err == nil {
			t.Errorf("reset %+v succeeded", bad)
		}
	}
	if _, err := env.R.ResetRegistrarState("pool-a.contoso.com", admin.ResetRequest{ResetType: "MachineStateRemoved", MachineFqdn: fe1}); err == nil {
		t.Error("MachineStateRemoved of a running FE succeeded")
	}
}

func assertEvents(t *testing.T, env *rt.Env, ids ...int) {
	t.Helper()
	seen := map[int]bool{}
	for _, e := range env.R.Events().Since(0) {
		seen[e.EventID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("no event %d in the log", id)
		}
	}
}

// TestCrashAndRestartWithinDetectionRejoins: a Front End crashed and started again before the
// fabric detected the crash used to stay Starting with no routing group for good (the late
// detection took it out of the fabric while its listeners ran, and `start` answered 409). It
// rejoins as a secondary, says why in the event log, and holds the replicated registrations of
// the routing groups it backs up.
func TestCrashAndRestartWithinDetectionRejoins(t *testing.T) {
	clock := clockwork.NewFakeClock()
	yaml := strings.Replace(rt.Topology, "failure_detection: 0s", "failure_detection: 10s", 1)
	env := rt.Start(t, yaml, registrar.WithClock(clock))
	crashed := env.Primary(t, alice)
	ph := rt.NewPhone(t, "udp")
	if res, _ := ph.RegisterAuth(env.Addr(t, crashed, "udp"), ph.Register(alice, "", 600), "user00042", "secret"); res.StatusCode != 200 {
		t.Fatal(res.StartLine())
	}
	if _, err := env.R.FrontEndAction(crashed, "crash"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	// The start handles the undetected crash at once, under the control-plane lock: no timer
	// is involved, so what it answers is final (package fabric checks that no detection is
	// left to fire later).
	fe, err := env.R.FrontEndAction(crashed, "start")
	if err != nil {
		t.Fatal(err)
	}
	if fe.State != "Started" || fe.Primaries != 0 || fe.Replicas == 0 {
		t.Fatalf("restarted within the detection interval: %+v, want Started holding secondaries only", fe)
	}
	var why bool
	for _, e := range env.R.Events().Since(0) {
		why = why || e.Kind == "FrontEndInactive" && e.FrontEnd == crashed && strings.Contains(e.Message, "restarted before its crash was detected")
	}
	if !why {
		t.Fatal("no event says the restarted Front End's crash was handled at its restart")
	}

	clock.Advance(time.Minute) // well past the detection interval
	if fe := env.FrontEnd(t, crashed); fe.State != "Started" || fe.Replicas == 0 {
		t.Fatalf("after the detection interval: %+v", fe)
	}

	// The registration survived on the promoted primary and was copied to the restarted Front
	// End, now a secondary: move the primary away until the restarted one holds it.
	info, _ := env.R.UserPoolInfo(alice)
	if info.PrimaryPoolPrimaryRegistrar == crashed || !slices.Contains(info.PrimaryPoolBackupRegistrars, crashed) {
		t.Fatalf("alice's routing group after the restart: %+v", info)
	}
	for moves := 0; env.Primary(t, alice) != crashed; moves++ {
		if moves == 10 {
			t.Fatalf("alice's routing group never came to %s: %+v", crashed, info)
		}
		prim := env.Primary(t, alice)
		for _, action := range []string{"stop", "start"} { // one at a time: quorum holds
			if _, err := env.R.FrontEndAction(prim, action); err != nil {
				t.Fatal(err)
			}
		}
	}
	if regs, _ := env.R.Registrations(alice); regs.Registrar != crashed || len(regs.Bindings) != 1 {
		t.Fatalf("the restarted Front End, now primary, holds %+v", regs)
	}
}
