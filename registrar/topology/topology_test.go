package topology

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDefaultTopology(t *testing.T) {
	top := Default()
	if top.Domain != "contoso.com" || top.Realm != "contoso.com" {
		t.Fatalf("domain/realm = %q/%q", top.Domain, top.Realm)
	}
	if len(top.Pools) != 2 {
		t.Fatalf("pools = %d, want 2", len(top.Pools))
	}
	a, b := top.Pool("pool-a.contoso.com"), top.Pool("POOL-B.contoso.com")
	if a == nil || b == nil {
		t.Fatal("pool-a or pool-b missing")
	}
	if a.Backup != b.FQDN || b.Backup != a.FQDN {
		t.Errorf("pairing: a.Backup=%q b.Backup=%q", a.Backup, b.Backup)
	}
	for i, fe := range a.FrontEnds {
		want := []string{"127.0.1.1", "127.0.1.2", "127.0.1.3"}[i]
		if fe.Address.String() != want || fe.Ports != (Ports{5060, 5060, 5061}) {
			t.Errorf("pool-a fe %d = %s %+v", i, fe.Address, fe.Ports)
		}
	}
	if got := a.FrontEnds[1].FQDN; got != "fe02.pool-a.contoso.com" {
		t.Errorf("generated FE FQDN = %q", got)
	}
	if fd := a.FrontDoor; fd == nil || fd.Address.String() != "127.0.1.100" || fd.Mode != ModeProxy || fd.Ports != (Ports{UDP: 5060, TCP: 5060}) {
		t.Errorf("pool-a front door = %+v", a.FrontDoor)
	}
	if top.Admin.Listen != "127.0.0.1:8060" {
		t.Errorf("admin listen = %q", top.Admin.Listen)
	}
	if n := top.Users.Count(); n != 20000 {
		t.Errorf("users = %d, want 20000", n)
	}
	if n := top.Users.CountIn(a.FQDN); n != 10000 {
		t.Errorf("users on pool-a = %d, want 10000", n)
	}
	for aor, pool := range map[string]string{
		"user00000@contoso.com":          "pool-a.contoso.com",
		"sip:User09999@Contoso.com":      "pool-a.contoso.com",
		"<sip:user10000@contoso.com>":    "pool-b.contoso.com",
		"sip:user19999@contoso.com:5060": "pool-b.contoso.com",
	} {
		u, ok := top.Users.Lookup(aor)
		if !ok || u.Pool != pool || u.Password != "secret" || u.NoAuth {
			t.Errorf("Lookup(%q) = %+v, %v; want pool %s", aor, u, ok, pool)
		}
	}
	for _, aor := range []string{"user20000@contoso.com", "user0001@contoso.com", "user00001@fabrikam.com", "bob", "", "user+0001@contoso.com"} {
		if u, ok := top.Users.Lookup(aor); ok {
			t.Errorf("Lookup(%q) found %+v", aor, u)
		}
	}
	for _, aor := range []string{"sip:user00042@127.0.1.100", "user00042@pool-a.contoso.com", "user00042@fe02.pool-a.contoso.com", "user00042@[::1]"} {
		if u, ok := top.LookupUser(aor); !ok || u.AOR != "user00042@contoso.com" {
			t.Errorf("LookupUser(%q) = %+v, %v", aor, u, ok)
		}
	}
	if _, ok := top.LookupUser("user00042@fabrikam.com"); ok {
		t.Error("LookupUser mapped a foreign domain")
	}
	if top.SIP.ExpiresMin != 300*time.Second || top.SIP.ExpiresMax != 900*time.Second || top.SIP.ExpiresDefault != 600*time.Second {
		t.Errorf("expires = %+v", top.SIP)
	}
	if top.SIP.MaxEndpoints != 8 || top.Fabric.QuorumLossShutdown != 5*time.Minute {
		t.Errorf("max endpoints %d, quorum loss shutdown %s", top.SIP.MaxEndpoints, top.Fabric.QuorumLossShutdown)
	}
}

func TestEveryConfigLoads(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no topology files in configs/: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			top, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if top.Users.Count() == 0 {
				t.Error("no users")
			}
		})
	}
}

