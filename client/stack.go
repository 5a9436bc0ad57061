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
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/stun/v2"
)

// stack is a sipgo user agent with one UDP socket, serving one client (its own, the default)
// or many (a Pool). It owns the socket's read goroutine, answers requests for its clients, and
// routes STUN answers and CRLF pongs to whoever is waiting for them.
type stack struct {
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	sc     *sipgo.Client
	udp    *net.UDPConn
	read   *stampedConn // udp as sipgo reads it
	local  netip.AddrPort
	logger *slog.Logger

	mu      sync.Mutex
	clients map[string]*Client // by Contact user part
	stun    map[[stun.TransactionIDSize]byte]func()
	pongs   map[string]time.Time // TCP/TLS remote address -> last pong
	arrived arrivals             // responses' arrival times by Via branch
	closed  bool
	serving sync.WaitGroup
}

func newStack(ip netip.Addr, tlsConf *tls.Config, logger *slog.Logger) (*stack, error) {
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("client socket: %w", err)
	}
	s := &stack{
		udp: udp, read: newStampedConn(udp), local: udp.LocalAddr().(*net.UDPAddr).AddrPort(), logger: logger,
		clients: map[string]*Client{}, stun: map[[stun.TransactionIDSize]byte]func(){}, pongs: map[string]time.Time{},
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgentHostname(ip.String()),
		sipgo.WithUserAgenTLSConfig(tlsConf),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(logger), sip.WithTransportLayerReadFilter(s.filter)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(logger),
			// a response retransmitted after its transaction ended (the registrar answered a
			// retransmission of ours): sipgo's default logs each through the process-wide slog
			// logger, which under load costs more than the registration itself
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {})),
	)
	if err != nil {
		udp.Close()
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(logger))
	if err != nil {
		ua.Close()
		udp.Close()
		return nil, err
	}
	sc, err := sipgo.NewClient(ua, sipgo.WithClientHostname(ip.String()), sipgo.WithClientNAT(), sipgo.WithClientLogger(logger))
	if err != nil {
		ua.Close()
		udp.Close()
		return nil, err
	}
	s.ua, s.srv, s.sc = ua, srv, sc
	srv.OnRequest(sip.NOTIFY, s.dispatch)
	srv.OnRequest("BENOTIFY", s.dispatch)
	srv.OnRequest(sip.OPTIONS, s.dispatch)
	srv.OnNoRoute(s.dispatch)
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = srv.ServeUDP(s.read)
	}()
	// Requests go out from this socket only once sipgo has registered it; before that it would
	// try to bind the address again and fail. Yielding lets the serving goroutine run at once
	// (a sleep would cost a timer tick per client: seconds for a population); sleep only if
	// the machine is so busy that yielding is not enough.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		if conn, err := ua.TransportLayer().GetConnection("udp", s.local.String()); err == nil {
			conn.TryClose()
			break
		}
		if time.Now().After(deadline) {
			s.close()
			return nil, errors.New("client socket: sipgo never started serving it")
		}
		if i < 1000 {
			runtime.Gosched()
		} else {
			time.Sleep(100 * time.Microsecond)
		}
	}
	return s, nil
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

// close stops the socket and the user agent and waits for the read goroutine.
func (s *stack) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.udp.Close()
	s.serving.Wait()
	s.ua.Close()
}

// dispatch hands a request to the client it is for (by Request-URI user, else To user), or
// answers 404; NOTIFY and OPTIONS are answered 200 by the client.
func (s *stack) dispatch(req *sip.Request, tx sip.ServerTransaction) {
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
	var res *sip.Response
	if c == nil {
		res = sip.NewResponseFromRequest(req, 404, "Not Found", nil)
	} else {
		res = c.onRequest(req)
	}
	if res != nil {
		_ = tx.Respond(res)
	}
}

// filter sees raw reads: STUN answers on the UDP socket and CRLF pongs on TCP/TLS flows are
// consumed here.
func (s *stack) filter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if p.Transport == "UDP" {
		if stun.IsMessage(data) {
			m := &stun.Message{Raw: append([]byte(nil), data...)}
			if m.Decode() == nil {
				s.mu.Lock()
				done := s.stun[m.TransactionID]
				delete(s.stun, m.TransactionID)
				s.mu.Unlock()
				if done != nil {
					done()
				}
			}
			return nil, nil
		}
		if branch := responseBranch(data); branch != "" {
			s.mu.Lock()
			s.arrived.put(branch, s.read.last)
			s.mu.Unlock()
		}
		return data, nil
	}
	if len(bytes.Trim(data, "\r\n")) == 0 && p.RemoteAddr != nil {
		s.mu.Lock()
		s.pongs[p.RemoteAddr.String()] = time.Now()
		s.mu.Unlock()
	}
	return data, nil
}

// arrival is when the response of the client transaction with branch reached the socket (false
// when it is unknown: not a UDP response, or already taken).
func (s *stack) arrival(branch string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arrived.take(branch)
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
	if _, err := s.udp.WriteToUDPAddrPort(m.Raw, dst); err != nil {
		forget()
		return func() {}, err
	}
	return forget, nil
}

// sendCRLF writes a keep-alive on the UDP socket (RFC 5626 leaves it unanswered).
func (s *stack) sendCRLF(dst netip.AddrPort) error {
	_, err := s.udp.WriteToUDPAddrPort([]byte("\r\n\r\n"), dst)
	return err
}

// errFlowClosed reports a TCP or TLS flow that no longer exists.
var errFlowClosed = errors.New("connection closed")

// flowLocal returns the local address of the stream connection to dst, opening it when absent.
func (s *stack) flowLocal(ctx context.Context, dst Server) (netip.AddrPort, error) {
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: dst.Addr.Addr().String(), Port: int(dst.Addr.Port())})
	req.SetTransport(strings.ToUpper(dst.Transport))
	req.SetDestination(dst.Addr.String())
	req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(dst.Transport)})
	conn, err := s.ua.TransportLayer().ClientRequestConnection(ctx, req)
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
	conn, err := s.ua.TransportLayer().GetConnection(dst.Transport, dst.Addr.String())
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
	conn, err := s.ua.TransportLayer().GetConnection(dst.Transport, dst.Addr.String())
	if err != nil || conn == nil {
		return false
	}
	conn.TryClose()
	return true
}
