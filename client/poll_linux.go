package client

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux every client socket of the process is read by a few shared pollers, one per CPU (up
// to 8), as SIPp reads its sockets: an epoll set each, drained by one goroutine that runs the
// clients' callbacks. A goroutine per socket cost each of 20,000 own-socket clients a stack
// (grown by those callbacks) and a read buffer, most of the load process's memory, and a
// goroutine wake-up per datagram.

// poller reads the sockets in its epoll set. The epoll descriptor itself waits in Go's network
// poller (it is readable when one of its sockets is), so the poller's goroutine parks and wakes
// like any network goroutine instead of blocking a thread in epoll_wait.
type poller struct {
	epfd    int
	file    *os.File        // epfd, registered with Go's network poller
	rc      syscall.RawConn // file's
	mu      sync.Mutex
	stacks  map[int32]*stack // by file descriptor
	running bool             // its goroutine runs
}

// sockReader is a stack's place in a poller.
type sockReader struct {
	fd int32
	p  *poller
}

var pollers struct {
	once sync.Once
	all  []*poller
	err  error
}

func pollerFor(fd int) (*poller, error) {
	pollers.once.Do(func() {
		for range max(1, min(runtime.GOMAXPROCS(0), 8)) {
			p, err := newPoller()
			if err != nil {
				pollers.err = err
				return
			}
			pollers.all = append(pollers.all, p)
		}
	})
	if pollers.err != nil {
		return nil, pollers.err
	}
	return pollers.all[fd%len(pollers.all)], nil
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "client-poller")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return &poller{epfd: epfd, file: f, rc: rc, stacks: map[int32]*stack{}}, nil
}

// startReading adds the stack's socket to a poller.
func (s *stack) startReading() error {
	fd := -1
	if err := s.read.rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return err
	}
	p, err := pollerFor(fd)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		return err
	}
	s.rd = sockReader{fd: int32(fd), p: p}
	p.stacks[int32(fd)] = s
	if !p.running {
		p.running = true
		go p.run()
	}
	return nil
}

// stopReading takes the socket out of its poller (before it is closed) and waits for a drain of
// it under way. (A poller that looked the stack up just before may still try to read it: the
// read fails on the closed socket, or reads the socket that reused the descriptor, which its
// own stack then handles.)
func (s *stack) stopReading() {
	p := s.rd.p
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.stacks[s.rd.fd] == s {
		delete(p.stacks, s.rd.fd)
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(s.rd.fd), nil)
		if len(p.stacks) == 0 {
			_ = p.file.SetReadDeadline(time.Now()) // wakes the goroutine to end
		}
	}
	p.mu.Unlock()
	s.reading.Lock()
	//lint:ignore SA2001 taking the lock waits for a drain under way to end
	s.reading.Unlock()
}

// run reads the ready sockets until the poller has none left.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, udpReadSize)
	for {
		var n int
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			return n > 0 || werr != nil // else nothing is ready: wait until something is
		})
		if err != nil { // the deadline stopReading set: no socket left?
			p.mu.Lock()
			if len(p.stacks) == 0 {
				p.running = false
				p.mu.Unlock()
				return
			}
			_ = p.file.SetReadDeadline(time.Time{})
			p.mu.Unlock()
			continue
		}
		if werr == unix.EINTR {
			continue
		}
		if werr != nil {
			time.Sleep(10 * time.Millisecond) // not expected: do not spin on it
			continue
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			s := p.stacks[ev.Fd]
			p.mu.Unlock()
			if s != nil {
				// Waits if a timer is draining it (readPending): skipping it instead would
				// spin, since epoll reports the socket again until it is read.
				s.reading.Lock()
				s.drainLocked(buf)
				s.reading.Unlock()
			}
		}
	}
}

// readBuffers are for reads outside the pollers' goroutines (readPending): a few kept for good
// (a sync.Pool, emptied by every collection, had a busy process allocate one per timer).
var readBuffers = make(chan []byte, 8)

// readPending handles the datagrams waiting on the stack's socket now, unless someone is at it
// already.
func (s *stack) readPending() {
	if s.rd.p == nil || !s.reading.TryLock() {
		return
	}
	defer s.reading.Unlock()
	var b []byte
	select {
	case b = <-readBuffers:
	default:
		b = make([]byte, udpReadSize)
	}
	s.drainLocked(b)
	select {
	case readBuffers <- b:
	default:
	}
}

// drainLocked reads the datagrams waiting on the stack's socket, s.reading held (up to a bound,
// for fairness: the poller comes back for the rest, since epoll reports the socket again).
func (s *stack) drainLocked(buf []byte) {
	for range 64 {
		n, from, at, ok, err := s.read.tryRead(buf)
		if err != nil || !ok {
			return
		}
		s.datagram(buf[:n], from, at)
	}
}

// writeTo sends a datagram without ever waiting: with the socket's send buffer full it is
// dropped, as a lossy network would (retransmissions cover requests). A write that parked
// would hold the stack's lock, or the poller that serves a share of the population.
func (s *stack) writeTo(b []byte, dst netip.AddrPort) error {
	var sa unix.Sockaddr
	if a := dst.Addr().Unmap(); s.local.Addr().Unmap().Is4() && a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: dst.Addr().As16()} // IPv4 v4-mapped
	}
	var serr error
	if err := s.read.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, unix.MSG_DONTWAIT, sa)
		return true
	}); err != nil {
		return err
	}
	if serr == unix.EAGAIN || serr == unix.ENOBUFS {
		return nil
	}
	return serr
}
