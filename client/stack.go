package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/stun/v2"
)

// stack is one UDP socket serving one client (its own, the default) or many (a Pool). Its
// datagrams are read by the process's pollers (poll_linux.go; elsewhere a goroutine of its own);
// it runs its clients' UDP transactions (udp.go), answers requests for its clients, and routes
// STUN answers to whoever waits for them. TCP and TLS flows go through a
// sipgo user agent, made the first time a client of the stack uses one.
type stack struct {
	udp     *net.UDPConn
	read    *stampedConn // udp, read with arrival stamps
	rd      sockReader   // who reads it (poll_*.go)
	reading sync.Mutex   // held while the socket's datagrams are handled
	local   netip.AddrPort
	host    string // local's address, as the Via names it
	tlsConf *tls.Config
	logger  *slog.Logger

	mu       sync.Mutex
	clients  map[string]*Client // by Contact user part
	stun     map[[stun.TransactionIDSize]byte]func()
	txs      map[string]*udpTx    // UDP client transactions by Via branch
	answered answers              // answers to the registrar's requests, for retransmissions
	sip      *streams             // nil until a client uses TCP or TLS
	pongs    map[string]time.Time // TCP/TLS remote address -> last pong
	closed   bool
	serving  sync.WaitGroup
}

// streams is the sipgo user agent that carries a stack's TCP and TLS flows.
type streams struct {
	ua  *sipgo.UserAgent
	srv *sipgo.Server
	sc  *sipgo.Client
}

func newStack(ip netip.Addr, tlsConf *tls.Config, logger *slog.Logger) (*stack, error) {
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("client socket: %w", err)
	}
	read, err := newStampedConn(udp)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("client socket: %w", err)
	}
	s := &stack{
		udp: udp, read: read, local: udp.LocalAddr().(*net.UDPAddr).AddrPort(), tlsConf: tlsConf, logger: logger,
		clients: map[string]*Client{}, stun: map[[stun.TransactionIDSize]byte]func(){}, txs: map[string]*udpTx{}, pongs: map[string]time.Time{},
	}
	s.host = s.local.Addr().String()
	if err := s.startReading(); err != nil {
		udp.Close()
		return nil, fmt.Errorf("client socket: %w", err)
	}
	return s, nil
}

// streamsUA returns the stack's sipgo user agent for TCP and TLS, making it on first use.
func (s *stack) streamsUA() (*streams, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.sip != nil {
		return s.sip, nil
	}
	host := s.host
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgenTLSConfig(s.tlsConf),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(s.logger), sip.WithTransportLayerReadFilter(s.filter)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(s.logger),
			// a response retransmitted after its transaction ended: sipgo's default logs each
			// through the process-wide slog logger
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {})),
	)
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.logger))
	if err != nil {
		ua.Close()
		return nil, err
	}
	sc, err := sipgo.NewClient(ua, sipgo.WithClientHostname(host), sipgo.WithClientNAT(), sipgo.WithClientLogger(s.logger))
	if err != nil {
		ua.Close()
		return nil, err
	}
	srv.OnRequest(sip.NOTIFY, s.dispatch)
	srv.OnRequest("BENOTIFY", s.dispatch)
	srv.OnRequest(sip.OPTIONS, s.dispatch)
	srv.OnNoRoute(s.dispatch)
	s.sip = &streams{ua: ua, srv: srv, sc: sc}
	return s.sip, nil
}

// transactStream sends req over TCP or TLS as a sipgo client transaction and returns its final
// response, bounded by ctx. It is sipgo's Client.Do but for telling a request that could not
// be sent (a *sendError: "send to ..." in the client's reasons) from a transaction that failed.
func (s *stack) transactStream(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	st, err := s.streamsUA()
	if err != nil {
		return nil, err
	}
	s.fromLocal(req)
	tx, err := st.sc.TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		return nil, &sendError{err}
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without a response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// add makes the stack deliver requests for user to c.
func (s *stack) add(user string, c *Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, dup := s.clients[user]; dup {
		return fmt.Errorf("%w: user %s already has a client on this socket", ErrConfig, user)
	}
	s.clients[user] = c
	return nil
}

func (s *stack) remove(user string) {
	s.mu.Lock()
	delete(s.clients, user)
	s.mu.Unlock()
}

// close stops the socket (failing the transactions under way) and the user agent, once no one
// reads the socket any more.
func (s *stack) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	txs, st := s.txs, s.sip
	s.txs = map[string]*udpTx{}
	s.mu.Unlock()
	for _, tx := range txs {
		tx.timer.Stop()
		tx.release()
		tx.done(udpAnswer{err: ErrClosed})
	}
	s.stopReading()
	s.udp.Close()
	s.serving.Wait()
	if st != nil {
		st.ua.Close()
	}
}