func TestEachVisitsEveryUser(t *testing.T) {
	top := mustParse(t, `
domain: contoso.com
pools:
  - fqdn: p.contoso.com
    front_ends: [{address: 127.0.9.1}]
users:
  - {uri: "sip:zed@contoso.com", pool: p.contoso.com, auth: none}
  - {uri: "alice@contoso.com", pool: p.contoso.com, password: pw}
  - {range: "u{1..12}@contoso.com", pool: p.contoso.com, password: x}
`)
	var got []string
	top.Users.Each(func(u User) bool { got = append(got, u.AOR); return true })
	want := "alice@contoso.com zed@contoso.com u1@contoso.com u2@contoso.com u3@contoso.com u4@contoso.com u5@contoso.com u6@contoso.com u7@contoso.com u8@contoso.com u9@contoso.com u10@contoso.com u11@contoso.com u12@contoso.com"
	if strings.Join(got, " ") != want {
		t.Errorf("Each = %v", got)
	}
	if top.Pools[0].Edition != Standard {
		t.Errorf("a 1-FE pool defaults to standard, got %s", top.Pools[0].Edition)
	}
	if u, _ := top.Users.Lookup("u010@contoso.com"); u.AOR != "" {
		t.Errorf("unpadded range matched a zero-padded number: %+v", u)
	}
	if u, ok := top.Users.Lookup("zed@contoso.com"); !ok || !u.NoAuth {
		t.Errorf("zed = %+v %v", u, ok)
	}
}

func TestEphemeralPorts(t *testing.T) {
	top := mustParse(t, `
domain: contoso.com
pools:
  - fqdn: p.contoso.com
    ports: {udp: 0, tcp: 0}
    front_door: {address: 127.0.9.100, udp: 0}
    front_ends: [{address: 127.0.9.1}, {address: 127.0.9.1, tls: 0}]
users: [{uri: a@contoso.com, pool: p.contoso.com, auth: none}]
`)
	fe := top.Pools[0].FrontEnds
	if fe[0].Ports != (Ports{UDP: PortEphemeral, TCP: PortEphemeral}) || fe[1].Ports.TLS != PortEphemeral {
		t.Errorf("ports = %+v / %+v", fe[0].Ports, fe[1].Ports)
	}
	if fd := top.Pools[0].FrontDoor; fd.Ports != (Ports{UDP: PortEphemeral}) {
		t.Errorf("front door ports = %+v", fd.Ports)
	}
}

const good = `
domain: contoso.com
pools:
  - fqdn: pool-a.contoso.com
    backup: pool-b.contoso.com
    front_ends:
      - address: 127.0.1.1
      - address: 127.0.1.2
  - fqdn: pool-b.contoso.com
    front_ends:
      - address: 127.0.2.1
users:
  - range: user{00000..00099}@contoso.com
    pool: pool-a.contoso.com
    password: secret
`

