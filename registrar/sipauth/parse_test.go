package sipauth

import (
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/icholy/digest"
)

var credentialSeeds = []string{
	`Digest username="user00042", realm="contoso.com", nonce="GOrfRf4_4xUAAAAF87HI", uri="sip:127.0.1.100", response="305273c400d6944a6821742a1b816850", algorithm=MD5, cnonce="7fdb0d67", qop=auth, nc=00000001`,
	`Digest username="alice",realm="contoso.com",nonce="n",uri="sip:contoso.com",response="r",algorithm=SHA-256,opaque="",qop=auth,nc=0000000a,cnonce="c"`,
	`Digest  username = "a\"b" , realm="r\\", nonce="n", uri="sip:x", response="r", userhash=true`,
	`Digest username="héllo", realm="r", nonce="n", uri="sip:x", response="r"`,
	`digest username="x"`,
	`Digest username="x", nc=zz`,
	`Digest username="unterminated`,
	`Basic YWxpY2U6c2VjcmV0`,
	`Digest`,
	`Digest a=b,`,
}

func TestParseCredentialsAgreesWithDigest(t *testing.T) {
	for _, s := range credentialSeeds {
		compare(t, s)
	}
	c, err := parseCredentials(credentialSeeds[0])
	if err != nil || c.Username != "user00042" || c.Nc != 1 || c.QOP != "auth" || c.Algorithm != "MD5" || c.Cnonce != "7fdb0d67" {
		t.Fatalf("parsed %+v, %v", c, err)
	}
	c, err = parseCredentials(credentialSeeds[2])
	if err != nil || c.Username != `a"b` || c.Realm != `r\` || !c.Userhash {
		t.Fatalf("escapes: %+v, %v", c, err)
	}
}

// FuzzParseCredentials: whatever digest.ParseCredentials accepts, parseCredentials accepts with
// the same fields (it may accept more: tabs, other unquoted characters, a trailing comma).
func FuzzParseCredentials(f *testing.F) {
	for _, s := range credentialSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) { // digest reads quoted strings rune by rune, replacing bad bytes
			return
		}
		compare(t, s)
	})
}

func compare(t *testing.T, s string) {
	t.Helper()
	want, err := digest.ParseCredentials(s)
	if err != nil {
		return
	}
	got, err := parseCredentials(s)
	if err != nil {
		t.Fatalf("%q: digest parses it, parseCredentials fails: %v", s, err)
	}
	if got != *want {
		t.Fatalf("%q:\n got %+v\nwant %+v", s, got, *want)
	}
}

func BenchmarkParseCredentials(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseCredentials(credentialSeeds[0]); err != nil {
			b.Fatal(err)
		}
	}
}

var challengeSeeds = []string{
	`Digest realm="contoso.com", nonce="GOrfRf4_4xUAAAAF87HI", algorithm=SHA-256, qop="auth", stale=FALSE`,
	`Digest realm="contoso.com",nonce="n",algorithm=MD5,qop="auth,auth-int",opaque="o",domain="sip:a sip:b",charset=UTF-8,userhash=true`,
	`Digest  realm = "a\"b" , nonce="n\\", stale=true`,
	`digest realm="x"`,
	`Digest realm="unterminated`,
	`Basic realm="x"`,
	`Digest`,
	`Digest a=b,`,
}

func TestParseChallengeAgreesWithDigest(t *testing.T) {
	for _, s := range challengeSeeds {
		compareChallenge(t, s)
	}
	c, err := ParseChallenge(challengeSeeds[1])
	if err != nil || c.Realm != "contoso.com" || c.Algorithm != "MD5" || len(c.QOP) != 2 || len(c.Domain) != 2 || !c.Userhash || c.Opaque != "o" {
		t.Fatalf("parsed %+v, %v", c, err)
	}
	if _, err := ParseChallenge(challengeSeeds[4]); err == nil {
		t.Fatal("an unterminated quoted string parsed")
	}
}

// FuzzParseChallenge: whatever digest.ParseChallenge accepts, ParseChallenge accepts with the
// same fields.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range challengeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		compareChallenge(t, s)
	})
}

func compareChallenge(t *testing.T, s string) {
	t.Helper()
	want, err := digest.ParseChallenge(s)
	if err != nil {
		return
	}
	got, err := ParseChallenge(s)
	if err != nil {
		t.Fatalf("%q: digest parses it, ParseChallenge fails: %v", s, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", s, *got, *want)
	}
}

func BenchmarkParseChallenge(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseChallenge(challengeSeeds[0]); err != nil {
			b.Fatal(err)
		}
	}
}
