package registrar_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/registrar"
	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/eventlog"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

const (
	poolA = "pool-a.contoso.com"
	poolB = "pool-b.contoso.com"
	bob   = "sip:bob@contoso.com"
)

var drStart = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// drEnv starts the test topology with pairing settings appended and a fake clock.
func drEnv(t *testing.T, extra string) (*rt.Env, *clockwork.FakeClock) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(drStart)
	return rt.Start(t, rt.Topology+extra, registrar.WithClock(clock)), clock
}

// signIn registers aor at dst with a fresh Call-ID and returns the final response.
func signIn(t *testing.T, ph *rt.Phone, dst netip.AddrPort, aor string) *sip.Response {
	t.Helper()
	ph.NewCallID()
	user, _, _ := strings.Cut(aor, "@")
	res, _ := ph.RegisterAuth(dst, ph.Register(aor, "", 600), user, "secret")
	return res
}

// addContact sends a SERVICE adding uri to aor's contact list at dst.
func addContact(t *testing.T, ph *rt.Phone, dst netip.AddrPort, aor, uri string) *sip.Response {
	t.Helper()
	user, _, _ := strings.Cut(aor, "@")
	res, _ := ph.RegisterAuth(dst, ph.Service(aor, []string{uri}, nil), user, "secret")
	return res
}

func mode(res *sip.Response) string {
	ps := rt.Header(res, "presence-State")
	if strings.Contains(ps, "user-services-state=unavailable") && strings.Contains(ps, `is-connected-to-primary="no"`) {
		return "resiliency"
	}
	if strings.Contains(ps, `is-connected-to-primary="yes"`) && !strings.Contains(ps, "user-services-state") {
		return "regular"
	}
	return "?" + ps
}

func wantOK(t *testing.T, res *sip.Response, wantMode string) {
	t.Helper()
	if res.StatusCode != 200 {
		t.Fatalf("got %s (ms-diagnostics %q), want 200 in %s mode", res.StartLine(), rt.Header(res, "ms-diagnostics"), wantMode)
	}
	if got := mode(res); wantMode != "" && got != wantMode {
		t.Fatalf("mode %s, want %s", got, wantMode)
	}
}

func wantRefused(t *testing.T, res *sip.Response, code int, diag string) {
	t.Helper()
	if res.StatusCode != code || !strings.Contains(rt.Header(res, "ms-diagnostics"), diag) {
		t.Fatalf("got %s ms-diagnostics %q, want %d with %q", res.StartLine(), rt.Header(res, "ms-diagnostics"), code, diag)
	}
}

// waitEvent waits for an event of kind (after seq) and returns it.
func waitEvent(t *testing.T, env *rt.Env, kind string) eventlog.Event {
	t.Helper()
	var got eventlog.Event
	eventually(t, "event "+kind, func() bool {
		for _, e := range env.R.Events().Since(0) {
			if e.Kind == kind {
				got = e
				return true
			}
		}
		return false
	})
	env.R.Health() // takes the control-plane lock: whatever recorded the event has finished
	return got
}

