package frontend

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// streamLimits are the read deadlines of an accepted TCP or TLS connection.
type streamLimits struct {
	idle    time.Duration // between messages; 0 = never
	message time.Duration // from a message's first byte (or a TLS handshake's start) to its end
	expired func(reason string)
	// refused counts a request method rewritten for its case (reason "method_case").
	refused func(reason string)
}

// streamListener hands out connections whose reads are bounded in time: a silent connection is
// closed after the idle timeout, and one whose message (or TLS handshake) does not complete
// within the message timeout is closed then, so that a peer trickling a message byte by byte
// (slowloris) holds a connection for seconds, not for the idle timeout's 20 minutes. Kamailio
// does the same with tcp_msg_read_timeout.
type streamListener struct {
	net.Listener
	limits streamLimits
}

func (l *streamListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &streamConn{Conn: c, limits: l.limits, accepted: time.Now(), frame: framer{rewrite: true}}
	if tc, ok := c.(*tls.Conn); ok {
		sc.tls = tc
	}
	return sc, nil
}

// streamConn applies streamLimits; it is read by one goroutine (sipgo's reader of the
// connection), so its state needs no lock.
type streamConn struct {
	net.Conn
	limits   streamLimits
	tls      *tls.Conn // nil for TCP
	accepted time.Time
	shaken   bool      // the TLS handshake completed
	started  time.Time // when the first byte of the message being read arrived
	frame    framer
}

// Read reads with the deadline the connection's state calls for. When it passes, the read
// ends as io.EOF, so that sipgo closes the connection quietly; the expiry is counted.
func (c *streamConn) Read(b []byte) (int, error) {
	if c.tls != nil && !c.shaken {
		if c.limits.message > 0 {
			_ = c.Conn.SetReadDeadline(c.accepted.Add(c.limits.message))
		}
		if err := c.tls.Handshake(); err != nil {
			return 0, c.expiry(err, "handshake_timeout")
		}
		c.shaken = true
	}
	switch {
	case c.frame.inMessage() && c.limits.message > 0:
		_ = c.Conn.SetReadDeadline(c.started.Add(c.limits.message))
	case c.limits.idle > 0:
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.limits.idle))
	default:
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		before, rewritten := c.frame.inMessage(), c.frame.rewritten
		if c.frame.feed(b[:n]) || !before && c.frame.inMessage() {
			// A message began in this read (after one ended in it, perhaps).
			c.started = time.Now()
		}
		for ; rewritten < c.frame.rewritten && c.limits.refused != nil; rewritten++ {
			c.limits.refused("method_case")
		}
	}
	if err != nil {
		reason := "idle_timeout"
		if c.frame.inMessage() {
			reason = "message_timeout"
		}
		return n, c.expiry(err, reason)
	}
	return n, nil
}

// expiry turns a deadline error into io.EOF, counting it; other errors pass.
func (c *streamConn) expiry(err error, reason string) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if c.limits.expired != nil {
		c.limits.expired(reason)
	}
	return io.EOF
}

// framer finds where messages begin and end in a SIP stream, the way RFC 3261 §18.3 frames
// them: after the blank line ending the headers, Content-Length bytes of body. It keeps no
// message, only the first bytes of the header line being read (enough to recognise
// Content-Length and its value), so it costs a few bytes per connection; sipgo's parser does the
// real parsing. CRLFs between messages (RFC 5626 keep-alives) begin no message.
type framer struct {
	state     int  // between messages, in the headers, in the body
	rewrite   bool // rewrite a method that is not upper-case (see methodToken)
	start     bool // on the start line
	token     methodToken
	rewritten int // start lines whose method was rewritten
	line      [40]byte
	lineLen   int // bytes of the current line (may exceed len(line))
	length    int // the Content-Length seen in the headers
	body      int // body bytes still to come
}

const (
	betweenMessages = iota
	inHeaders
	inBody
)

func (f *framer) inMessage() bool { return f.state != betweenMessages }

// feed advances over p (rewriting in place, when asked to, a request method that is not
// upper-case: see methodToken); it reports whether a message began after another one ended within p
// (so its start is now).
func (f *framer) feed(p []byte) (restarted bool) {
	ended := false
	for len(p) > 0 {
		switch f.state {
		case betweenMessages:
			if p[0] == '\r' || p[0] == '\n' {
				p = p[1:]
				continue
			}
			f.state, f.lineLen, f.length, f.start, f.token = inHeaders, 0, 0, true, methodToken{}
			restarted = restarted || ended
		case inHeaders:
			if f.start && f.rewrite {
				p[0] = f.token.next(p[0])
			}
			b := p[0]
			p = p[1:]
			if b == '\n' {
				if f.start && f.token.rewrites > 0 {
					f.rewritten++
				}
				f.start = false
				if f.lineLen == 0 {
					f.state = betweenMessages
					if f.length > 0 {
						f.state, f.body = inBody, f.length
					} else {
						ended = true
					}
				} else {
					f.header()
				}
				f.lineLen = 0
				continue
			}
			if b == '\r' && f.lineLen == 0 {
				continue // the CR of a blank line
			}
			if f.lineLen < len(f.line) {
				f.line[f.lineLen] = b
			}
			f.lineLen++
		case inBody:
			n := min(f.body, len(p))
			f.body -= n
			p = p[n:]
			if f.body == 0 {
				f.state, ended = betweenMessages, true
			}
		}
	}
	return restarted
}

// header reads a Content-Length (or its compact form l) from the line just ended.
func (f *framer) header() {
	line := f.line[:min(f.lineLen, len(f.line))]
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return
	}
	name = bytes.TrimSpace(name)
	if !bytes.EqualFold(name, []byte("content-length")) && !bytes.EqualFold(name, []byte("l")) {
		return
	}
	if n, err := strconv.Atoi(string(bytes.TrimSpace(value))); err == nil && n >= 0 {
		f.length = n
	}
}

// methodToken follows the first token of a start line, byte by byte, and rewrites a method
// that is not in upper case. SIP method names are case-sensitive (RFC 3261 §7.1): `register`
// is not REGISTER but a method no one here serves. sipgo upper-cases the method it parses, so
// the check runs on the raw bytes before it does, and the lower-case letters become '!' (a
// token character none of our methods has), which the parser keeps as written: the request is
// answered as any unknown method (405). A response's SIP-Version, "SIP/" in any case, is
// left alone; no method begins with SIP, so letters let through while the token could still
// be one cannot make a method of ours either.
type methodToken struct {
	pos      int
	done     bool
	notSIP   bool // the token is not a prefix of "SIP/"
	rewrites int  // letters rewritten
}

// next returns b, the token's next byte, or its rewrite.
func (m *methodToken) next(b byte) byte {
	if m.done {
		return b
	}
	if b == ' ' || b == '\t' || b == '\r' || b == '\n' {
		m.done = true
		return b
	}
	pos := m.pos
	m.pos++
	if !m.notSIP && pos < 4 && b&^0x20 == "SIP/"[pos]&^0x20 {
		m.done = pos == 3 // a response
		return b
	}
	m.notSIP = true
	if 'a' <= b && b <= 'z' {
		m.rewrites++
		return '!'
	}
	return b
}

// canonicalMethod rewrites, in a datagram, a request method that is not in upper case (see
// methodToken); it reports whether it did.
func canonicalMethod(data []byte) bool {
	var m methodToken
	for i := 0; i < len(data) && !m.done; i++ {
		data[i] = m.next(data[i])
	}
	return m.rewrites > 0
}
