package sipauth

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

var users = func(u string) (string, bool) {
	switch u {
	case "alice", "alice@contoso.com":
		return "secret", true
	}
	return "", false
}

func newAuth(t testing.TB, clock clockwork.Clock, algs ...string) *Authenticator {
	t.Helper()
	if len(algs) == 0 {
		algs = []string{"MD5", "SHA-256"}
	}
	a, err := New(Config{Realm: "contoso.com", Algorithms: algs, NonceLifetime: time.Hour}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)

// answer computes a response the way a client does, independently of the package under test.
func answer(alg, user, pass, realm, nonce, method, uri string, nc int, qop bool) string {
	var h func() hash.Hash = md5.New
	if alg == "SHA-256" {
		h = sha256.New
	}
	sum := func(s string) string { x := h(); x.Write([]byte(s)); return hex.EncodeToString(x.Sum(nil)) }
	ha1, ha2 := sum(user+":"+realm+":"+pass), sum(method+":"+uri)
	if !qop {
		return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s`,
			user, realm, nonce, uri, sum(ha1+":"+nonce+":"+ha2), alg)
	}
	ncs, cnonce := fmt.Sprintf("%08x", nc), "0a4f113b"
	resp := sum(strings.Join([]string{ha1, nonce, ncs, cnonce, "auth", ha2}, ":"))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, cnonce="%s", nc=%s, qop=auth`,
		user, realm, nonce, uri, resp, alg, cnonce, ncs)
}

// reg is a REGISTER to sip:contoso.com with the given Authorization.
func reg(authz string) Request {
	return Request{Method: "REGISTER", URI: "sip:contoso.com", Authorization: authz}
}

func nonceOf(t testing.TB, a *Authenticator) string {
	t.Helper()
	m := nonceRE.FindStringSubmatch(a.Challenges(false)[0])
	if m == nil {
		t.Fatal("no nonce in challenge")
	}
	return m[1]
}

func TestNoncesAreUnique(t *testing.T) {
	a := newAuth(t, clockwork.NewFakeClock()) // the clock never moves
	first, second := nonceOf(t, a), nonceOf(t, a)
	if first == second {
		t.Fatal("two nonces issued at the same instant are equal")
	}
}

func TestChallengesOfferEachAlgorithmWithQopAuth(t *testing.T) {
	a := newAuth(t, clockwork.NewFakeClock())
	ch := a.Challenges(false)
	if len(ch) != 2 || !strings.Contains(ch[0], "algorithm=MD5") || !strings.Contains(ch[1], "algorithm=SHA-256") {
		t.Fatalf("challenges = %q", ch)
	}
	for _, c := range ch {
		for _, want := range []string{`Digest realm="contoso.com"`, `qop="auth"`, `nonce="`} {
			if !strings.Contains(c, want) {
				t.Errorf("%q lacks %q", c, want)
			}
		}
		if strings.Contains(c, "stale") {
			t.Errorf("fresh challenge says stale: %q", c)
		}
	}
	if !strings.Contains(a.Challenges(true)[0], "stale=true") {
		t.Error("stale challenge lacks stale=true")
	}
	// Nothing in a challenge depends on the user: two challenges differ only by nonce.
	strip := func(s string) string { return nonceRE.ReplaceAllString(s, "") }
	if strip(a.Challenges(false)[0]) != strip(ch[0]) {
		t.Error("challenges differ beyond the nonce")
	}
}

func TestVerify(t *testing.T) {
	clock := clockwork.NewFakeClock()
	a := newAuth(t, clock)
	other := newAuth(t, clock)
	n := nonceOf(t, a)
	for _, tc := range []struct {
		name  string
		authz string
		want  Outcome
	}{
		{"missing", "", Missing},
		{"md5 qop auth", answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", 1, true), OK},
		{"replayed nc", answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", 1, true), Replayed},
		{"next nc", answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", 2, true), OK},
		{"sha-256", answer("SHA-256", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true), OK},
		{"full aor as username", answer("MD5", "alice@contoso.com", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true), OK},
		{"no qop (RFC 2069)", answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 0, false), OK},
		{"wrong password", answer("MD5", "alice", "guess", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true), Rejected},
		{"wrong method", strings.Replace(answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, a), "INVITE", "sip:contoso.com", 1, true), "x", "x", 1), Rejected},
		{"unknown user", answer("MD5", "mallory", "x", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true), Rejected},
		{"foreign nonce", answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, other), "REGISTER", "sip:contoso.com", 1, true), Rejected},
		{"garbage nonce", answer("MD5", "alice", "secret", "contoso.com", "!!!", "REGISTER", "sip:contoso.com", 1, true), Rejected},
		{"wrong realm", answer("MD5", "alice", "secret", "fabrikam.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true), Rejected},
		// RFC 4475 §3.3.7: another scheme is a request without credentials, challenged.
		{"Basic", "Basic YWxpY2U6c2VjcmV0", Missing},
		{"a scheme no one knows", `NoOneKnowsThisScheme opaque-data=here`, Missing},
		{"NTLM", `NTLM qop="auth", realm="SIP Communications Service", targetname="fe01", gssapi-data=""`, Missing},
		{"unparsable", `Digest username="alice", realm=`, Malformed},
		{"no response", `Digest username="alice", realm="contoso.com", nonce="x", uri="sip:c"`, Malformed},
		{"uri of another resource", answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:fabrikam.com", 1, true), URIMismatch},
		{"qop without cnonce", strings.Replace(answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true), `cnonce="0a4f113b", `, "", 1), Rejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.Verify(reg(tc.authz), users)
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", r.Outcome, r.Reason, tc.want)
			}
		})
	}
}

