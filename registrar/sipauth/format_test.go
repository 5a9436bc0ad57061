package sipauth

import (
	"testing"

	"github.com/icholy/digest"
)

// FuzzFormatCredentials: FormatCredentials writes what digest.Credentials.String writes.
func FuzzFormatCredentials(f *testing.F) {
	f.Add("alice", "contoso.com", "n1", "sip:contoso.com", "SHA-256", "auth", "c1", "", 1, false, "abc")
	f.Add(`a"b\c`, "", "", "", "", "", "", "op", 0x1234567, true, "")
	f.Add("u", "r", "n", "sip:x", "MD5", "", "", "", -5, false, "r")
	f.Add("u", "r", "n", "sip:x", "MD5", "auth-int", "c", "", 1<<40, false, "r")
	f.Fuzz(func(t *testing.T, user, realm, nonce, uri, alg, qop, cnonce, opaque string, nc int, userhash bool, response string) {
		c := &digest.Credentials{Username: user, Realm: realm, Nonce: nonce, URI: uri, Algorithm: alg, QOP: qop,
			Cnonce: cnonce, Opaque: opaque, Nc: nc, Userhash: userhash, Response: response}
		if got, want := FormatCredentials(c), c.String(); got != want {
			t.Fatalf("FormatCredentials\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkFormatCredentials(b *testing.B) {
	c := &digest.Credentials{Username: "user00042", Realm: "contoso.com", Nonce: "5f2a6c1e9b7d4a03", URI: "sip:contoso.com",
		Algorithm: "SHA-256", QOP: "auth", Cnonce: "0a4f113b", Nc: 1, Response: "6629fae49393a05397450978507c4ef1"}
	b.ReportAllocs()
	for b.Loop() {
		_ = FormatCredentials(c)
	}
}

func BenchmarkCredentialsString(b *testing.B) {
	c := &digest.Credentials{Username: "user00042", Realm: "contoso.com", Nonce: "5f2a6c1e9b7d4a03", URI: "sip:contoso.com",
		Algorithm: "SHA-256", QOP: "auth", Cnonce: "0a4f113b", Nc: 1, Response: "6629fae49393a05397450978507c4ef1"}
	b.ReportAllocs()
	for b.Loop() {
		_ = c.String()
	}
}
