// Package sipauth is the registrar's digest authentication (RFC 3261 §22, RFC 8760 SHA-256),
// standing in for Lync's NTLM/Kerberos. Nonces are a timestamp sealed with an HMAC, so any Front
// End of the process accepts a nonce another issued, and a nonce older than the lifetime is
// answered stale=true.
//
// Replays are refused (RFC 2617 §3.2.3): with qop=auth a nonce's highest nonce-count is
// remembered and a request must bring a higher one; without qop a nonce authenticates one
// request only (a one-time nonce, as Kamailio's auth one_time_nonce), so such a client takes a
// challenge for each request. The credentials' uri must name the Request-URI (RFC 2617
// §3.2.2.5), or this registrar when the Request-URI does too. Neither the challenge nor the
// answer to failed credentials depends on whether the user exists, unless
// Config.RevealUnknownUsers says so; an unknown user costs a digest like a known one, so that
// timing does not tell them apart either.
//
// Concurrency: an Authenticator is safe for concurrent use. Issuing and checking a nonce take no
// lock; recording a used nonce takes mu for two map accesses at most, and nothing under mu
// walks the table.
package sipauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/jonboulle/clockwork"
)

// spent marks a nonce that may not authenticate anything more: one used without qop.
const spent = math.MaxUint32

// DefaultMaxTracked is the default bound of Config.MaxTracked. An entry (a nonce's hash and its
// highest count) costs about 36 bytes with the map's slots (measured: 36 MiB for 2^20 entries
// in two generations of 2^19), so the table stays below about 40 MiB. Only valid credentials add entries, one per nonce: 20,000 clients refreshing on
// their nonces take 20,000.
const DefaultMaxTracked = 1 << 20

// Config is the authenticator's settings.
type Config struct {
	Realm string
	// Algorithms offered, in order of preference: "MD5", "SHA-256".
	Algorithms    []string
	NonceLifetime time.Duration
	// RevealUnknownUsers makes Verify answer UnknownUser for well-formed credentials of a user
	// the directory does not have (Lync's 404 with ms-diagnostics 1003), which tells anyone
	// which users exist. Off, such credentials are Rejected as a wrong password is.
	RevealUnknownUsers bool
	// LocalHost reports whether a host (no port) names this registrar: its domain, its servers'
	// names and addresses. A credential's uri naming one of them is taken for a Request-URI
	// naming another (see sameResource). nil: the uri must name the Request-URI itself.
	LocalHost func(host string) bool
	// MaxTracked bounds how many used nonces are remembered to refuse replays (0:
	// DefaultMaxTracked; at least 2). When it is reached the older half is forgotten and every
	// nonce issued before the newest forgotten one becomes stale: a client holding one takes one
	// more challenge, and no replay gets through.
	MaxTracked int
}

// Outcome is what Verify concluded.
type Outcome int

const (
	// OK: the credentials are valid for the user.
	OK Outcome = iota
	// Missing: no credentials; challenge.
	Missing
	// Stale: the nonce expired (or was forgotten under load); challenge with stale=true.
	Stale
	// Rejected: wrong password, unknown user (unless revealed), forged, foreign or malformed
	// nonce, wrong realm or algorithm; challenge again.
	Rejected
	// Malformed: the Authorization header cannot be parsed; 400.
	Malformed
	// UnknownUser: well-formed credentials for a user the directory does not have, reported
	// only with Config.RevealUnknownUsers.
	UnknownUser
	// Replayed: valid credentials whose nonce was already used without qop, or whose
	// nonce-count did not grow; challenge with stale=true (the password was right).
	Replayed
	// URIMismatch: the credentials' uri is not the Request-URI (RFC 2617 §3.2.2.5); 400.
	URIMismatch
)

func (o Outcome) String() string {
	return [...]string{"ok", "missing", "stale", "rejected", "malformed", "unknown-user", "replayed", "uri-mismatch"}[o]
}

// Request is what Verify checks of a request.
type Request struct {
	Method string
	// URI is the Request-URI, as the request line has it.
	URI string
	// Authorization is the Authorization header's value ("" when absent).
	Authorization string
}

// Result carries the outcome and the credentials' username.
type Result struct {
	Outcome  Outcome
	Username string
	Reason   string
}

