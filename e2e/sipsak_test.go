//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func sipsakRegister(t *testing.T, dst string, user, transport string) {
	t.Helper()
	args := []string{"-U", "-s", fmt.Sprintf("sip:%s@%s", user, dst), "-u", user, "-a", "secret", "-i", "-x", "600"}
	if transport == "tcp" {
		args = append(args, "-E", "tcp")
	}
	out, code := run(t, 30*time.Second, t.TempDir(), "sipsak", args...)
	if code != 0 {
		t.Fatalf("sipsak REGISTER %s over %s: exit %d\n%s", user, transport, code, tail(out, 30))
	}
}

func TestSipsakOptionsAndRegister(t *testing.T) {
	need(t, "sipsak")
	srv := serve(t, topology)
	for _, fe := range []string{"fe01.pool-a.contoso.com", "fe03.pool-b.contoso.com"} {
		out, code := run(t, 20*time.Second, t.TempDir(), "sipsak", "-s", "sip:"+srv.fe(t, fe, "udp").String())
		if code != 0 {
			t.Fatalf("sipsak OPTIONS %s: exit %d\n%s", fe, code, out)
		}
	}
	for _, tc := range []struct{ user, transport string }{{"user00042", "udp"}, {"user00043", "tcp"}, {"user10042", "udp"}} {
		sipsakRegister(t, srv.door(t, "pool-a.contoso.com", tc.transport).String(), tc.user, tc.transport)
		regs := srv.registrations(t, "sip:"+tc.user+"@contoso.com")
		if len(regs.Bindings) == 0 || !strings.EqualFold(regs.Bindings[0].UserAgent[:6], "sipsak") {
			t.Fatalf("%s: registrations %+v", tc.user, regs)
		}
	}
}

// TestCrashPrimaryNextRegisterSucceeds: crash the Front End that is a user's primary; after the
// fabric notices, the user's next REGISTER succeeds on the promoted Front End, which still has
// the user's binding.
func TestCrashPrimaryNextRegisterSucceeds(t *testing.T) {
	need(t, "sipsak")
	srv := serve(t, topology)
	user := "sip:user00042@contoso.com"
	door := srv.door(t, "pool-a.contoso.com", "udp").String()
	sipsakRegister(t, door, "user00042", "udp")
	before := srv.registrations(t, user)
	if len(before.Bindings) != 1 {
		t.Fatalf("before the crash: %+v", before)
	}
	info := srv.userInfo(t, user)
	out := srv.ctl(t, "ctl", "crash", info.PrimaryPoolPrimaryRegistrar)
	if !strings.Contains(out, "Failed") {
		t.Fatalf("crash: %s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.userInfo(t, user).PrimaryPoolPrimaryRegistrar == info.PrimaryPoolPrimaryRegistrar {
		if time.Now().After(deadline) {
			t.Fatal("the fabric never promoted a new primary")
		}
		time.Sleep(50 * time.Millisecond)
	}
	promoted := srv.userInfo(t, user).PrimaryPoolPrimaryRegistrar
	if promoted != info.PrimaryPoolBackupRegistrars[0] {
		t.Fatalf("promoted %s, want the primary backup %s", promoted, info.PrimaryPoolBackupRegistrars[0])
	}
	after := srv.registrations(t, user)
	if after.Registrar != promoted || len(after.Bindings) != 1 || after.Bindings[0].Contact != before.Bindings[0].Contact {
		t.Fatalf("binding lost in the promotion: before %+v after %+v", before, after)
	}
	sipsakRegister(t, door, "user00042", "udp")
	final := srv.registrations(t, user)
	if len(final.Bindings) != 2 {
		t.Fatalf("after the next REGISTER: %+v", final)
	}
	events := srv.ctl(t, "ctl", "events")
	for _, id := range []string{"32108", "32167"} {
		if !strings.Contains(events, id) {
			t.Errorf("no event %s:\n%s", id, events)
		}
	}
}
