package client

import (
	"bytes"
	"errors"
	"maps"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/stun/v2"
)

// The UDP side of a stack. A REGISTER over UDP is a small client transaction of the stack's own
// (RFC 3261 §17.1.2): sent on the stack's socket, retransmitted from T1 doubling to T2 until a
// final response or the request timeout, and matched to its response by the top Via branch on
// the stack's read loop, which stamps each datagram's arrival as it reads it. Requests from the
// registrar (NOTIFY, BENOTIFY, OPTIONS) are answered on the read loop, the answer kept for the
// request's retransmissions, as the registrar's own UDP fast path does. Messages are built and
// parsed by sipgo; only its transaction and transport layers are left out on UDP: per request
// they started a goroutine for each response and each timer and ran a state machine, which at a
// 20,000-client ramp cost the load process more than everything else the client does. TCP and
// TLS still go through sipgo's user agent (stack.streamsUA).

const (
	t1 = 500 * time.Millisecond // RFC 3261 T1: the first retransmission interval
	t2 = 4 * time.Second        // RFC 3261 T2: the longest
	// answerKeep is how long an answer to a request is kept for its retransmissions: Timer J
	// (64*T1), after which the sender has given up.
	answerKeep = 64 * t1
	// udpReadSize bounds a datagram read (as sipgo's transport): larger ones are cut and fail
	// to parse.
	udpReadSize = 32 << 10
)

// udpParser parses the requests of every stack's datagrams, udpResponseParser their responses
// (sipgo's parsers are safe for concurrent use). The client never reads a response's From and
// To: that parser keeps them as plain headers, which sipgo parses on first use (res.From()).
var (
	udpParser         = sip.NewParser()
	udpResponseParser = sip.NewParser(sip.WithHeadersParsers(withoutParsers(sip.DefaultHeadersParser(), "from", "f", "to", "t")))
)

// withoutParsers is a copy of parsers without the named headers' parsers.
func withoutParsers(parsers map[string]sip.HeaderParser, names ...string) map[string]sip.HeaderParser {
	m := maps.Clone(parsers)
	for _, n := range names {
		delete(m, n)
	}
	return m
}

// udpTx is a client transaction over UDP.
type udpTx struct {
	method   sip.RequestMethod
	buf      *bytes.Buffer // holds data; back to requestBuffers when the transaction ends
	data     []byte        // the request as sent, for retransmissions
	dst      netip.AddrPort
	every    time.Duration // the next retransmission interval
	deadline time.Time     // the request timeout
	timer    *time.Timer   // the next retransmission, or the deadline
	done     func(udpAnswer)
}

// udpAnswer is a transaction's outcome: the final response and when its datagram reached the
// socket, or why there is none.
type udpAnswer struct {
	res *sip.Response
	at  time.Time
	err error
}

// requestBuffers hold the requests of transactions under way (a buffer goes back once its
// transaction ended: no retransmission can use it then).
var requestBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// release gives the transaction's buffer back (the transaction was taken out of the stack's map:
// nothing sends it any more).
func (tx *udpTx) release() {
	if tx.buf != nil {
		requestBuffers.Put(tx.buf)
		tx.buf, tx.data = nil, nil
	}
}

// errNoAnswer ends a transaction that got no final response before its deadline.
var errNoAnswer = errors.New("no answer")

// transact sends req to dst as a client transaction and calls done once with its final response,
// or with errNoAnswer after timeout, or the error that ended it (a *sendError when the request
// could not be sent), unless takeTx(branch) ends it first. It adds the top Via (this socket, the
// branch it returns, rport). done runs on the goroutine that reads the socket or on a timer's:
// it must not block.
func (s *stack) transact(req *sip.Request, dst netip.AddrPort, timeout time.Duration, done func(udpAnswer)) (branch string) {
	branch = sip.GenerateBranchN(16)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: s.host, Port: int(s.local.Port()), Params: sip.NewParams()}
	via.Params.Add("branch", branch)
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	b := requestBuffers.Get().(*bytes.Buffer)
	b.Reset()
	req.StringWrite(b)
	tx := &udpTx{method: req.Method, buf: b, data: b.Bytes(), dst: dst, every: t1, deadline: time.Now().Add(timeout), done: done}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		done(udpAnswer{err: ErrClosed})
		return branch
	}
	s.txs[branch] = tx
	tx.timer = time.AfterFunc(min(t1, timeout), func() { s.tick(branch) })
	// under the lock, as retransmissions: a transaction ended meanwhile (a tiny timeout, the
	// socket closing) has its buffer reused
	err := s.writeTo(tx.data, dst)
	s.mu.Unlock()
	if err != nil && s.takeTx(branch) != nil {
		done(udpAnswer{err: &sendError{err}})
	}
	return branch
}

// takeTx removes the transaction with branch (nil when it already ended) and stops its timer.
func (s *stack) takeTx(branch string) *udpTx {
	s.mu.Lock()
	tx := s.txs[branch]
	delete(s.txs, branch)
	s.mu.Unlock()
	if tx != nil {
		tx.timer.Stop()
		tx.release()
	}
	return tx
}

