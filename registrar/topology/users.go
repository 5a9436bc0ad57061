package topology

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// The number of users a topology may have. The Directory costs nothing per generated user, but
// every user it promises may sign in, and a signed-in user costs the emulator about
// SignedInUserBytes: measured, `fepool serve` with the default topology idles at 24 MiB RSS and
// held 131-132 MiB with its 20,000 users signed in (README, scripts/bench.sh --suite load), of
// which the registration and its two replicas are 820 bytes of heap (location.Store, 100,000
// users). The bound leaves room for Lync's largest case (2 pools of 80,000 users, 160,000).
const (
	MaxUsers          = 1_000_000
	SignedInUserBytes = 5632 // 5.5 KiB
)

// ErrTooManyUsers: a topology with more than MaxUsers users.
var ErrTooManyUsers = errors.New("too many users")

// User is one SIP user of the topology.
type User struct {
	// AOR is the address of record without scheme, lower-cased: user00042@contoso.com.
	AOR string
	// Pool is the FQDN of the user's home pool (never changed by failover).
	Pool string
	// Password for digest authentication; ignored when NoAuth.
	Password string
	// NoAuth users register without a challenge (quick softphone tests).
	NoAuth bool
}

// URI returns the user's SIP URI.
func (u User) URI() string { return "sip:" + u.AOR }

// Directory answers "who is this user" for explicit users and generated ranges without holding
// one entry per generated user, so 20,000 users cost a few bytes. Safe for concurrent reads.
type Directory struct {
	explicit map[string]User
	ranges   []userRange
	count    int
}

// userRange is a generated range such as user{00000..19999}@contoso.com.
type userRange struct {
	prefix, suffix string
	lo, hi         int
	width          int // digits when zero-padded, 0 when not
	pool, password string
	noAuth         bool
	spec           string
}

func (r *userRange) aor(n int) string {
	if r.width > 0 {
		return fmt.Sprintf("%s%0*d%s", r.prefix, r.width, n, r.suffix)
	}
	return r.prefix + strconv.Itoa(n) + r.suffix
}

// match returns the number in the range that aor names, if any.
func (r *userRange) match(aor string) (int, bool) {
	if len(aor) <= len(r.prefix)+len(r.suffix) || !strings.HasPrefix(aor, r.prefix) || !strings.HasSuffix(aor, r.suffix) {
		return 0, false
	}
	digits := aor[len(r.prefix) : len(aor)-len(r.suffix)]
	if r.width > 0 && len(digits) != r.width {
		return 0, false
	}
	if r.width == 0 && len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' || n > (1<<31)/10 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= r.lo && n <= r.hi
}

func (r *userRange) user(aor string) User {
	return User{AOR: aor, Pool: r.pool, Password: r.password, NoAuth: r.noAuth}
}

// NormalizeAOR turns "sip:User00042@Contoso.com;transport=tcp" or "<sip:...>" into
// "user00042@contoso.com". It returns "" when s has no user@host.
func NormalizeAOR(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	if i := strings.IndexAny(s, ">;?"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 4 && strings.EqualFold(s[:4], "sip:") {
		s = s[4:]
	} else if len(s) > 5 && strings.EqualFold(s[:5], "sips:") {
		s = s[5:]
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return ""
	}
	host := s[at+1:]
	if strings.HasPrefix(host, "[") { // IPv6 literal, maybe with a port
		if i := strings.IndexByte(host, ']'); i >= 0 {
			host = host[:i+1]
		}
	} else if i := strings.IndexByte(host, ':'); i >= 0 { // drop a port
		host = host[:i]
	}
	user := s[:at]
	if strings.IndexByte(user, '%') >= 0 {
		// RFC 3261 §19.1.4: an escaped character is the character (sip:%75ser@ is sip:user@).
		if u, err := url.PathUnescape(user); err == nil {
			user = u
		}
	}
	return strings.ToLower(user + "@" + host)
}

// Lookup finds a user by AOR (any form NormalizeAOR accepts).
func (d *Directory) Lookup(aor string) (User, bool) {
	key := NormalizeAOR(aor)
	if key == "" {
		return User{}, false
	}
	if u, ok := d.explicit[key]; ok {
		return u, true
	}
	for i := range d.ranges {
		if _, ok := d.ranges[i].match(key); ok {
			return d.ranges[i].user(key), true
		}
	}
	return User{}, false
}

// LookupUser finds a user like Directory.Lookup, and also when the address names the emulator
// itself instead of the SIP domain (sip:user00042@127.0.1.100, sip:user00042@pool-a.contoso.com),
// as softphones configured with a server address do: then user@Domain is looked up.
func (t *Topology) LookupUser(aor string) (User, bool) {
	if u, ok := t.Users.Lookup(aor); ok {
		return u, true
	}
	key := NormalizeAOR(aor)
	at := strings.LastIndexByte(key, '@')
	if at < 0 || !t.local(key[at+1:]) {
		return User{}, false
	}
	return t.Users.Lookup(key[:at] + "@" + t.Domain)
}

// local reports whether host is an IP literal or one of the topology's own names.
func (t *Topology) local(host string) bool {
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return true
	}
	for _, p := range t.Pools {
		if p.FQDN == host || p.FrontDoor != nil && p.FrontDoor.FQDN == host {
			return true
		}
		for _, fe := range p.FrontEnds {
			if fe.FQDN == host {
				return true
			}
		}
	}
	return false
}