// Authenticator issues challenges and verifies credentials.
type Authenticator struct {
	cfg    Config
	clock  clockwork.Clock
	secret [32]byte

	// challenge[i] is the i-th algorithm's WWW-Authenticate value split around the nonce, with
	// and without stale=true: built once, since only the nonce changes.
	challenge [2][][2]string
	count     atomic.Uint32 // makes nonces issued at the same instant distinct
	macs      sync.Pool     // of hash.Hash: HMAC-SHA256 keyed with secret

	// dummy stands in for the password of an unknown user: the digest is computed all the same.
	dummy string

	// The nonces that authenticated a request, keyed by a hash of the nonce (pointer-free for
	// the GC; a collision costs a client one challenge, never a replay), in two generations as
	// the retransmission cache keeps its responses: new entries go to cur; cur becomes prev, and
	// prev is forgotten, when cur holds MaxTracked/2 entries or NonceLifetime after the last
	// turn. So the table holds at most MaxTracked entries, an entry lives at most twice
	// NonceLifetime (plus the period of Sweep), and nothing walks the table. What prev forgets is
	// covered by floor: every nonce issued before its newest is stale from then on (after a turn
	// by time they have all expired anyway).
	mu     sync.Mutex
	seed   maphash.Seed
	cur    generation
	prev   generation
	turned time.Time // when cur was started
	floor  int64     // unix nanos: nonces issued before it are stale (their use may be forgotten)
}

// generation is one half of the replay table.
type generation struct {
	nonces map[uint64]uint32
	newest int64 // the latest issue time of its nonces, unix nanos
}

// Option configures an Authenticator.
type Option func(*Authenticator)

// WithClock injects the clock (tests).
func WithClock(c clockwork.Clock) Option { return func(a *Authenticator) { a.clock = c } }

// ErrConfig reports an unusable configuration.
var ErrConfig = errors.New("sipauth: bad config")

// New returns an authenticator with a random nonce secret.
func New(cfg Config, opts ...Option) (*Authenticator, error) {
	if cfg.Realm == "" || len(cfg.Algorithms) == 0 || cfg.NonceLifetime <= 0 || cfg.MaxTracked < 0 {
		return nil, ErrConfig
	}
	if cfg.MaxTracked == 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	cfg.MaxTracked = max(cfg.MaxTracked, 2)
	for _, alg := range cfg.Algorithms {
		if alg != "MD5" && alg != "SHA-256" {
			return nil, errors.Join(ErrConfig, errors.New("algorithm "+alg))
		}
	}
	a := &Authenticator{cfg: cfg, clock: clockwork.NewRealClock(), seed: maphash.MakeSeed(), dummy: rand.Text()}
	for _, o := range opts {
		o(a)
	}
	a.cur.nonces, a.prev.nonces, a.turned = map[uint64]uint32{}, map[uint64]uint32{}, a.clock.Now()
	if _, err := rand.Read(a.secret[:]); err != nil {
		return nil, err
	}
	const mark = "fepool-nonce-placeholder" // quoted as is by the formatter
	for i, stale := range []bool{false, true} {
		for _, alg := range cfg.Algorithms {
			c := digest.Challenge{Realm: cfg.Realm, Nonce: mark, Algorithm: alg, QOP: []string{"auth"}, Stale: stale}
			before, after, found := strings.Cut(c.String(), mark)
			if !found {
				return nil, errors.Join(ErrConfig, errors.New("realm "+cfg.Realm))
			}
			a.challenge[i] = append(a.challenge[i], [2]string{before, after})
		}
	}
	return a, nil
}

// Realm returns the digest realm.
func (a *Authenticator) Realm() string { return a.cfg.Realm }

// Challenges returns the WWW-Authenticate values to send: one per algorithm, preferred first,
// sharing one fresh nonce.
func (a *Authenticator) Challenges(stale bool) []string {
	nonce := a.nonce(a.clock.Now())
	i := 0
	if stale {
		i = 1
	}
	out := make([]string, len(a.challenge[i]))
	for j, parts := range a.challenge[i] {
		out[j] = parts[0] + nonce + parts[1]
	}
	return out
}

// A nonce is base64url(issued unix nanos (8) | counter (4) | HMAC-SHA256 of both, truncated (16)).
const (
	nonceStamp = 12
	nonceLen   = nonceStamp + 16
)

// seal appends the nonce's MAC (truncated HMAC-SHA256 of the stamp) to dst.
func (a *Authenticator) seal(dst, stamp []byte) []byte {
	m, ok := a.macs.Get().(hash.Hash)
	if !ok {
		m = hmac.New(sha256.New, a.secret[:])
	}
	m.Reset()
	m.Write(stamp)
	var sum [sha256.Size]byte
	dst = append(dst, m.Sum(sum[:0])[:16]...)
	a.macs.Put(m)
	return dst
}