func hasEvent(env *rt.Env, kind string) bool {
	for _, e := range env.R.Events().Since(0) {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

func drState(t *testing.T, env *rt.Env, pool string) admin.DisasterRecovery {
	t.Helper()
	p := poolState(env, pool)
	if p.DisasterRecovery == nil {
		t.Fatalf("%s has no disaster-recovery state", pool)
	}
	return *p.DisasterRecovery
}

// nextNotify waits for a registration-notify and checks it names preferred (ip:port).
func nextNotify(t *testing.T, ch <-chan *sip.Request, preferred netip.AddrPort) {
	t.Helper()
	select {
	case req := <-ch:
		if ev := req.GetHeader("Event"); ev == nil || ev.Value() != "registration-notify" {
			t.Fatalf("NOTIFY without Event: registration-notify:\n%s", req)
		}
		if body := string(req.Body()); body != "deregistered;event=preferred-registrar-change" {
			t.Fatalf("NOTIFY body %q", body)
		}
		if pr := req.GetHeader("P-Preferred-Registrar"); pr == nil || !strings.Contains(pr.Value(), preferred.String()) {
			t.Fatalf("P-Preferred-Registrar %v, want %s", pr, preferred)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no registration-notify naming %s", preferred)
	}
}

func TestPoolFailureTimerResiliencyFailoverFailback(t *testing.T) {
	env, clock := drEnv(t, "pairing: {failback_wait: 2s, failback_pace: {users: 10, per: 1s}}\n")
	info, _ := env.R.UserPoolInfo(alice)
	home, backup := env.Addr(t, info.PrimaryPoolPrimaryRegistrar, "udp"), env.Addr(t, info.BackupPoolPrimaryRegistrar, "udp")
	ph := rt.NewPhone(t, "udp")
	notes := ph.Notifies()

	wantOK(t, signIn(t, ph, home, alice), "regular")
	if res := addContact(t, ph, home, alice, bob); res.StatusCode != 200 {
		t.Fatalf("contact add in regular mode: %s", res.StartLine())
	}

	// The home pool fails: the backup refuses its users until the resiliency timer expires.
	if _, err := env.R.PoolAction(poolA, "crash"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, env, "HeartbeatLost")
	res := signIn(t, ph, backup, alice)
	wantRefused(t, res, 503, "resiliency timer has not expired")
	if ra := rt.Header(res, "Retry-After"); ra != "30" {
		t.Fatalf("Retry-After %q: want the configured 30 s (the timer has 120 s left)", ra)
	}
	if dr := drState(t, env, poolA); dr.Heard || dr.TimerLeft != 120 || dr.UsersServedBy != "" {
		t.Fatalf("pairing after the crash: %+v", dr)
	}
	clock.Advance(119 * time.Second)
	res = signIn(t, ph, backup, alice)
	wantRefused(t, res, 503, "1007")
	if ra := rt.Header(res, "Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q one second before the timer", ra)
	}
	clock.Advance(time.Second)
	waitEvent(t, env, "ResiliencyTimerExpired")
	wantOK(t, signIn(t, ph, backup, alice), "resiliency")
	// Through the front door too (proxy mode: forwarded to the backup pool).
	door := rt.NewPhone(t, "udp")
	wantOK(t, signIn(t, door, env.DoorAddr(t, poolA, "udp"), "user00043@contoso.com"), "resiliency")
	// pool-b's front door (redirect mode) sends pool-a's users to pool-b now.
	if res := signIn(t, rt.NewPhone(t, "udp"), env.DoorAddr(t, poolB, "udp"), alice); res.StatusCode != 301 || !strings.Contains(rt.Headers(res, "Contact")[0], backup.String()) {
		t.Fatalf("redirect-mode front door after the timer: %s %v", res.StartLine(), rt.Headers(res, "Contact"))
	}
	// Resiliency mode refuses persistent changes.
	wantRefused(t, addContact(t, ph, backup, alice, "sip:carol@contoso.com"), 503, "resiliency mode")
	if u, _ := env.R.UserPoolInfo(alice); u.RegisteredAtPoolFqdn != poolB || u.Mode != "resiliency" || u.PrimaryPoolFqdn != poolA {
		t.Fatalf("Get-CsUserPoolInfo in resiliency: %+v", u)
	}

	// Failover in disaster mode: users at the backup sign in again and get regular mode.
	out, err := env.R.FailOver(poolA, admin.FailOverRequest{DisasterMode: true})
	if err != nil || out.State != "FailedOver" {
		t.Fatalf("Invoke-CsPoolFailOver -DisasterMode: %+v %v", out, err)
	}
	nextNotify(t, notes, backup)
	if regs, _ := env.R.Registrations(alice); len(regs.Bindings) != 0 {
		t.Fatalf("the notified registration is still held: %+v", regs)
	}
	wantOK(t, signIn(t, ph, backup, alice), "regular")
	if res := addContact(t, ph, backup, alice, "sip:carol@contoso.com"); res.StatusCode != 200 {
		t.Fatalf("contact add after failover: %s %s", res.StartLine(), rt.Header(res, "ms-diagnostics"))
	}
	if u, _ := env.R.UserPoolInfo(alice); u.RegisteredAtPoolFqdn != poolB || u.Mode != "regular" || u.UserServicesPoolFqdn != poolB || u.DisasterRecoveryState != "FailedOver" {
		t.Fatalf("Get-CsUserPoolInfo after failover: %+v", u)
	}
	// The home pool's Front Ends redirect to the backup while failed over.
	if _, err := env.R.PoolAction(poolA, "start"); err != nil {
		t.Fatal(err)
	}
	res = signIn(t, rt.NewPhone(t, "udp"), home, alice)
	if res.StatusCode != 301 || !strings.Contains(rt.Headers(res, "Contact")[0], backup.String()) {
		t.Fatalf("home Front End while failed over: %s %v", res.StartLine(), rt.Headers(res, "Contact"))
	}

	// Failback: data synced back, then signed-in users move home at the pace.
	fb, err := env.R.FailBack(poolA, admin.FailBackRequest{})
	if err != nil || fb.State != "FailingBack" {
		t.Fatalf("Invoke-CsPoolFailBack: %+v %v", fb, err)
	}
	// New sign-ins go home in resiliency mode; users still at the backup stay there.
	wantOK(t, signIn(t, door, env.DoorAddr(t, poolA, "udp"), "user00043@contoso.com"), "resiliency")
	if u, _ := env.R.UserPoolInfo("user00043@contoso.com"); u.RegisteredAtPoolFqdn != poolA {
		t.Fatalf("a new sign-in during failback: %+v", u)
	}
	clock.Advance(2 * time.Second) // the sync wait
	waitEvent(t, env, "PoolFailbackMovingUsers")
	clock.Advance(time.Second)
	nextNotify(t, notes, home)
	waitEvent(t, env, "PoolFailedBack")
	wantOK(t, signIn(t, ph, home, alice), "regular")
	if dr := drState(t, env, poolA); dr.State != "Active" || dr.UsersServedBy != poolA || dr.Mode != "regular" {
		t.Fatalf("after failback: %+v", dr)
	}
	// No contact was lost on the way.
	cs, err := env.R.Contacts(alice)
	if err != nil || cs.BackEnd != poolA || len(cs.Contacts) != 2 || cs.Contacts[0].URI != bob || cs.Contacts[1].URI != "sip:carol@contoso.com" {
		t.Fatalf("contacts after failback: %+v %v", cs, err)
	}
}

func TestBeforeTimerAnswers(t *testing.T) {
	for _, tc := range []struct{ setting, want string }{{"480", "480"}, {"drop", "timeout"}} {
		t.Run(tc.setting, func(t *testing.T) {
			env, _ := drEnv(t, "pairing: {before_timer: "+tc.setting+"}\n")
			info, _ := env.R.UserPoolInfo(alice)
			if _, err := env.R.PoolAction(poolA, "stop"); err != nil {
				t.Fatal(err)
			}
			ph := rt.NewPhone(t, "tcp") // TCP: a dropped request is not retransmitted
			dst := env.Addr(t, info.BackupPoolPrimaryRegistrar, "tcp")
			req := ph.Register(alice, "", 600)
			res, err := ph.Send(dst, req)
			if err != nil || res.StatusCode != 401 {
				t.Fatalf("challenge first: %v %v", res, err)
			}
			res, err = ph.Send(dst, ph.Authorize(req, res, "user00042", "secret", ""))
			if tc.want == "timeout" {
				if err == nil {
					t.Fatalf("answered %s, want silence", res.StartLine())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantRefused(t, res, 480, "1007")
			if rt.Header(res, "Retry-After") == "" {
				t.Fatal("480 without Retry-After")
			}
		})
	}
}

func TestPlannedFailoverSyncsDataAndMovesSignedInUsers(t *testing.T) {
	env, clock := drEnv(t, "")
	info, _ := env.R.UserPoolInfo(alice)
	home, backup := env.Addr(t, info.PrimaryPoolPrimaryRegistrar, "udp"), env.Addr(t, info.BackupPoolPrimaryRegistrar, "udp")
	ph := rt.NewPhone(t, "udp")
	notes := ph.Notifies()
	wantOK(t, signIn(t, ph, home, alice), "regular")
	if res := addContact(t, ph, home, alice, bob); res.StatusCode != 200 {
		t.Fatal(res.StartLine())
	}

	// -WhatIf describes and changes nothing.
	out, err := env.R.FailOver(poolA, admin.FailOverRequest{WhatIf: true, WaitTime: "00:00:10"})
	if err != nil || !out.WhatIf || out.State != "Active" || !strings.Contains(out.Message, "What if:") || !strings.Contains(out.Message, "10s") {
		t.Fatalf("-WhatIf: %+v %v", out, err)
	}
	if regs, _ := env.R.Registrations(alice); len(regs.Bindings) != 1 {
		t.Fatal("-WhatIf moved the user")
	}

	out, err = env.R.FailOver(poolA, admin.FailOverRequest{WaitTime: "10s"})
	if err != nil || out.State != "FailingOver" {
		t.Fatalf("planned failover: %+v %v", out, err)
	}
	// Signed-in users are signed out at home and sign in at the backup, in resiliency mode
	// until the failover completes; the home pool redirects them there.
	nextNotify(t, notes, backup)
	res := signIn(t, rt.NewPhone(t, "udp"), home, alice)
	if res.StatusCode != 301 || !strings.Contains(rt.Headers(res, "Contact")[0], backup.String()) {
		t.Fatalf("home during failover: %s %v", res.StartLine(), rt.Headers(res, "Contact"))
	}
	wantOK(t, signIn(t, ph, backup, alice), "resiliency")
	clock.Advance(10 * time.Second)
	waitEvent(t, env, "PoolFailedOver")
	nextNotify(t, notes, backup)
	wantOK(t, signIn(t, ph, backup, alice), "regular")
	// The contact added at home was synced to the backup's Back End.
	if cs, err := env.R.Contacts(alice); err != nil || cs.BackEnd != poolB || len(cs.Contacts) != 1 || cs.Contacts[0].URI != bob {
		t.Fatalf("contacts at the backup: %+v %v", cs, err)
	}
}

func TestPairingCmdletRefusals(t *testing.T) {
	env, _ := drEnv(t, "")
	conflict := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, admin.ErrConflict) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want a conflict saying %q", what, err, want)
		}
	}
	if _, err := env.R.FailOver("pool-x.contoso.com", admin.FailOverRequest{}); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("unknown pool: %v", err)
	}
	if _, err := env.R.FailOver(poolA, admin.FailOverRequest{WaitTime: "soon"}); !errors.Is(err, admin.ErrBadRequest) {
		t.Fatalf("bad -WaitTime: %v", err)
	}
	_, err := env.R.FailBack(poolA, admin.FailBackRequest{})
	conflict("failback of an active pool", err, "not FailedOver")

	// A planned failover needs the Back End for its sync: refused, nothing changed.
	if _, err := env.R.PoolAction(poolB, "backend-down"); err != nil {
		t.Fatal(err)
	}
	_, err = env.R.FailOver(poolA, admin.FailOverRequest{})
	conflict("planned failover with the backup's Back End down", err, "data sync")
	if dr := drState(t, env, poolA); dr.State != "Active" {
		t.Fatalf("a refused failover changed the state: %+v", dr)
	}
	if _, err := env.R.PoolAction(poolB, "backend-up"); err != nil {
		t.Fatal(err)
	}

	// A planned failover needs the home pool; a failover needs the backup pool.
	if _, err := env.R.PoolAction(poolA, "crash"); err != nil {
		t.Fatal(err)
	}
	_, err = env.R.FailOver(poolA, admin.FailOverRequest{})
	conflict("planned failover of a failed pool", err, "use -DisasterMode")
	if _, err := env.R.PoolAction(poolB, "stop"); err != nil {
		t.Fatal(err)
	}
	_, err = env.R.FailOver(poolA, admin.FailOverRequest{DisasterMode: true})
	conflict("failover to a stopped backup", err, "backup pool does not serve")
	if _, err := env.R.PoolAction(poolB, "start"); err != nil {
		t.Fatal(err)
	}

	if _, err := env.R.FailOver(poolA, admin.FailOverRequest{DisasterMode: true}); err != nil {
		t.Fatal(err)
	}
	_, err = env.R.FailOver(poolA, admin.FailOverRequest{DisasterMode: true})
	conflict("a second failover", err, "FailedOver")
	_, err = env.R.FailBack(poolA, admin.FailBackRequest{})
	conflict("failback before the home pool is back", err, "restore it first")
	// The other direction of the pair is independent.
	if dr := drState(t, env, poolB); dr.State != "Active" {
		t.Fatalf("pool-b's own users: %+v", dr)
	}

	// Pool actions.
	if _, err := env.R.PoolAction(poolA, "crash"); !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("crash of a pool with nothing running: %v", err)
	}
	if _, err := env.R.PoolAction(poolA, "explode"); !errors.Is(err, admin.ErrBadRequest) {
		t.Fatalf("unknown action: %v", err)
	}
	if _, err := env.R.PoolAction(poolB, "heal"); !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("heal without a partition: %v", err)
	}
	rel, err := env.R.BackupRelationship(poolA)
	if err != nil || rel.BackupPoolFqdn != poolB || rel.State != "FailedOver" || rel.BackupPoolState != "Active" {
		t.Fatalf("Get-CsPoolBackupRelationship: %+v %v", rel, err)
	}
}

