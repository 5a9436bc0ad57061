//go:build e2e

package e2e

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// usersCSV writes a SIPp injection file for users first..last (inclusive).
func usersCSV(t *testing.T, dir string, first, last int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for i := first; i <= last; i++ {
		fmt.Fprintf(&b, "user%05d;[authentication username=user%05d password=secret];contoso.com\n", i, i)
	}
	path := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sippStats reads the last line of a SIPp -trace_stat file.
func sippStats(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = ';'
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("stat file %s: %v", path, err)
	}
	out := map[string]string{}
	for i, h := range rows[0] {
		if i < len(rows[len(rows)-1]) {
			out[h] = rows[len(rows)-1][i]
		}
	}
	return out
}

func sipp(t *testing.T, dir, scenario, users string, target string, calls, rate int) map[string]string {
	t.Helper()
	scenario, err := filepath.Abs(scenario)
	if err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(dir, "stat.csv")
	out, code := run(t, 3*time.Minute, dir, "sipp",
		"-sf", scenario, "-inf", users, "-i", "127.0.0.1", "-p", "0", "-t", "u1",
		"-m", fmt.Sprint(calls), "-r", fmt.Sprint(rate), "-l", "5000",
		"-trace_stat", "-stf", stat, "-fd", "1", "-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-nostdin", "-timeout", "150s", "-timeout_error", target)
	if _, err := os.Stat(stat); err != nil {
		t.Fatalf("sipp exit %d, no statistics:\n%s", code, tail(out, 30))
	}
	st := sippStats(t, stat)
	if code != 0 {
		errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Fatalf("sipp exit %d (successful %s, failed %s):\n%s\n%s", code, st["SuccessfulCall(C)"], st["FailedCall(C)"], tail(out, 20), tail(string(errs), 20))
	}
	return st
}

// TestSIPp20000UsersDigestThroughFrontDoor: SIPp registers all 20,000 users with digest through
// pool-a's front door (pool-b's users are proxied on to pool-b) and every one gets 200.
func TestSIPp20000UsersDigestThroughFrontDoor(t *testing.T) {
	need(t, "sipp")
	srv := serve(t, topology)
	dir := t.TempDir()
	users := usersCSV(t, dir, 0, 19999)
	st := sipp(t, dir, "testdata/sipp/register_digest.xml", users, srv.door(t, "pool-a.contoso.com", "udp").String(), 20000, 2000)
	if st["SuccessfulCall(C)"] != "20000" || st["FailedCall(C)"] != "0" {
		t.Fatalf("SIPp: successful %s failed %s", st["SuccessfulCall(C)"], st["FailedCall(C)"])
	}
	t.Logf("20000 REGISTERs with digest: elapsed %s, retransmissions %s", st["ElapsedTime(C)"], st["Retransmissions(C)"])
	pools, err := srv.admin.Pools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		if p.RegisteredUsers != 10000 {
			t.Errorf("%s: %d registered users, want 10000", p.FQDN, p.RegisteredUsers)
		}
	}
}

// TestSIPpNonPrimaryGets301: a REGISTER to a Front End that is not the user's primary is
// answered 301 after authentication.
func TestSIPpNonPrimaryGets301(t *testing.T) {
	need(t, "sipp")
	srv := serve(t, topology)
	dir := t.TempDir()
	// user00042's non-primary Front End.
	info := srv.userInfo(t, "sip:user00042@contoso.com")
	users := filepath.Join(dir, "one.csv")
	os.WriteFile(users, []byte("SEQUENTIAL\nuser00042;[authentication username=user00042 password=secret];contoso.com\n"), 0o644)
	st := sipp(t, dir, "testdata/sipp/register_redirect.xml", users, srv.fe(t, info.PrimaryPoolBackupRegistrars[0], "udp").String(), 1, 10)
	if st["SuccessfulCall(C)"] != "1" {
		t.Fatalf("SIPp did not get the 301: %v", st)
	}
}