func TestStaleAfterLifetimeAndSweep(t *testing.T) {
	clock := clockwork.NewFakeClock()
	a := newAuth(t, clock)
	n := nonceOf(t, a)
	if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", 1, true)), users); r.Outcome != OK {
		t.Fatalf("fresh: %s", r.Outcome)
	}
	clock.Advance(time.Hour + time.Second)
	if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", 2, true)), users); r.Outcome != Stale {
		t.Fatalf("after the lifetime: %s, want stale", r.Outcome)
	}
	if got := a.Sweep(); got != 1 {
		t.Fatalf("Sweep forgot %d nonces, want 1", got)
	}
}

func TestAlgorithmNotOffered(t *testing.T) {
	a := newAuth(t, clockwork.NewFakeClock(), "MD5")
	if ch := a.Challenges(false); len(ch) != 1 {
		t.Fatalf("challenges %q", ch)
	}
	r := a.Verify(reg(answer("SHA-256", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true)), users)
	if r.Outcome != Rejected {
		t.Fatalf("SHA-256 not offered but %s", r.Outcome)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Algorithms: []string{"MD5"}, NonceLifetime: time.Hour},
		{Realm: "r", NonceLifetime: time.Hour},
		{Realm: "r", Algorithms: []string{"SHA-1"}, NonceLifetime: time.Hour},
		{Realm: "r", Algorithms: []string{"MD5"}},
		{Realm: "r", Algorithms: []string{"MD5"}, NonceLifetime: time.Hour, MaxTracked: -1},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	a, _ := New(Config{Realm: "contoso.com", Algorithms: []string{"MD5"}, NonceLifetime: time.Hour})
	n := nonceRE.FindStringSubmatch(a.Challenges(false)[0])[1]
	b.ReportAllocs()
	nc := 0
	for b.Loop() {
		// qop=auth with the count going up: a client refreshing on one nonce
		nc++
		authz := answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", nc, true)
		if r := a.Verify(reg(authz), users); r.Outcome != OK {
			b.Fatal(r.Outcome)
		}
	}
}

// TestNoQopNonceIsOneTime: without qop a nonce authenticates one request (RFC 2617 §3.2.3). A
// captured REGISTER sent again is a replay, and so is any other use of the spent nonce.
func TestNoQopNonceIsOneTime(t *testing.T) {
	a := newAuth(t, clockwork.NewFakeClock())
	n := nonceOf(t, a)
	authz := answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", 0, false)
	if r := a.Verify(reg(authz), users); r.Outcome != OK {
		t.Fatalf("first use: %s (%s)", r.Outcome, r.Reason)
	}
	if r := a.Verify(reg(authz), users); r.Outcome != Replayed {
		t.Fatalf("the same credentials again: %s, want replayed", r.Outcome)
	}
	if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", 7, true)), users); r.Outcome != Replayed {
		t.Fatalf("the spent nonce with qop: %s, want replayed", r.Outcome)
	}
	// A nonce used with qop cannot go on without it either.
	m := nonceOf(t, a)
	if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", m, "REGISTER", "sip:contoso.com", 1, true)), users); r.Outcome != OK {
		t.Fatalf("qop: %s", r.Outcome)
	}
	if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", m, "REGISTER", "sip:contoso.com", 0, false)), users); r.Outcome != Replayed {
		t.Fatalf("a qop nonce without qop: %s, want replayed", r.Outcome)
	}
	// A wrong password spends nothing: the user can still answer the challenge.
	k := nonceOf(t, a)
	if r := a.Verify(reg(answer("MD5", "alice", "guess", "contoso.com", k, "REGISTER", "sip:contoso.com", 0, false)), users); r.Outcome != Rejected {
		t.Fatalf("wrong password: %s", r.Outcome)
	}
	if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", k, "REGISTER", "sip:contoso.com", 0, false)), users); r.Outcome != OK {
		t.Fatalf("after a wrong guess: %s", r.Outcome)
	}
}

