package frontend

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// retransCache holds the final responses sent over UDP, to answer retransmitted requests in
// place of sipgo's completed server transactions. sipgo keeps each UDP transaction, with its parsed
// request and response, for Timer J (64*T1 = 32 s): about 4.8 KB each, 190 MB right after
// 20,000 digest registrations. The cache keeps the serialised response (about 0.5 KB) for the
// same 32 s, in two generations swapped every 16 s.
type retransCache struct {
	mu      sync.Mutex
	cur     map[string]cachedResponse
	prev    map[string]cachedResponse
	rotated time.Time
	span    time.Duration
	now     func() time.Time
}

type cachedResponse struct {
	data []byte
	dst  netip.AddrPort
}

func newRetransCache() *retransCache {
	return &retransCache{cur: map[string]cachedResponse{}, prev: map[string]cachedResponse{}, rotated: time.Now(), span: sip.Timer_J / 2, now: time.Now}
}

// txKey identifies a request's server transaction as RFC 3261 §17.2.3 matches it: the top Via's
// branch and sent-by, and the method. ok is false without an RFC 3261 branch.
func txKey(req *sip.Request) (string, bool) {
	via := req.Via()
	if via == nil {
		return "", false
	}
	branch, ok := via.Params.Get("branch")
	if !ok || !strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(branch) + len(via.Host) + 24)
	b.WriteString(branch)
	b.WriteByte('|')
	b.WriteString(via.Host)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(via.Port))
	b.WriteByte('|')
	b.WriteString(string(req.Method))
	return b.String(), true
}

func (c *retransCache) rotate(now time.Time) {
	if now.Sub(c.rotated) >= c.span {
		c.prev, c.cur = c.cur, make(map[string]cachedResponse, len(c.cur))
		c.rotated = now
	}
}

// put serialises the response to send for the transaction key and remembers it.
func (c *retransCache) put(key string, res *sip.Response) (cachedResponse, error) {
	dst, err := netip.ParseAddrPort(res.Destination())
	if err != nil {
		return cachedResponse{}, fmt.Errorf("response destination %q: %w", res.Destination(), err)
	}
	cr := cachedResponse{data: []byte(res.String()), dst: dst}
	c.mu.Lock()
	c.rotate(c.now())
	c.cur[key] = cr
	c.mu.Unlock()
	return cr, nil
}

// begin claims a transaction key for a request about to be served. It returns false with the
// response already sent (data nil while the first copy is still being served: drop this one).
func (c *retransCache) begin(key string) (cachedResponse, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(c.now())
	if cr, ok := c.cur[key]; ok {
		return cr, false
	}
	if cr, ok := c.prev[key]; ok {
		return cr, false
	}
	c.cur[key] = cachedResponse{}
	return cachedResponse{}, true
}

// abandon releases a key claimed by begin when no response was sent.
func (c *retransCache) abandon(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cr, ok := c.cur[key]; ok && cr.data == nil {
		delete(c.cur, key)
	}
}

// get returns the response sent for the key, if it is still remembered.
func (c *retransCache) get(key string) (cachedResponse, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(c.now())
	if cr, ok := c.cur[key]; ok {
		return cr, true
	}
	cr, ok := c.prev[key]
	return cr, ok
}

// resend writes a cached response on the UDP socket.
func (cr cachedResponse) resend(udp *net.UDPConn) error {
	_, err := udp.WriteToUDPAddrPort(cr.data, cr.dst)
	return err
}

// len returns how many responses are remembered.
func (c *retransCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