func TestBadTopologies(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(string) string
		want string // substring: "line:col: field: message" or part of it
	}{
		{"unknown field", func(s string) string { return strings.Replace(s, "backup:", "bakup:", 1) }, `:5:5: unknown field "bakup"`},
		{"bad yaml", func(s string) string { return s + "  - [unclosed\n" }, "test.yaml:"},
		{"wrong type", func(s string) string { return strings.Replace(s, "address: 127.0.2.1", "address: [1, 2]", 1) }, "test.yaml:11:18: wrong type: want a string, got a list"},
		{"not loopback", func(s string) string { return strings.Replace(s, "127.0.1.2", "10.0.0.2", 1) }, ":8:18: pools[0].front_ends[1].address: 10.0.0.2 is not a loopback address"},
		{"not an address", func(s string) string { return strings.Replace(s, "127.0.1.2", "fe02", 1) }, `pools[0].front_ends[1].address: "fe02" is not an IP address`},
		{"duplicate listener", func(s string) string { return strings.Replace(s, "127.0.1.2", "127.0.1.1", 1) }, "pools[0].front_ends[1].address: UDP 127.0.1.1:5060 is already used by fe01.pool-a.contoso.com"},
		{"unknown backup", func(s string) string { return strings.Replace(s, "backup: pool-b", "backup: pool-c", 1) }, ":5:13: pools[0].backup: pool-c.contoso.com is not a pool"},
		{"self backup", func(s string) string { return strings.Replace(s, "backup: pool-b", "backup: pool-a", 1) }, "pools[0].backup: a pool cannot back itself up"},
		{"unknown user pool", func(s string) string { return strings.Replace(s, "pool: pool-a", "pool: pool-x", 1) }, ":14:11: users[0].pool: pool-x.contoso.com is not a pool"},
		{"bad range", func(s string) string { return strings.Replace(s, "{00000..00099}", "{99..1}", 1) }, "users[0].range: \"user{99..1}@contoso.com\": FIRST 99 is above LAST 1"},
		{"range without braces", func(s string) string { return strings.Replace(s, "{00000..00099}", "00001", 1) }, "is not a range"},
		{"no password", func(s string) string { return strings.Replace(s, "    password: secret\n", "", 1) }, "users[0].password: is required with digest auth"},
		{"bad auth", func(s string) string { return strings.Replace(s, "password: secret", "auth: ntlm", 1) }, `users[0].auth: "ntlm" is not an auth mode`},
		{"overlap", func(s string) string {
			return s + "  - {range: \"user{00050..00150}@contoso.com\", pool: pool-b.contoso.com, password: x}\n"
		}, "users[1].range: overlaps range user{00000..00099}@contoso.com"},
		{"duplicate uri", func(s string) string {
			return s + "  - {uri: sip:user00001@contoso.com, pool: pool-b.contoso.com, auth: none}\n"
		}, "users[1].uri: user00001@contoso.com is already defined by range"},
		{"bad duration", func(s string) string { return s + "fabric:\n  failure_detection: 5 minutes\n" }, `:17:22: fabric.failure_detection: "5 minutes" is not a duration`},
		{"duration without unit", func(s string) string { return s + "fabric:\n  quorum_loss_shutdown: 300\n" }, `fabric.quorum_loss_shutdown: "300" is not a duration`},
		{"expires inverted", func(s string) string { return s + "sip:\n  expires: {min: 900s, max: 300s}\n" }, "sip.expires: min 15m0s is above max 5m0s"},
		{"bad digest algorithm", func(s string) string { return s + "sip:\n  digest_algorithms: [MD5, SHA-1]\n" }, `sip.digest_algorithms[1]: "SHA-1" is not supported`},
		{"bad port", func(s string) string {
			return strings.Replace(s, "- address: 127.0.2.1", "- {address: 127.0.2.1, udp: 70000}", 1)
		}, "pools[1].front_ends[0].udp: 70000 is not a port"},
		{"standard with two", func(s string) string {
			return strings.Replace(s, "backup: pool-b.contoso.com", "backup: pool-b.contoso.com\n    edition: standard", 1)
		}, "pools[0].front_ends: a standard edition pool has exactly 1 Front End, not 2"},
		{"too many FEs", func(s string) string {
			var b strings.Builder
			for i := 3; i <= 17; i++ {
				b.WriteString("      - address: 127.0.1." + strconv.Itoa(i) + "\n")
			}
			return strings.Replace(s, "      - address: 127.0.1.2\n", "      - address: 127.0.1.2\n"+b.String(), 1)
		}, "an enterprise pool has 2 to 16 Front Ends"},
		{"admin not loopback", func(s string) string { return s + "admin: {listen: 0.0.0.0:8060}\n" }, "admin.listen: 0.0.0.0 is not a loopback address"},
		{"duplicate pool", func(s string) string {
			return strings.Replace(s, "fqdn: pool-b.contoso.com", "fqdn: pool-a.contoso.com", 1)
		}, "pools[1].fqdn: pool-a.contoso.com is already pools[0]"},
		{"no domain", func(s string) string { return strings.Replace(s, "domain: contoso.com\n", "", 1) }, "domain: is required"},
		{"bad mode", func(s string) string {
			return strings.Replace(s, "backup: pool-b.contoso.com", "backup: pool-b.contoso.com\n    front_door: {address: 127.0.1.100, mode: bounce}", 1)
		}, `pools[0].front_door.mode: "bounce" is not a front door mode`},
		{"asymmetric pairing", func(s string) string {
			s = strings.Replace(s, "  - fqdn: pool-b.contoso.com\n", "  - fqdn: pool-b.contoso.com\n    backup: pool-c.contoso.com\n", 1)
			return strings.Replace(s, "users:", "  - fqdn: pool-c.contoso.com\n    front_ends: [{address: 127.0.3.1}]\nusers:", 1)
		}, "pools[0].backup: pool-b.contoso.com is paired with pool-c.contoso.com"},
		{"bad before_timer", func(s string) string { return s + "pairing:\n  before_timer: 404\n" }, `pairing.before_timer: "404" is not 503, 480 or drop`},
		{"bad heartbeat", func(s string) string { return s + "pairing:\n  heartbeat: 1ms\n" }, "pairing.heartbeat: 1ms is out of range [100ms, 1h0m0s]"},
		{"bad failback pace", func(s string) string { return s + "pairing:\n  failback_pace: {users: 0, per: 1h}\n" }, "pairing.failback_pace.users: 0 is out of range [1, 10000000]"},
		{"unknown pairing field", func(s string) string { return s + "pairing:\n  timer: 5s\n" }, `unknown field "timer"`},
		{"bad resiliency timer", func(s string) string {
			return strings.Replace(s, "backup: pool-b.contoso.com", "backup: pool-b.contoso.com\n    resiliency_timer: -5s", 1)
		}, ":6:23: pools[0].resiliency_timer: -5s is out of range [0s, 24h0m0s]"},
		{"shared back end", func(s string) string {
			s = strings.Replace(s, "backup: pool-b.contoso.com", "backup: pool-b.contoso.com\n    back_end: {path: be.db}", 1)
			return strings.Replace(s, "  - fqdn: pool-b.contoso.com\n", "  - fqdn: pool-b.contoso.com\n    back_end: {path: be.db}\n", 1)
		}, "pools[1].back_end.path: be.db is already the Back End of pools[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.edit(good)))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "test.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
	if _, err := Parse("test.yaml", []byte(good)); err != nil {
		t.Fatalf("the good base topology fails: %v", err)
	}
}

func TestPairingSettings(t *testing.T) {
	top := mustParse(t, good)
	for _, p := range top.Pools {
		if p.ResiliencyTimer != 120*time.Second || p.BackEndPath != InMemory {
			t.Errorf("%s defaults: timer %s, back end %q", p.FQDN, p.ResiliencyTimer, p.BackEndPath)
		}
	}
	want := Pairing{Heartbeat: 5 * time.Second, BeforeTimer: Before503, FailoverWait: 15 * time.Second, FailbackWait: 15 * time.Second,
		FailbackUsers: 20000, FailbackPer: time.Hour, SurvivableAfter: 30 * time.Minute}
	if top.Pairing != want {
		t.Errorf("pairing defaults = %+v, want %+v", top.Pairing, want)
	}
	src := strings.Replace(good, "backup: pool-b.contoso.com", "backup: pool-b.contoso.com\n    resiliency_timer: 300s\n    back_end: {path: a.db}", 1)
	src += "pairing:\n  heartbeat: 1s\n  before_timer: drop\n  failover_wait: 2s\n  failback_wait: 3s\n  failback_pace: {users: 100, per: 10s}\nback_end:\n  survivable_after: 1m\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	top, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := top.Pools[0], top.Pools[1]
	if a.ResiliencyTimer != 300*time.Second || b.ResiliencyTimer != 120*time.Second {
		t.Errorf("timers %s %s", a.ResiliencyTimer, b.ResiliencyTimer)
	}
	if a.BackEndPath != filepath.Join(dir, "a.db") {
		t.Errorf("a relative Back End path resolves against the topology's directory: %q", a.BackEndPath)
	}
	want = Pairing{Heartbeat: time.Second, BeforeTimer: BeforeDrop, FailoverWait: 2 * time.Second, FailbackWait: 3 * time.Second,
		FailbackUsers: 100, FailbackPer: 10 * time.Second, SurvivableAfter: time.Minute}
	if top.Pairing != want {
		t.Errorf("pairing = %+v, want %+v", top.Pairing, want)
	}
}

func TestSeveralErrorsAreAllReported(t *testing.T) {
	src := strings.Replace(strings.Replace(good, "127.0.1.2", "10.0.0.2", 1), "pool: pool-a", "pool: nowhere", 1)
	_, err := Parse("test.yaml", []byte(src))
	if err == nil || strings.Count(err.Error(), "test.yaml:") != 2 {
		t.Fatalf("want two located errors, got: %v", err)
	}
	var te *Error
	if !errors.As(err, &te) || te.Line == 0 {
		t.Errorf("errors.As(*Error) = %+v", te)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(p, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	top, err := Load(p)
	if err != nil || top.Source != p {
		t.Fatalf("Load = %v, %v", top, err)
	}
}

func TestNormalizeAOR(t *testing.T) {
	for in, want := range map[string]string{
		"sip:Alice@Contoso.com":               "alice@contoso.com",
		"<sips:bob@contoso.com:5061>":         "bob@contoso.com",
		"sip:carol@contoso.com;transport=tcp": "carol@contoso.com",
		"dave@contoso.com":                    "dave@contoso.com",
		"sip:contoso.com":                     "",
		"sip:@contoso.com":                    "",
		"sip:eve@":                            "",
		"":                                    "",
		"sip:%75se%7200042@contoso.com":       "user00042@contoso.com", // escaped (RFC 4475 §3.1.1.2)
		"sip:user%2500042@contoso.com":        "user%00042@contoso.com",
		"sip:bad%zzescape@contoso.com":        "bad%zzescape@contoso.com",
	} {
		if got := NormalizeAOR(in); got != want {
			t.Errorf("NormalizeAOR(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustParse(t *testing.T, src string) *Topology {
	t.Helper()
	top, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return top
}