// TestQopCountMustGrow: with qop=auth a (nonce, nc) pair is accepted once and nc must grow.
func TestQopCountMustGrow(t *testing.T) {
	a := newAuth(t, clockwork.NewFakeClock())
	n := nonceOf(t, a)
	for _, step := range []struct {
		nc   int
		want Outcome
	}{{1, OK}, {1, Replayed}, {3, OK}, {2, Replayed}, {3, Replayed}, {4, OK}} {
		r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", step.nc, true)), users)
		if r.Outcome != step.want {
			t.Fatalf("nc=%d: %s, want %s", step.nc, r.Outcome, step.want)
		}
	}
}

// malformedNonces are nonces this package never issues, some of which overran the decoder.
var malformedNonces = map[string]string{
	"empty-ish":            "A",
	"one byte too long":    strings.Repeat("A", 39),
	"100 bytes":            strings.Repeat("A", 100),
	"10 KB":                strings.Repeat("QUJD", 10<<8),
	"not base64":           strings.Repeat("!", 38),
	"standard alphabet":    strings.Repeat("+/", 19),
	"padded":               strings.Repeat("A", 38) + "==",
	"non-ASCII":            strings.Repeat("é", 19),
	"right length, forged": strings.Repeat("A", 38),
}

// TestMalformedNonceIsAFreshChallenge: a nonce of any length or encoding is Rejected (a fresh
// challenge), never a panic.
func TestMalformedNonceIsAFreshChallenge(t *testing.T) {
	a := newAuth(t, clockwork.NewFakeClock())
	for name, nonce := range malformedNonces {
		t.Run(name, func(t *testing.T) {
			for _, qop := range []bool{true, false} {
				r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", nonce, "REGISTER", "sip:contoso.com", 1, qop)), users)
				if r.Outcome != Rejected {
					t.Fatalf("qop %v: %s (%s), want rejected", qop, r.Outcome, r.Reason)
				}
			}
		})
	}
}

