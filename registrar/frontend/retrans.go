package frontend

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// retransCache holds the final responses sent over UDP, to answer retransmitted requests in
// place of sipgo's completed server transactions. sipgo keeps each UDP transaction, with its
// parsed request and response, for Timer J (64*T1 = 32 s): about 4.8 KB each, 190 MB right
// after 20,000 digest registrations. The cache keeps the serialised response for the same 32 s,
// in two generations swapped every 16 s.
//
// It holds almost no pointers the garbage collector must follow: keys are 64-bit hashes,
// responses live in 64 KiB byte chunks, and addresses are stored as arrays. Tens of thousands of
// entries then cost the collector next to nothing to mark, and nothing big is ever copied.
type retransCache struct {
	seed    maphash.Seed
	mu      sync.Mutex
	cur     generation
	prev    generation
	rotated time.Time
	span    time.Duration
	now     func() time.Time
}

type generation struct {
	index  map[uint64]slot
	chunks [][]byte
}

const chunkSize = 64 << 10

// slot locates a cached response; n == 0 marks a request still being served.
type slot struct {
	chunk uint32
	off   uint16
	n     uint16
	ip    [16]byte
	port  uint16
}

// store copies data into the generation's chunks and returns where it went.
func (g *generation) store(data []byte) (chunk uint32, off uint16) {
	last := len(g.chunks) - 1
	if last < 0 || len(g.chunks[last])+len(data) > chunkSize {
		g.chunks = append(g.chunks, make([]byte, 0, chunkSize))
		last++
	}
	off = uint16(len(g.chunks[last]))
	g.chunks[last] = append(g.chunks[last], data...)
	return uint32(last), off
}

// cachedResponse is a response to send (again).
type cachedResponse struct {
	data []byte
	dst  netip.AddrPort
}

func newRetransCache() *retransCache {
	return &retransCache{
		seed:    maphash.MakeSeed(),
		cur:     generation{index: map[uint64]slot{}},
		prev:    generation{index: map[uint64]slot{}},
		rotated: time.Now(),
		span:    sip.Timer_J / 2,
		now:     time.Now,
	}
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

func (c *retransCache) hash(key string) uint64 { return maphash.String(c.seed, key) }

func (c *retransCache) rotate(now time.Time) {
	if now.Sub(c.rotated) >= c.span {
		c.prev = c.cur
		c.cur = generation{index: make(map[uint64]slot, len(c.prev.index))}
		c.rotated = now
	}
}

// lookup finds a key in either generation; callers hold mu.
func (c *retransCache) lookup(h uint64) (cachedResponse, bool) {
	for _, g := range []*generation{&c.cur, &c.prev} {
		if s, ok := g.index[h]; ok {
			if s.n == 0 {
				return cachedResponse{}, true
			}
			// Bytes once written in a chunk never change (appends go past them), so the
			// slice stays valid after the lock is released.
			c := g.chunks[s.chunk]
			data := c[s.off : int(s.off)+int(s.n) : int(s.off)+int(s.n)]
			return cachedResponse{data: data, dst: netip.AddrPortFrom(netip.AddrFrom16(s.ip).Unmap(), s.port)}, true
		}
	}
	return cachedResponse{}, false
}

// begin claims a transaction key for a request about to be served. It returns false with the
// response already sent (data nil while the first copy is still being served: drop this one).
func (c *retransCache) begin(key string) (cachedResponse, bool) {
	h := c.hash(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(c.now())
	if cr, ok := c.lookup(h); ok {
		return cr, false
	}
	c.cur.index[h] = slot{}
	return cachedResponse{}, true
}

// abandon releases a key claimed by begin when no response was sent.
func (c *retransCache) abandon(key string) {
	h := c.hash(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.cur.index[h]; ok && s.n == 0 {
		delete(c.cur.index, h)
	}
}

// put serialises the response to send for the transaction key and remembers it.
func (c *retransCache) put(key string, res *sip.Response) (cachedResponse, error) {
	dst, err := netip.ParseAddrPort(res.Destination())
	if err != nil {
		return cachedResponse{}, fmt.Errorf("response destination %q: %w", res.Destination(), err)
	}
	b := responseBuffers.Get().(*bytes.Buffer)
	defer responseBuffers.Put(b)
	b.Reset()
	res.StringWrite(b)
	if b.Len() >= chunkSize {
		// too big to keep (never for a REGISTER answer): sent once, not cached
		return cachedResponse{data: bytes.Clone(b.Bytes()), dst: dst}, nil
	}
	h := c.hash(key)
	c.mu.Lock()
	c.rotate(c.now())
	chunk, off := c.cur.store(b.Bytes())
	c.cur.index[h] = slot{chunk: chunk, off: off, n: uint16(b.Len()), ip: dst.Addr().As16(), port: dst.Port()}
	// the response is sent from its copy in the chunk (see lookup: it never changes)
	data := c.cur.chunks[chunk][off : int(off)+b.Len() : int(off)+b.Len()]
	c.mu.Unlock()
	return cachedResponse{data: data, dst: dst}, nil
}

// responseBuffers serialise responses before they are copied into a chunk (a buffer grows once
// to a response's size and is reused, where a fresh string grew by copying for each).
var responseBuffers = sync.Pool{New: func() any { b := new(bytes.Buffer); b.Grow(1024); return b }}

// expire rotates the generations when due, so an idle listener forgets its responses too.
func (c *retransCache) expire() {
	c.mu.Lock()
	c.rotate(c.now())
	c.mu.Unlock()
}

// get returns the response sent for the key, if it is still remembered.
func (c *retransCache) get(key string) (cachedResponse, bool) {
	h := c.hash(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(c.now())
	return c.lookup(h)
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
	return len(c.cur.index) + len(c.prev.index)
}