// dispatch answers a request that came over a TCP or TLS flow (see answer).
func (s *stack) dispatch(req *sip.Request, tx sip.ServerTransaction) {
	if res := s.answer(req); res != nil {
		_ = tx.Respond(res)
	}
}

// answer hands a request to the client it is for (by Request-URI user, else To user), or
// answers 404; NOTIFY and OPTIONS are answered 200 by the client, BENOTIFY not at all.
func (s *stack) answer(req *sip.Request) *sip.Response {
	user := req.Recipient.User
	if user == "" && req.To() != nil {
		user = req.To().Address.User
	}
	s.mu.Lock()
	c := s.clients[user]
	if c == nil && len(s.clients) == 1 {
		for _, only := range s.clients {
			c = only
		}
	}
	s.mu.Unlock()
	if c == nil {
		return sip.NewResponseFromRequest(req, 404, "Not Found", nil)
	}
	return c.onRequest(req)
}

// filter sees raw reads on TCP and TLS flows: CRLF pongs are consumed here.
func (s *stack) filter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if len(bytes.Trim(data, "\r\n")) == 0 && p.RemoteAddr != nil {
		s.mu.Lock()
		s.pongs[p.RemoteAddr.String()] = time.Now()
		s.mu.Unlock()
	}
	return data, nil
}

// sendSTUN sends a Binding request to dst; answered runs when the answer arrives. It returns a
// function that forgets the request.
func (s *stack) sendSTUN(dst netip.AddrPort, answered func()) (forget func(), err error) {
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return func() {}, err
	}
	s.mu.Lock()
	s.stun[m.TransactionID] = answered
	s.mu.Unlock()
	forget = func() {
		s.mu.Lock()
		delete(s.stun, m.TransactionID)
		s.mu.Unlock()
	}
	if err := s.writeTo(m.Raw, dst); err != nil {
		forget()
		return func() {}, err
	}
	return forget, nil
}

// sendCRLF writes a keep-alive on the UDP socket (RFC 5626 leaves it unanswered).
func (s *stack) sendCRLF(dst netip.AddrPort) error {
	return s.writeTo([]byte("\r\n\r\n"), dst)
}

// fromLocal makes a stream connection that req opens start from the stack's address: left to
// the kernel, every flow to a loopback registrar would come from 127.0.0.1, and the
// registrar's per-IP connection limit would count them all as one host's.
func (s *stack) fromLocal(req *sip.Request) {
	if req.Laddr.IP == nil {
		req.Laddr = sip.Addr{IP: s.local.Addr().AsSlice()}
	}
}

// errFlowClosed reports a TCP or TLS flow that no longer exists.
var errFlowClosed = errors.New("connection closed")

// flowLocal returns the local address of the stream connection to dst, opening it when absent.
func (s *stack) flowLocal(ctx context.Context, dst Server) (netip.AddrPort, error) {
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: dst.Addr.Addr().String(), Port: int(dst.Addr.Port())})
	req.SetTransport(strings.ToUpper(dst.Transport))
	req.SetDestination(dst.Addr.String())
	req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(dst.Transport)})
	s.fromLocal(req)
	st, err := s.streamsUA()
	if err != nil {
		return netip.AddrPort{}, err
	}
	conn, err := st.ua.TransportLayer().ClientRequestConnection(ctx, req)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer conn.TryClose()
	a, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return netip.AddrPort{}, err
	}
	return a, nil
}

// ping writes a CRLF ping on the stream connection to dst. It fails with errFlowClosed when the
// connection is gone, and reports when the last pong on it arrived.
func (s *stack) ping(dst Server) (lastPong time.Time, err error) {
	st, err := s.streamsUA()
	if err != nil {
		return time.Time{}, errFlowClosed
	}
	conn, err := st.ua.TransportLayer().GetConnection(dst.Transport, dst.Addr.String())
	if err != nil || conn == nil {
		return time.Time{}, errFlowClosed
	}
	defer conn.TryClose()
	w, ok := conn.(interface{ Write([]byte) (int, error) })
	if !ok {
		return time.Time{}, fmt.Errorf("connection %T cannot be written to", conn)
	}
	s.mu.Lock()
	lastPong = s.pongs[dst.Addr.String()]
	s.mu.Unlock()
	if _, err := w.Write([]byte("\r\n\r\n")); err != nil {
		return lastPong, fmt.Errorf("%w: %v", errFlowClosed, err)
	}
	return lastPong, nil
}

// alive reports whether the stream connection to dst is still open.
func (s *stack) alive(dst Server) bool {
	st, err := s.streamsUA()
	if err != nil {
		return false
	}
	conn, err := st.ua.TransportLayer().GetConnection(dst.Transport, dst.Addr.String())
	if err != nil || conn == nil {
		return false
	}
	conn.TryClose()
	return true
}