func TestSameResource(t *testing.T) {
	a, err := New(Config{Realm: "contoso.com", Algorithms: []string{"MD5"}, NonceLifetime: time.Hour,
		LocalHost: func(host string) bool { return host == "contoso.com" || host == "127.0.1.1" || host == "127.0.1.100" }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cred, req string
		want      bool
	}{
		{"sip:contoso.com", "sip:contoso.com", true},
		{"sip:contoso.com", "sip:contoso.com:5060", true}, // our tolerance: the default port
		{"sips:contoso.com:5061", "sips:contoso.com", true},
		{"sip:127.0.2.1", "sip:127.0.2.1:5060", true},
		{"sip:Contoso.COM", "sip:contoso.com", true},
		{"SIP:contoso.com", "sip:contoso.com", true},
		{"sip:contoso.com;transport=tcp", "sip:contoso.com", true}, // parameters are not compared
		{"sip:alice@contoso.com", "sip:alice@contoso.com;user=phone", true},
		{"tel:+14255550100", "tel:+14255550100", true},
		{"sip:127.0.1.100:5060", "sip:contoso.com", true}, // SIPp: the address it sends to
		{"sip:127.0.1.1:40123", "sip:127.0.1.100", true},  // both this registrar
		{"sip:contoso.com", "sips:contoso.com", false},
		{"sip:fabrikam.com:5061", "sip:fabrikam.com", false},
		{"sip:contoso.com:5070", "sip:contoso.com", true}, // both this registrar, whatever the port
		{"sip:fabrikam.com", "sip:contoso.com", false},
		{"sip:127.0.0.99:5060", "sip:contoso.com", false}, // an address that is not this registrar
		{"sip:127.0.1.100", "sip:fabrikam.com", false},
		{"sips:127.0.1.100", "sip:contoso.com", false},
		{"sip:alice@contoso.com", "sip:contoso.com", false},
		{"sip:alice@127.0.1.100", "sip:contoso.com", false},
		{"sip:Alice@contoso.com", "sip:alice@contoso.com", false}, // the user part is case-sensitive
		{"tel:+14255550100", "tel:+14255550101", false},
		{"tel:contoso.com", "sip:contoso.com", false},
		{"*", "sip:contoso.com", false},
		{"", "sip:contoso.com", false},
		{"not a uri", "sip:contoso.com", false},
	} {
		if got := a.sameResource(tc.cred, tc.req); got != tc.want {
			t.Errorf("sameResource(%q, %q) = %v, want %v", tc.cred, tc.req, got, tc.want)
		}
	}
	// Without LocalHost, a uri naming the server's address is not the domain's.
	if newAuth(t, clockwork.NewFakeClock()).sameResource("sip:127.0.1.100:5060", "sip:contoso.com") {
		t.Error("without LocalHost the server's address was taken for the domain")
	}
}

// TestURIMustNameTheRequestURI: right password, but computed for another Request-URI.
func TestURIMustNameTheRequestURI(t *testing.T) {
	a := newAuth(t, clockwork.NewFakeClock())
	authz := answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:fabrikam.com", 1, true)
	if r := a.Verify(reg(authz), users); r.Outcome != URIMismatch {
		t.Fatalf("%s, want uri-mismatch", r.Outcome)
	}
	authz = answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com:5060", 1, true)
	if r := a.Verify(reg(authz), users); r.Outcome != OK {
		t.Fatalf("the default port spelled out: %s, want ok", r.Outcome)
	}
}

// TestUnknownUserIsAWrongPassword: unless revealed, an unknown user's credentials are Rejected
// exactly as a known user's wrong password.
func TestUnknownUserIsAWrongPassword(t *testing.T) {
	for _, reveal := range []bool{false, true} {
		a, err := New(Config{Realm: "contoso.com", Algorithms: []string{"MD5"}, NonceLifetime: time.Hour, RevealUnknownUsers: reveal})
		if err != nil {
			t.Fatal(err)
		}
		wrong := a.Verify(reg(answer("MD5", "alice", "guess", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true)), users)
		unknown := a.Verify(reg(answer("MD5", "mallory", "guess", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true)), users)
		if wrong.Outcome != Rejected {
			t.Fatalf("reveal %v: wrong password %s", reveal, wrong.Outcome)
		}
		switch {
		case reveal && unknown.Outcome != UnknownUser:
			t.Fatalf("revealing: unknown user %s, want unknown-user", unknown.Outcome)
		case !reveal && (unknown.Outcome != wrong.Outcome || unknown.Reason != wrong.Reason):
			t.Fatalf("unknown user %+v, wrong password %+v", unknown, wrong)
		}
		if a.RevealsUnknownUsers() != reveal {
			t.Fatalf("RevealsUnknownUsers() = %v", a.RevealsUnknownUsers())
		}
	}
}

// TestUnknownUserCostsADigest: the unknown-user path is not measurably faster than a wrong
// password. The fastest of many interleaved rounds is compared, which a busy machine can slow
// but not speed up; without the dummy digest the unknown user took about half the time.
func TestUnknownUserCostsADigest(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	a := newAuth(t, clockwork.NewFakeClock(), "SHA-256")
	n := nonceOf(t, a)
	known := reg(answer("SHA-256", "alice", "guess", "contoso.com", n, "REGISTER", "sip:contoso.com", 1, true))
	unknown := reg(answer("SHA-256", "mallory", "guess", "contoso.com", n, "REGISTER", "sip:contoso.com", 1, true))
	const rounds, per = 300, 20
	fastest := func(req Request) time.Duration {
		start := time.Now()
		for range per {
			if r := a.Verify(req, users); r.Outcome != Rejected {
				t.Fatalf("%s", r.Outcome)
			}
		}
		return time.Since(start)
	}
	bestKnown, bestUnknown := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range rounds {
		bestKnown = min(bestKnown, fastest(known))
		bestUnknown = min(bestUnknown, fastest(unknown))
	}
	if ratio := float64(bestUnknown) / float64(bestKnown); ratio < 0.85 {
		t.Fatalf("an unknown user is answered in %.2f of the time of a wrong password (%s vs %s per %d)", ratio, bestUnknown, bestKnown, per)
	}
}

// TestReplayTableIsBounded: past MaxTracked the older nonces are forgotten, the table stays
// within its bound, and no forgotten nonce authenticates again.
func TestReplayTableIsBounded(t *testing.T) {
	clock := clockwork.NewFakeClock()
	a, err := New(Config{Realm: "contoso.com", Algorithms: []string{"MD5"}, NonceLifetime: time.Hour, MaxTracked: 100}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	for i := range 1000 {
		authz := answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, i%2 == 0)
		if r := a.Verify(reg(authz), users); r.Outcome != OK {
			t.Fatalf("request %d: %s (%s)", i, r.Outcome, r.Reason)
		}
		used = append(used, authz)
		if a.tracked() > 100 {
			t.Fatalf("after %d nonces the table holds %d", i+1, a.tracked())
		}
		clock.Advance(time.Second)
	}
	for i, authz := range used {
		if r := a.Verify(reg(authz), users); r.Outcome == OK {
			t.Fatalf("request %d replayed", i)
		}
	}
	// The newest nonce was not forgotten: its next count is taken.
	n := nonceRE.FindStringSubmatch(used[len(used)-2])[1]
	if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", n, "REGISTER", "sip:contoso.com", 2, true)), users); r.Outcome != OK {
		t.Fatalf("a recent nonce's next count: %s (%s)", r.Outcome, r.Reason)
	}
	// Within the lifetime, Sweep forgets nothing; after it, everything.
	if got := a.Sweep(); got != 0 {
		t.Fatalf("Sweep within the lifetime forgot %d", got)
	}
	clock.Advance(time.Hour)
	a.Sweep()
	if a.tracked() != 0 {
		t.Fatalf("%d nonces remembered past their lifetime", a.tracked())
	}
}