// tick ends the transaction with branch at its deadline, else sends its request again and
// doubles the interval up to T2 (RFC 3261 §17.1.2.2, Timers E and F).
func (s *stack) tick(branch string) {
	// The answer may be waiting in the socket, unread because the process is busy: read it
	// first rather than send the request again (and the registrar its answer again).
	s.readPending()
	s.mu.Lock()
	tx := s.txs[branch]
	if tx == nil {
		s.mu.Unlock()
		return
	}
	left := time.Until(tx.deadline)
	if left <= 0 {
		delete(s.txs, branch)
		s.mu.Unlock()
		tx.release()
		tx.done(udpAnswer{err: errNoAnswer})
		return
	}
	tx.every = min(2*tx.every, t2)
	tx.timer.Reset(min(tx.every, left))
	// under the lock: once the transaction is taken out of the map its buffer is reused
	_ = s.writeTo(tx.data, tx.dst)
	s.mu.Unlock()
}

// datagram handles one datagram read at at: a STUN answer, a keep-alive, a response, or a
// request.
func (s *stack) datagram(data []byte, from netip.AddrPort, at time.Time) {
	if stun.IsMessage(data) {
		s.stunAnswer(data)
		return
	}
	if len(bytes.Trim(data, "\r\n\x00")) == 0 {
		return // a keep-alive
	}
	p := udpParser
	if bytes.HasPrefix(data, []byte("SIP/2.0 ")) {
		p = udpResponseParser
	}
	msg, err := p.ParseSIP(data)
	if err != nil {
		s.logger.Debug("unparsable datagram", "from", from.String(), "error", err)
		return
	}
	msg.SetTransport("UDP")
	msg.SetSource(from.String())
	switch m := msg.(type) {
	case *sip.Response:
		s.response(m, at)
	case *sip.Request:
		s.request(m, from, at)
	}
}

// response hands a response to the transaction it answers. A provisional response slows the
// retransmissions to T2; a response nobody waits for (a retransmission after the transaction
// ended) is dropped.
func (s *stack) response(res *sip.Response, at time.Time) {
	via, cseq := res.Via(), res.CSeq()
	if via == nil || cseq == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	s.mu.Lock()
	tx := s.txs[branch]
	if tx == nil || tx.method != cseq.MethodName {
		s.mu.Unlock()
		return
	}
	if res.IsProvisional() {
		tx.every = t2
		s.mu.Unlock()
		return
	}
	delete(s.txs, branch)
	s.mu.Unlock()
	tx.timer.Stop()
	tx.release()
	tx.done(udpAnswer{res: res, at: at})
}

// request answers a request from the registrar, or resends the answer to a retransmission of it.
func (s *stack) request(req *sip.Request, from netip.AddrPort, at time.Time) {
	if req.Method == sip.ACK {
		return
	}
	key := requestKey(req)
	s.mu.Lock()
	data, seen := s.answered.get(key)
	s.mu.Unlock()
	if !seen {
		if res := s.answer(req); res != nil {
			data = []byte(res.String())
		}
		s.mu.Lock()
		s.answered.put(key, data, at)
		s.mu.Unlock()
	}
	if data != nil {
		_ = s.writeTo(data, from)
	}
}

// requestKey tells a request's retransmissions from other requests (RFC 3261 §17.2.3, with the
// Call-ID and CSeq added for requests without an RFC 3261 branch).
func requestKey(req *sip.Request) string {
	key := string(req.Method)
	if via := req.Via(); via != nil {
		branch, _ := via.Params.Get("branch")
		key += " " + branch + " " + via.Host + ":" + strconv.Itoa(via.Port)
	}
	if id := req.CallID(); id != nil {
		key += " " + id.Value()
	}
	if cseq := req.CSeq(); cseq != nil {
		key += " " + strconv.FormatUint(uint64(cseq.SeqNo), 10)
	}
	return key
}

// stunAnswer runs what waits for the answer to a STUN Binding request.
func (s *stack) stunAnswer(data []byte) {
	m := &stun.Message{Raw: append([]byte(nil), data...)}
	if m.Decode() != nil {
		return
	}
	s.mu.Lock()
	done := s.stun[m.TransactionID]
	delete(s.stun, m.TransactionID)
	s.mu.Unlock()
	if done != nil {
		done()
	}
}

// answers keeps the answers to requests by requestKey for their retransmissions (nil data: the
// request is not answered, as a BENOTIFY); entries older than answerKeep are swept as it grows.
type answers struct {
	m       map[string]answer
	sweepAt int
}

type answer struct {
	data []byte
	at   time.Time
}

func (a *answers) put(key string, data []byte, at time.Time) {
	if a.m == nil {
		a.m, a.sweepAt = map[string]answer{}, 64
	}
	a.m[key] = answer{data, at}
	if len(a.m) < a.sweepAt {
		return
	}
	for k, old := range a.m {
		if at.Sub(old.at) > answerKeep {
			delete(a.m, k)
		}
	}
	a.sweepAt = max(64, 2*len(a.m))
}

func (a *answers) get(key string) ([]byte, bool) {
	x, ok := a.m[key]
	return x.data, ok
}