// Count is the number of users.
func (d *Directory) Count() int { return d.count }

// Each calls f for every user, explicit ones first (sorted), then ranges in file order, until f
// returns false.
func (d *Directory) Each(f func(User) bool) {
	keys := make([]string, 0, len(d.explicit))
	for k := range d.explicit {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !f(d.explicit[k]) {
			return
		}
	}
	for i := range d.ranges {
		r := &d.ranges[i]
		for n := r.lo; n <= r.hi; n++ {
			if !f(r.user(r.aor(n))) {
				return
			}
		}
	}
}

// CountIn returns how many users are homed on the pool.
func (d *Directory) CountIn(pool string) int {
	n := 0
	for _, u := range d.explicit {
		if u.Pool == pool {
			n++
		}
	}
	for _, r := range d.ranges {
		if r.pool == pool {
			n += r.hi - r.lo + 1
		}
	}
	return n
}

// parseRange parses "user{00000..19999}@contoso.com".
func parseRange(spec string) (userRange, error) {
	open, closeIdx := strings.IndexByte(spec, '{'), strings.IndexByte(spec, '}')
	if open < 0 || closeIdx < open || strings.Count(spec, "{") != 1 || strings.Count(spec, "}") != 1 {
		return userRange{}, fmt.Errorf("%q is not a range: write prefix{FIRST..LAST}suffix, such as user{00000..19999}@contoso.com", spec)
	}
	body := spec[open+1 : closeIdx]
	a, b, ok := strings.Cut(body, "..")
	if !ok {
		return userRange{}, fmt.Errorf("%q: the braces must hold FIRST..LAST", spec)
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo < 0 || hi < 0 || len(a) > 9 || len(b) > 9 {
		return userRange{}, fmt.Errorf("%q: FIRST and LAST must be non-negative numbers of at most 9 digits", spec)
	}
	if lo > hi {
		return userRange{}, fmt.Errorf("%q: FIRST %d is above LAST %d", spec, lo, hi)
	}
	r := userRange{prefix: strings.ToLower(spec[:open]), suffix: strings.ToLower(spec[closeIdx+1:]), lo: lo, hi: hi, spec: spec}
	if len(a) > 1 && a[0] == '0' || len(a) == len(b) && len(a) > 1 {
		if len(a) != len(b) {
			return userRange{}, fmt.Errorf("%q: zero-padded FIRST and LAST must have the same number of digits", spec)
		}
		r.width = len(a)
	}
	if NormalizeAOR(r.aor(lo)) != r.aor(lo) {
		return userRange{}, fmt.Errorf("%q does not generate addresses of the form user@domain", spec)
	}
	return r, nil
}

func (v *validator) users(t *Topology, fus []fileUsers) *Directory {
	d := &Directory{explicit: map[string]User{}}
	for i, fu := range fus {
		path := fmt.Sprintf("users[%d]", i)
		pool := strings.ToLower(strings.TrimSpace(fu.Pool))
		switch {
		case pool == "":
			v.fail(path+".pool", "is required: the FQDN of the user's home pool")
		case t.Pool(pool) == nil:
			v.fail(path+".pool", "%s is not a pool of this topology", fu.Pool)
		}
		noAuth := false
		switch strings.ToLower(fu.Auth) {
		case "", "digest":
			if fu.Password == "" {
				v.fail(path+".password", "is required with digest auth (or set auth: none)")
			}
		case "none":
			noAuth = true
		default:
			v.fail(path+".auth", "%q is not an auth mode (digest or none)", fu.Auth)
		}
		switch {
		case fu.URI != "" && fu.Range != "":
			v.fail(path, "set uri or range, not both")
		case fu.URI != "":
			aor := NormalizeAOR(fu.URI)
			if aor == "" {
				v.fail(path+".uri", "%q is not a SIP address such as sip:alice@contoso.com", fu.URI)
				continue
			}
			if prev, dup := v.userOwner(d, aor); dup {
				v.fail(path+".uri", "%s is already defined by %s", aor, prev)
				continue
			}
			if !v.userRoom(path+".uri", d.count, 1) {
				continue
			}
			d.explicit[aor] = User{AOR: aor, Pool: pool, Password: fu.Password, NoAuth: noAuth}
			d.count++
		case fu.Range != "":
			r, err := parseRange(strings.TrimSpace(fu.Range))
			if err != nil {
				v.fail(path+".range", "%v", err)
				continue
			}
			r.pool, r.password, r.noAuth = pool, fu.Password, noAuth
			if clash := overlap(d, &r); clash != "" {
				v.fail(path+".range", "overlaps %s: a user can have only one home pool", clash)
				continue
			}
			if !v.userRoom(path+".range", d.count, r.hi-r.lo+1) {
				continue
			}
			d.ranges = append(d.ranges, r)
			d.count += r.hi - r.lo + 1
		default:
			v.fail(path, "set uri (one user) or range (such as user{00000..19999}@contoso.com)")
		}
	}
	return d
}

// userRoom reports whether n more users fit beside have, failing at path when they do not, with
// the memory they would need signed in (once: the entries after it add nothing to say).
func (v *validator) userRoom(path string, have, n int) bool {
	total := have + n
	if total <= MaxUsers {
		return true
	}
	if v.tooManyUsers {
		return false
	}
	v.tooManyUsers = true
	e := &Error{File: v.name, Field: path, Err: ErrTooManyUsers,
		Msg: fmt.Sprintf("%d users would need about %d MiB of emulator memory signed in (%.1f KiB each); the maximum is %d users",
			total, int64(total)*SignedInUserBytes>>20, float64(SignedInUserBytes)/1024, MaxUsers)}
	e.Line, e.Column = Locate(v.ast, path)
	v.errs = append(v.errs, e)
	return false
}

func (v *validator) userOwner(d *Directory, aor string) (string, bool) {
	if _, ok := d.explicit[aor]; ok {
		return "an earlier uri", true
	}
	for _, r := range d.ranges {
		if _, ok := r.match(aor); ok {
			return "range " + r.spec, true
		}
	}
	return "", false
}

// overlap names an existing user or range that shares an address with r, or "".
func overlap(d *Directory, r *userRange) string {
	for aor := range d.explicit {
		if _, ok := r.match(aor); ok {
			return aor
		}
	}
	for _, o := range d.ranges {
		// Two ranges can only share addresses when one's prefix/suffix frame the other's numbers;
		// probe the ends of the intersection of their numeric spans and both ranges' ends.
		for _, n := range []int{r.lo, r.hi, o.lo, o.hi, max(r.lo, o.lo), min(r.hi, o.hi)} {
			if n < r.lo || n > r.hi {
				continue
			}
			if _, ok := o.match(r.aor(n)); ok {
				return "range " + o.spec
			}
		}
		for _, n := range []int{o.lo, o.hi} {
			if _, ok := r.match(o.aor(n)); ok {
				return "range " + o.spec
			}
		}
	}
	return ""
}