func TestPoolWithoutBackupIsRefused(t *testing.T) {
	yaml := strings.Replace(strings.Replace(rt.Topology, "    backup: pool-b.contoso.com\n", "", 1), "    backup: pool-a.contoso.com\n", "", 1)
	env := rt.Start(t, yaml)
	for name, err := range map[string]error{
		"failover":  func() error { _, err := env.R.FailOver(poolA, admin.FailOverRequest{DisasterMode: true}); return err }(),
		"failback":  func() error { _, err := env.R.FailBack(poolA, admin.FailBackRequest{}); return err }(),
		"relation":  func() error { _, err := env.R.BackupRelationship(poolA); return err }(),
		"partition": func() error { _, err := env.R.PoolAction(poolA, "partition"); return err }(),
	} {
		if !errors.Is(err, admin.ErrBadRequest) || !strings.Contains(err.Error(), "has no backup pool") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Its users get 503 when it fails: no pool can serve them.
	if _, err := env.R.PoolAction(poolA, "stop"); err != nil {
		t.Fatal(err)
	}
	ph := rt.NewPhone(t, "udp")
	wantRefused(t, signIn(t, ph, env.DoorAddr(t, poolA, "udp"), alice), 503, "1007")
}

func TestBackEndOutageLimitedThenSurvivable(t *testing.T) {
	env, clock := drEnv(t, "back_end: {survivable_after: 10m}\n")
	home := env.Addr(t, env.Primary(t, alice), "udp")
	ph := rt.NewPhone(t, "udp")
	if _, err := env.R.PoolAction(poolA, "backend-down"); err != nil {
		t.Fatal(err)
	}
	// Limited functionality: registration works in regular mode, persistent changes fail.
	wantOK(t, signIn(t, ph, home, alice), "regular")
	wantRefused(t, addContact(t, ph, home, alice, bob), 503, "Back End unavailable")
	if p := poolState(env, poolA); p.BackEnd.Up || p.BackEnd.DownSince == nil || p.BackEnd.Survivable {
		t.Fatalf("pool during the outage: %+v", p.BackEnd)
	}
	// Survivable mode after the threshold: resiliency mode.
	clock.Advance(10 * time.Minute)
	waitEvent(t, env, "SurvivableModeStarted")
	wantOK(t, signIn(t, ph, home, alice), "resiliency")
	if _, err := env.R.PoolAction(poolA, "backend-up"); err != nil {
		t.Fatal(err)
	}
	wantOK(t, signIn(t, ph, home, alice), "regular")
	if res := addContact(t, ph, home, alice, bob); res.StatusCode != 200 {
		t.Fatalf("contact add after the Back End returned: %s", res.StartLine())
	}
}

func TestPartitionBothPoolsServe(t *testing.T) {
	env, clock := drEnv(t, "")
	info, _ := env.R.UserPoolInfo(alice)
	home, backup := env.Addr(t, info.PrimaryPoolPrimaryRegistrar, "udp"), env.Addr(t, info.BackupPoolPrimaryRegistrar, "udp")
	ph := rt.NewPhone(t, "udp")
	if _, err := env.R.PoolAction(poolA, "partition"); err != nil {
		t.Fatal(err)
	}
	if dr := drState(t, env, poolA); !dr.Partitioned || dr.Heard {
		t.Fatalf("partitioned pairing: %+v", dr)
	}
	// Contact changes made now do not reach the backup's Back End until the link heals.
	if res := addContact(t, ph, home, alice, bob); res.StatusCode != 200 {
		t.Fatal(res.StartLine())
	}
	if dr := drState(t, env, poolA); dr.UnsyncedSince == nil {
		t.Fatal("a change made during the partition is not marked for the backup service")
	}
	clock.Advance(120 * time.Second)
	waitEvent(t, env, "ResiliencyTimerExpired")
	// Split brain: the home pool still serves its users, and the backup serves them too.
	wantOK(t, signIn(t, ph, home, alice), "regular")
	wantOK(t, signIn(t, rt.NewPhone(t, "udp"), backup, alice), "resiliency")
	if _, err := env.R.PoolAction(poolA, "heal"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, env, "HeartbeatRestored")
	waitEvent(t, env, "BackupServiceSynced")
	res := signIn(t, rt.NewPhone(t, "udp"), backup, alice)
	if res.StatusCode != 301 {
		t.Fatalf("backup after the partition healed: %s", res.StartLine())
	}
	if dr := drState(t, env, poolA); dr.UnsyncedSince != nil || dr.Partitioned {
		t.Fatalf("after healing: %+v", dr)
	}
}

// persistentTopology writes the test topology with file Back Ends into a directory.
func persistentTopology(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	yaml := strings.Replace(rt.Topology, "    backup: pool-b.contoso.com\n", "    backup: pool-b.contoso.com\n    back_end: {path: pool-a.db}\n", 1)
	yaml = strings.Replace(yaml, "    backup: pool-a.contoso.com\n", "    backup: pool-a.contoso.com\n    back_end: {path: pool-b.db}\n", 1)
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestContactsAndStatePersistAcrossCrashAndRestart(t *testing.T) {
	path := persistentTopology(t)
	env := rt.StartFile(t, path)
	ph := rt.NewPhone(t, "udp")
	primary := env.Primary(t, alice)
	if res := addContact(t, ph, env.Addr(t, primary, "udp"), alice, bob); res.StatusCode != 200 {
		t.Fatal(res.StartLine())
	}
	if _, err := env.R.FrontEndAction(primary, "crash"); err != nil {
		t.Fatal(err)
	}
	if cs, _ := env.R.Contacts(alice); len(cs.Contacts) != 1 {
		t.Fatalf("contacts after a Front End crash: %+v", cs)
	}
	// A failover left mid-way (a long planned sync) by a restart completes on start.
	if _, err := env.R.FailOver(poolA, admin.FailOverRequest{WaitTime: "1h"}); err != nil {
		t.Fatal(err)
	}
	env.R.Close()

	env = rt.StartFile(t, path)
	if dr := drState(t, env, poolA); dr.State != "FailedOver" {
		t.Fatalf("state after a restart mid-failover: %+v", dr)
	}
	if !hasEvent(env, "PoolStateRestored") || !hasEvent(env, "PoolFailedOver") {
		t.Fatal("the restart did not report the restored and completed failover")
	}
	if cs, _ := env.R.Contacts(alice); cs.BackEnd != poolB || len(cs.Contacts) != 1 || cs.Contacts[0].URI != bob {
		t.Fatalf("contacts after a restart: %+v", cs)
	}

	// A failback interrupted by a restart completes too, and the contact list is home.
	if _, err := env.R.FailBack(poolA, admin.FailBackRequest{WaitTime: "1h"}); err != nil {
		t.Fatal(err)
	}
	env.R.Close()
	env = rt.StartFile(t, path)
	eventually(t, "the restored failback to complete", func() bool { return drState(t, env, poolA).State == "Active" })
	if cs, _ := env.R.Contacts(alice); cs.BackEnd != poolA || len(cs.Contacts) != 1 || cs.Contacts[0].URI != bob {
		t.Fatalf("contacts after a restart mid-failback: %+v", cs)
	}
}

func TestServiceRequests(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	dst := env.Addr(t, env.Primary(t, alice), "udp")
	ph := rt.NewPhone(t, "udp")
	req := ph.Service(alice, []string{bob}, nil)
	req.SetBody([]byte("<not-soap"))
	if res, _ := ph.RegisterAuth(dst, req, "user00042", "secret"); res.StatusCode != 400 {
		t.Fatalf("garbage body: %s", res.StartLine())
	}
	if res, _ := ph.RegisterAuth(dst, ph.Service("nobody@contoso.com", []string{bob}, nil), "nobody", "secret"); res.StatusCode != 401 {
		t.Fatalf("unknown user: %s, want the 401 of a wrong password", res.StartLine())
	}
	if res, _ := ph.RegisterAuth(dst, ph.Service(alice, []string{bob}, nil), "user00042", "wrong"); res.StatusCode != 401 {
		t.Fatalf("wrong password: %s", res.StartLine())
	}
	other := env.Addr(t, env.NonPrimary(t, alice), "udp")
	if res, _ := ph.RegisterAuth(other, ph.Service(alice, []string{bob}, nil), "user00042", "secret"); res.StatusCode != 301 {
		t.Fatalf("at a non-primary Front End: %s", res.StartLine())
	}
	open := env.Addr(t, env.Primary(t, "open@contoso.com"), "udp")
	if res, _ := ph.RegisterAuth(open, ph.Service("open@contoso.com", []string{bob}, []string{"sip:eve@contoso.com"}), "", ""); res.StatusCode != 200 {
		t.Fatalf("a user without auth: %s", res.StartLine())
	}
	if cs, _ := env.R.Contacts("open@contoso.com"); len(cs.Contacts) != 1 || cs.Contacts[0].URI != bob {
		t.Fatalf("contacts %+v", cs)
	}
}

// TestTLSThroughProxyFrontDoor: a TLS client registers through a proxy front door (the front
// door's TLS hop to the Front End trusts the emulator's own certificate), and a planned
// failover's registration-notify reaches it back through the front door over TLS.
func TestTLSThroughProxyFrontDoor(t *testing.T) {
	yaml := strings.Replace(rt.Topology, "front_door: {address: 127.0.1.100, udp: 0, tcp: 0, mode: proxy}", "front_door: {address: 127.0.1.100, udp: 0, tcp: 0, tls: 0, mode: proxy}", 1)
	env := rt.Start(t, yaml)
	info, _ := env.R.UserPoolInfo(alice)
	ph := rt.NewPhone(t, "tls")
	notes := ph.Notifies()
	wantOK(t, signIn(t, ph, env.DoorAddr(t, poolA, "tls"), alice), "regular")
	if regs, _ := env.R.Registrations(alice); len(regs.Bindings) != 1 || regs.Bindings[0].Transport != "TLS" || len(regs.Bindings[0].Path) != 1 {
		t.Fatalf("binding through the TLS front door: %+v", regs)
	}
	if _, err := env.R.FailOver(poolA, admin.FailOverRequest{WaitTime: "1s"}); err != nil {
		t.Fatal(err)
	}
	// pool-b has no TLS listener: the preferred registrar is its UDP address.
	nextNotify(t, notes, env.Addr(t, info.BackupPoolPrimaryRegistrar, "udp"))
}

// TestFailbackAbortedWhenHomeFailsAgain: a home pool that fails during the failback does not
// get users moved into it; the users stay with the backup pool in regular mode.
func TestFailbackAbortedWhenHomeFailsAgain(t *testing.T) {
	env, clock := drEnv(t, "pairing: {failback_wait: 10s}\n")
	info, _ := env.R.UserPoolInfo(alice)
	backup := env.Addr(t, info.BackupPoolPrimaryRegistrar, "udp")
	if _, err := env.R.PoolAction(poolA, "crash"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.R.FailOver(poolA, admin.FailOverRequest{DisasterMode: true}); err != nil {
		t.Fatal(err)
	}
	ph := rt.NewPhone(t, "udp")
	wantOK(t, signIn(t, ph, backup, alice), "regular")
	if _, err := env.R.PoolAction(poolA, "start"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.R.FailBack(poolA, admin.FailBackRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.R.PoolAction(poolA, "crash"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, env, "PoolFailbackAborted")
	clock.Advance(time.Minute)
	if dr := drState(t, env, poolA); dr.State != "FailedOver" || dr.UsersServedBy != poolB || dr.Mode != "regular" {
		t.Fatalf("after the aborted failback: %+v", dr)
	}
	if regs, _ := env.R.Registrations(alice); regs.RegisteredAt != poolB || len(regs.Bindings) != 1 {
		t.Fatalf("the user was moved into a dead pool: %+v", regs)
	}
	wantOK(t, signIn(t, ph, backup, alice), "regular")
}

func TestWhatIfRefusesWhatTheRunWould(t *testing.T) {
	env, _ := drEnv(t, "")
	if _, err := env.R.PoolAction(poolB, "backend-down"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.R.FailOver(poolA, admin.FailOverRequest{WhatIf: true}); !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("-WhatIf of a planned failover that cannot sync: %v", err)
	}
	if out, err := env.R.FailOver(poolA, admin.FailOverRequest{WhatIf: true, DisasterMode: true}); err != nil || !out.WhatIf {
		t.Fatalf("-WhatIf -DisasterMode: %+v %v", out, err)
	}
}

func TestAdminAfterClose(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	env.R.Close()
	if ps := env.R.Pools(); len(ps) != 2 {
		t.Fatalf("Pools after Close: %+v", ps)
	}
	if _, err := env.R.Contacts(alice); !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("Contacts after Close: %v", err)
	}
	if _, err := env.R.FailOver(poolA, admin.FailOverRequest{DisasterMode: true}); !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("FailOver after Close: %v", err)
	}
}