// TestReplayTableForgetsByTime: under light traffic the table never fills, yet what it holds
// is forgotten within twice the nonce lifetime, and a nonce in use across a turn keeps working.
func TestReplayTableForgetsByTime(t *testing.T) {
	clock := clockwork.NewFakeClock()
	a := newAuth(t, clock)
	var longLived string
	for i := range 30 { // a sign-in every 10 minutes for 5 hours; from 30 to 80 minutes, refreshes on one nonce
		if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", nonceOf(t, a), "REGISTER", "sip:contoso.com", 1, true)), users); r.Outcome != OK {
			t.Fatalf("sign-in %d: %s (%s)", i, r.Outcome, r.Reason)
		}
		if i == 3 {
			longLived = nonceOf(t, a)
		}
		if i >= 3 && i < 9 { // across the turn at 60 minutes
			if r := a.Verify(reg(answer("MD5", "alice", "secret", "contoso.com", longLived, "REGISTER", "sip:contoso.com", i-2, true)), users); r.Outcome != OK {
				t.Fatalf("refresh %d on one nonce: %s (%s)", i, r.Outcome, r.Reason)
			}
		}
		a.Sweep()
		if n := a.tracked(); n > 2*6+1 {
			t.Fatalf("after %d sign-ins 10 minutes apart %d nonces are remembered, more than two hours' worth", i+1, n)
		}
		clock.Advance(10 * time.Minute)
	}
}

// FuzzVerify: whatever the Authorization and Request-URI, Verify answers (no panic), and
// without a nonce this authenticator issued nothing gets past Rejected. Seeds whose nonce is
// NONCE get a genuine one, to reach the digest and the replay table.
func FuzzVerify(f *testing.F) {
	for _, nonce := range malformedNonces {
		f.Add(answer("MD5", "alice", "secret", "contoso.com", nonce, "REGISTER", "sip:contoso.com", 1, true), "sip:contoso.com")
	}
	f.Add(answer("MD5", "alice", "secret", "contoso.com", "NONCE", "REGISTER", "sip:contoso.com", 1, true), "sip:contoso.com")
	f.Add(answer("MD5", "alice", "secret", "contoso.com", "NONCE", "REGISTER", "sip:contoso.com", 0, false), "sip:contoso.com:5060")
	f.Add(answer("MD5", "mallory", "x", "contoso.com", "NONCE", "REGISTER", "sip:contoso.com", 1, true), "sips:contoso.com")
	f.Add(`Digest username="alice", realm="contoso.com", nonce="NONCE", uri="sip:contoso.com", response="x", qop=auth, nc=ffffffff, cnonce="c"`, "sip:contoso.com")
	clock := clockwork.NewFakeClock()
	a := newAuth(f, clock)
	f.Fuzz(func(t *testing.T, authz, uri string) {
		genuine := strings.Contains(authz, "NONCE")
		if genuine {
			authz = strings.ReplaceAll(authz, "NONCE", nonceOf(t, a))
		}
		r := a.Verify(Request{Method: "REGISTER", URI: uri, Authorization: authz}, users)
		if r.Outcome < OK || r.Outcome > URIMismatch {
			t.Fatalf("outcome %d", r.Outcome)
		}
		if !genuine && r.Outcome != Missing && r.Outcome != Malformed && r.Outcome != URIMismatch && r.Outcome != Rejected {
			t.Fatalf("%q at %q: %s without a nonce issued here", authz, uri, r.Outcome)
		}
	})
}
