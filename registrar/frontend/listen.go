package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fepool/fepool/registrar/topology"
)

// Addrs are a listener set's bound addresses; an invalid AddrPort means the transport is not
// served.
type Addrs struct {
	UDP, TCP, TLS netip.AddrPort
}

// Get returns the address of a transport ("udp", "tcp", "tls", any case).
func (a Addrs) Get(transport string) netip.AddrPort {
	switch transport {
	case "udp", "UDP":
		return a.UDP
	case "tcp", "TCP":
		return a.TCP
	case "tls", "TLS":
		return a.TLS
	}
	return netip.AddrPort{}
}

// Ports returns the bound ports, for rebinding the same ones after a restart.
func (a Addrs) Ports() topology.Ports {
	return topology.Ports{UDP: int(a.UDP.Port()), TCP: int(a.TCP.Port()), TLS: int(a.TLS.Port())}
}

// sockets are the open listeners of one listener set.
type sockets struct {
	udp   *net.UDPConn
	tcp   *trackedListener
	tls   *trackedListener
	addrs Addrs
}

const udpBuffer = 4 << 20 // a few hundred concurrent REGISTERs overflow the default

// bind opens the listeners. An ephemeral UDP and TCP pair gets one port for both, retrying when
// the port the OS picked for UDP is taken for TCP.
func bind(addr netip.Addr, ports topology.Ports, conns connLimits) (*sockets, error) {
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		s, err := bindOnce(addr, ports, conns)
		if err == nil {
			return s, nil
		}
		last = err
		if !errors.Is(err, errPortPairTaken) {
			return nil, err
		}
	}
	return nil, last
}

var errPortPairTaken = errors.New("ephemeral port pair taken")

func bindOnce(addr netip.Addr, ports topology.Ports, conns connLimits) (s *sockets, err error) {
	s = &sockets{}
	defer func() {
		if err != nil {
			s.close(false)
		}
	}()
	port := func(p int) int {
		if p == topology.PortEphemeral {
			return 0
		}
		return p
	}
	if ports.UDP != 0 {
		s.udp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port(ports.UDP)))))
		if err != nil {
			return nil, fmt.Errorf("listen UDP %s: %w", netip.AddrPortFrom(addr, uint16(port(ports.UDP))), err)
		}
		_ = s.udp.SetReadBuffer(udpBuffer)
		_ = s.udp.SetWriteBuffer(udpBuffer)
		s.addrs.UDP = s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	if ports.TCP != 0 {
		p := port(ports.TCP)
		pair := ports.TCP == topology.PortEphemeral && ports.UDP == topology.PortEphemeral
		if pair {
			p = int(s.addrs.UDP.Port())
		}
		ln, err := listenTCP(netip.AddrPortFrom(addr, uint16(p)))
		if err != nil {
			if pair && errors.Is(err, syscall.EADDRINUSE) {
				return nil, errPortPairTaken
			}
			return nil, fmt.Errorf("listen TCP %s: %w", netip.AddrPortFrom(addr, uint16(p)), err)
		}
		s.tcp = newTrackedListener(ln, conns, "tcp")
		s.addrs.TCP = ln.Addr().(*net.TCPAddr).AddrPort()
	}
	if ports.TLS != 0 {
		ln, err := listenTCP(netip.AddrPortFrom(addr, uint16(port(ports.TLS))))
		if err != nil {
			return nil, fmt.Errorf("listen TLS %s: %w", netip.AddrPortFrom(addr, uint16(port(ports.TLS))), err)
		}
		s.tls = newTrackedListener(ln, conns, "tls")
		s.addrs.TLS = ln.Addr().(*net.TCPAddr).AddrPort()
	}
	return s, nil
}

func listenTCP(ap netip.AddrPort) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: 30 * time.Second} // detects peers that vanished (half-open)
	return lc.Listen(context.Background(), "tcp", ap.String())
}

// close closes every listener and connection; abrupt resets TCP connections (RST) instead of
// closing them (FIN), as a crashed server's kernel would.
func (s *sockets) close(abrupt bool) {
	if s.udp != nil {
		s.udp.Close()
	}
	for _, l := range []*trackedListener{s.tcp, s.tls} {
		if l != nil {
			l.closeAll(abrupt)
		}
	}
}

// connLimits are the TCP/TLS protections and gauges of a listener set.
type connLimits struct {
	perIP   int // 0 = unlimited
	exempt  map[netip.Addr]bool
	gauge   func(transport string) prometheus.Gauge
	dropped func(reason string)
	// acceptFailed is told of each temporary accept failure and the pause before the next try.
	acceptFailed func(transport string, err error, pause time.Duration)
}

