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
	var ncBuf [24]byte
	var nc []byte
	if c.QOP != "" {
		nc = appendHex8(ncBuf[:0], c.Nc)
	}
	// room for every value plus the names, separators and quotes around them: one allocation
	var b strings.Builder
	b.Grow(len(digest.Prefix) + 128 + len(c.Username) + len(c.Realm) + len(c.Nonce) + len(c.URI) + len(c.Algorithm) +
		len(c.Cnonce) + len(c.Opaque) + len(c.QOP) + len(nc) + len(c.Response))
	b.WriteString(digest.Prefix)
	sep := ""
	param := func(key, val string, quote bool) {
		b.WriteString(sep)
		sep = ", "
		b.WriteString(key)
		b.WriteByte('=')
		switch {
		case !quote:
			b.WriteString(val)
		case quotesVerbatim(val):
			b.WriteByte('"')
			b.WriteString(val)
			b.WriteByte('"')
		default:
			b.WriteString(strconv.Quote(val))
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
		b.WriteString(", nc=")
		b.Write(nc)
	}
	if c.Userhash {
		param("userhash", "true", false)
	}
	param("response", c.Response, true)
	return b.String()
}

// quotesVerbatim reports whether strconv.Quote(s) is s between double quotes: printable ASCII
// but the quote and the backslash (what digest values are made of).
func quotesVerbatim(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendHex8 appends fmt.Sprintf("%08x", n) to buf.
func appendHex8(buf []byte, n int) []byte {
	if n < 0 {
		return fmt.Appendf(buf, "%08x", n)
	}
	for shift := 28; shift >= 4 && n < 1<<shift; shift -= 4 {
		buf = append(buf, '0')
	}
	return strconv.AppendInt(buf, int64(n), 16)
}
