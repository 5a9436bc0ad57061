package sipauth

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/icholy/digest"
)

// FormatCredentials renders credentials as an Authorization value, byte for byte as
// digest.Credentials.String does (a test checks it), in one buffer: that method builds a
// parameter list and formats each through fmt, which cost the load generator more than
// computing the digest itself. The client package uses it for every answered challenge.
func FormatCredentials(c *digest.Credentials) string {
	var b strings.Builder
	b.Grow(96 + len(c.Username) + len(c.Realm) + len(c.Nonce) + len(c.URI) + len(c.Cnonce) + len(c.Opaque) + len(c.Response))
	b.WriteString(digest.Prefix)
	sep := ""
	param := func(key, val string, quote bool) {
		b.WriteString(sep)
		sep = ", "
		b.WriteString(key)
		b.WriteByte('=')
		if quote {
			b.WriteString(strconv.Quote(val))
		} else {
			b.WriteString(val)
		}
	}
	param("username", c.Username, true)
	param("realm", c.Realm, true)
	param("nonce", c.Nonce, true)
	param("uri", c.URI, true)
	if c.Algorithm != "" {
		param("algorithm", c.Algorithm, false)
	}
	if c.QOP != "" {
		param("cnonce", c.Cnonce, true)
	}
	if c.Opaque != "" {
		param("opaque", c.Opaque, true)
	}
	if c.QOP != "" {
		param("qop", c.QOP, false)
		param("nc", hex8(c.Nc), false)
	}
	if c.Userhash {
		param("userhash", "true", false)
	}
	param("response", c.Response, true)
	return b.String()
}

// hex8 is fmt.Sprintf("%08x", n).
func hex8(n int) string {
	if n < 0 {
		return fmt.Sprintf("%08x", n)
	}
	h := strconv.FormatInt(int64(n), 16)
	if len(h) >= 8 {
		return h
	}
	return "00000000"[len(h):] + h
}