// trackedListener counts and remembers accepted connections, refuses those over the per-IP limit,
// and can close them all (with RST for a crash).
type trackedListener struct {
	net.Listener
	limits    connLimits
	transport string
	gauge     prometheus.Gauge

	// done is closed with the listener: it ends an accept backoff.
	done chan struct{}
	// dead is set when Accept failed for good (an error that is neither temporary nor a close).
	dead atomic.Bool

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	perIP  map[netip.Addr]int
	closed bool
}

// temporary reports whether an accept error passes: the process or system open-file limit, a
// lack of memory or buffers, or an error of the connection being accepted, which Linux reports
// from accept itself (accept(2): treat ENETDOWN, EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET,
// EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH like EAGAIN; EPERM is a firewall refusing that one).
func temporary(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED,
			syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPERM,
			syscall.ENETDOWN, syscall.EPROTO, syscall.ENOPROTOOPT, syscall.EHOSTDOWN, syscall.ENONET,
			syscall.EHOSTUNREACH, syscall.EOPNOTSUPP, syscall.ENETUNREACH:
			return true
		}
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func newTrackedListener(l net.Listener, limits connLimits, transport string) *trackedListener {
	t := &trackedListener{Listener: l, limits: limits, transport: transport, done: make(chan struct{}), conns: map[*trackedConn]struct{}{}, perIP: map[netip.Addr]int{}}
	if limits.gauge != nil {
		t.gauge = limits.gauge(transport)
	}
	return t
}

// Accept returns the next connection within limits. A temporary failure (the open-file limit
// reached, a connection aborted before it was accepted) is retried with a backoff from 5 ms to
// 1 s, as net/http's Server does, instead of ending the listener: sipgo stops serving a
// listener on the first error Accept returns. Any other error marks the listener dead.
func (t *trackedListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := t.Listener.Accept()
		if err != nil {
			t.mu.Lock()
			closed := t.closed
			t.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			if !temporary(err) {
				t.dead.Store(true)
				if t.limits.dropped != nil {
					t.limits.dropped("listener_dead")
				}
				return nil, err
			}
			if t.limits.dropped != nil {
				t.limits.dropped("accept_error")
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if t.limits.acceptFailed != nil {
				t.limits.acceptFailed(t.transport, err, backoff)
			}
			select {
			case <-time.After(backoff):
			case <-t.done:
				return nil, net.ErrClosed
			}
			continue
		}
		backoff = 0
		ip := netip.Addr{}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip = ta.AddrPort().Addr().Unmap()
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return nil, net.ErrClosed
		}
		if t.limits.perIP > 0 && t.perIP[ip] >= t.limits.perIP && !t.limits.exempt[ip] {
			t.mu.Unlock()
			c.Close()
			if t.limits.dropped != nil {
				t.limits.dropped("conn_limit")
			}
			continue
		}
		tc := &trackedConn{Conn: c, l: t, ip: ip}
		t.conns[tc] = struct{}{}
		t.perIP[ip]++
		t.mu.Unlock()
		if t.gauge != nil {
			t.gauge.Inc()
		}
		return tc, nil
	}
}

func (t *trackedListener) forget(c *trackedConn) {
	t.mu.Lock()
	_, ok := t.conns[c]
	if ok {
		delete(t.conns, c)
		if t.perIP[c.ip]--; t.perIP[c.ip] <= 0 {
			delete(t.perIP, c.ip)
		}
	}
	t.mu.Unlock()
	if ok && t.gauge != nil {
		t.gauge.Dec()
	}
}

func (t *trackedListener) closeAll(abrupt bool) {
	t.mu.Lock()
	if !t.closed {
		close(t.done)
	}
	t.closed = true
	t.mu.Unlock()
	t.Listener.Close()
	if abrupt {
		t.mu.Lock()
		for c := range t.conns {
			if tcp, ok := c.Conn.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0) // close sends RST
			}
		}
		t.mu.Unlock()
	}
	t.dropConns()
}

// dropConns closes the accepted connections and keeps the listener open.
func (t *trackedListener) dropConns() {
	t.mu.Lock()
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// count returns the open connections.
func (t *trackedListener) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

type trackedConn struct {
	net.Conn
	l    *trackedListener
	ip   netip.Addr
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.forget(c) })
	return err
}

// streams returns what sipgo serves for a tracked listener: TLS over it when conf is set (the
// tracked connections stay raw TCP, so a crash can still reset them), each connection's reads
// bounded in time.
func streams(t *trackedListener, conf *tls.Config, limits streamLimits) net.Listener {
	var l net.Listener = t
	if conf != nil {
		l = tls.NewListener(t, conf)
	}
	return &streamListener{Listener: l, limits: limits}
}