func (a *Authenticator) nonce(now time.Time) string {
	buf := make([]byte, nonceStamp, nonceLen)
	binary.BigEndian.PutUint64(buf, uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(buf[8:], a.count.Add(1))
	buf = a.seal(buf, buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// checkNonce returns Stale for an expired nonce, Rejected for one this process did not issue
// (forged, foreign, or not a nonce at all: any length, any encoding), and the time it was issued.
func (a *Authenticator) checkNonce(nonce string, now time.Time) (Outcome, time.Time) {
	// The length first: Decode writes as much as the input holds, and a longer nonce overran
	// the array (a panic, answered 500).
	if len(nonce) != base64.RawURLEncoding.EncodedLen(nonceLen) {
		return Rejected, time.Time{}
	}
	var raw [nonceLen]byte
	n, err := base64.RawURLEncoding.Decode(raw[:], []byte(nonce))
	var mac [16]byte
	if err != nil || n != nonceLen || subtle.ConstantTimeCompare(a.seal(mac[:0], raw[:nonceStamp]), raw[nonceStamp:]) != 1 {
		return Rejected, time.Time{}
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(raw[:8])))
	if a.expired(issued, now) {
		return Stale, issued
	}
	return OK, issued
}

func (a *Authenticator) expired(issued, now time.Time) bool {
	return now.Sub(issued) > a.cfg.NonceLifetime || issued.After(now.Add(time.Minute))
}

// Verify checks the credentials of a request. password returns the password of a username,
// and whether the user exists.
//
// What it checks before asking for the password depends on the request only, never on the
// user; after, a known and an unknown user cost the same digest computation.
func (a *Authenticator) Verify(req Request, password func(username string) (string, bool)) Result {
	if req.Authorization == "" {
		return Result{Outcome: Missing}
	}
	if !digest.IsDigest(req.Authorization) {
		// Another scheme (Basic, NTLM, one no one knows): as if there were no credentials, a
		// challenge in the scheme we understand (RFC 4475 §3.3.7, RFC 3261 §22.4).
		scheme, _, _ := strings.Cut(strings.TrimSpace(req.Authorization), " ")
		return Result{Outcome: Missing, Reason: "scheme " + scheme + " is not Digest"}
	}
	cred, err := parseCredentials(req.Authorization)
	if err != nil {
		return Result{Outcome: Malformed, Reason: "Authorization header is not a Digest credential"}
	}
	if cred.Username == "" || cred.Nonce == "" || cred.Response == "" || cred.URI == "" {
		return Result{Outcome: Malformed, Username: cred.Username, Reason: "Authorization lacks username, nonce, uri or response"}
	}
	res := Result{Username: cred.Username}
	if !a.sameResource(cred.URI, req.URI) {
		res.Outcome, res.Reason = URIMismatch, "Authorization uri is not the Request-URI"
		return res
	}
	alg := strings.ToUpper(cred.Algorithm)
	if alg == "" {
		alg = "MD5"
	}
	offered := false
	for _, o := range a.cfg.Algorithms {
		offered = offered || o == alg
	}
	switch {
	case cred.Realm != a.cfg.Realm:
		res.Outcome, res.Reason = Rejected, "realm "+cred.Realm+" is not "+a.cfg.Realm
		return res
	case !offered:
		res.Outcome, res.Reason = Rejected, "algorithm "+alg+" was not offered"
		return res
	}
	now := a.clock.Now()
	o, issued := a.checkNonce(cred.Nonce, now)
	if o != OK {
		res.Outcome, res.Reason = o, "nonce expired or not issued here"
		return res
	}
	chal := &digest.Challenge{Realm: cred.Realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm}
	if cred.QOP != "" {
		if !strings.EqualFold(cred.QOP, "auth") || cred.Cnonce == "" || cred.Nc <= 0 {
			res.Outcome, res.Reason = Rejected, "qop must be auth with cnonce and nc"
			return res
		}
		chal.QOP = []string{"auth"}
	}
	pw, known := password(cred.Username)
	if !known {
		// An unknown user never authenticates, but the digest is computed all the same
		// (against a password nobody has), so that the answer does not come measurably sooner.
		pw = a.dummy
	}
	want, err := digest.Digest(chal, digest.Options{
		Method: req.Method, URI: cred.URI, Username: cred.Username, Password: pw,
		Cnonce: cred.Cnonce, Count: cred.Nc,
	})
	match := err == nil && subtle.ConstantTimeCompare([]byte(want.Response), []byte(strings.ToLower(cred.Response))) == 1
	switch {
	case !known && a.cfg.RevealUnknownUsers:
		res.Outcome = UnknownUser
		return res
	case !known || !match:
		res.Outcome, res.Reason = Rejected, "wrong password"
		return res
	}
	nc := uint32(spent)
	if cred.QOP != "" {
		nc = uint32(cred.Nc)
	}
	switch a.use(cred.Nonce, issued, nc, now) {
	case useReplayed:
		res.Outcome, res.Reason = Replayed, "nonce already used, or its count did not grow"
		return res
	case useForgotten:
		res.Outcome, res.Reason = Stale, "nonce issued before the replay table's floor"
		return res
	}
	res.Outcome = OK
	return res
}

// sameResource reports whether the credentials' uri names the Request-URI, which RFC 2617
// §3.2.2.5 asks of a server ("SHOULD return 400 Bad Request" when it does not).
//
// Our choice of how strict: most clients copy the Request-URI, so the strings are equal, and
// otherwise both are compared as RFC 3261 §19.1.4 compares SIP URIs, with tolerances that keep
// the same registrar equal: a missing port is the scheme's default (sip:contoso.com and
// sip:contoso.com:5060, where §19.1.4 would tell them apart); URI parameters and headers are not
// compared (they say how to reach the resource, not which it is; a Request-URI may not carry
// headers); and two hosts that both name this registrar (Config.LocalHost: the domain, a
// server's FQDN or address) are the same whatever the port. SIPp, by default, computes its
// response for sip:<the address it sends to> while its Request-URI is sip:<domain>; through a
// proxying front door that is the front door's address. Kamailio's auth does not compare the
// uri at all by default, warning that UAs and rewriting proxies differ. What stays refused is a
// credential for another resource: another user, scheme, or a host that is not this registrar.
func (a *Authenticator) sameResource(credURI, requestURI string) bool {
	if credURI == requestURI {
		return true
	}
	var c, r sip.Uri
	if sip.ParseUri(credURI, &c) != nil || sip.ParseUri(requestURI, &r) != nil {
		return false
	}
	if c.Scheme != r.Scheme || (c.Scheme != "sip" && c.Scheme != "sips") {
		return false // other schemes are kept raw by the parser: only equal strings match
	}
	if c.User != r.User || c.Password != r.Password {
		return false
	}
	if strings.EqualFold(c.Host, r.Host) && portOrDefault(c) == portOrDefault(r) {
		return true
	}
	return a.cfg.LocalHost != nil && a.cfg.LocalHost(c.Host) && a.cfg.LocalHost(r.Host)
}

func portOrDefault(u sip.Uri) int {
	switch {
	case u.Port != 0:
		return u.Port
	case u.Scheme == "sips":
		return 5061
	}
	return 5060
}

// What use concluded.
const (
	useOK        = iota
	useReplayed  // already used without qop, or the count did not grow
	useForgotten // issued before the floor: its use may have been forgotten
)

// use records that the nonce authenticated a request with nonce-count nc (spent: without
// qop), and refuses a replay: a nonce already spent, or a count not above the highest seen.
func (a *Authenticator) use(nonce string, issued time.Time, nc uint32, now time.Time) int {
	h := maphash.String(a.seed, nonce)
	at := issued.UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.turned) >= a.cfg.NonceLifetime {
		a.turnLocked(now)
	}
	g := &a.cur
	prev, seen := g.nonces[h]
	if !seen {
		if p, ok := a.prev.nonces[h]; ok {
			g, prev, seen = &a.prev, p, true
		}
	}
	switch {
	case at < a.floor:
		return useForgotten
	case seen && (prev == spent || nc == spent || nc <= prev):
		return useReplayed
	}
	if !seen && len(a.cur.nonces) >= a.cfg.MaxTracked/2 {
		a.turnLocked(now)
		if at < a.floor {
			return useForgotten
		}
	}
	g.nonces[h] = nc
	g.newest = max(g.newest, at)
	return useOK
}

// turnLocked forgets prev, raising the floor above every nonce it held, and starts a new cur.
func (a *Authenticator) turnLocked(now time.Time) {
	if len(a.prev.nonces) > 0 {
		a.floor = max(a.floor, a.prev.newest+1)
	}
	a.prev = a.cur
	a.cur = generation{nonces: map[uint64]uint32{}}
	a.turned = now
}

// Sweep forgets each generation whose nonces have all expired (checkNonce refuses them anyway),
// and turns the generations when NonceLifetime has passed since the last turn; call it
// periodically. It returns how many nonces it forgot.
func (a *Authenticator) Sweep() int {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, g := range []*generation{&a.prev, &a.cur} {
		if len(g.nonces) > 0 && a.expired(time.Unix(0, g.newest), now) {
			n += len(g.nonces)
			*g = generation{nonces: map[uint64]uint32{}}
		}
	}
	if now.Sub(a.turned) >= a.cfg.NonceLifetime {
		n += len(a.prev.nonces)
		a.turnLocked(now)
	}
	return n
}

// tracked returns how many used nonces are remembered.
func (a *Authenticator) tracked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cur.nonces) + len(a.prev.nonces)
}

// RevealsUnknownUsers reports whether unknown users are told apart (Config.RevealUnknownUsers).
func (a *Authenticator) RevealsUnknownUsers() bool { return a.cfg.RevealUnknownUsers }
