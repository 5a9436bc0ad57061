package client

import (
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux every client socket of the process is read by a few shared pollers, one per CPU (up
// to 8), as SIPp reads its sockets: an epoll set each, drained by one goroutine that runs the
// clients' callbacks. A goroutine per socket cost each of 20,000 own-socket clients a stack
// (grown by those callbacks) and a read buffer, most of the load process's memory, and a
// goroutine wake-up per datagram.

// poller reads the sockets in its epoll set.
type poller struct {
	epfd    int
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

// pollIdle is how often a poller without events looks whether it still has sockets (its
// goroutine ends when it has none).
const pollIdle = 200 // ms

func pollerFor(fd int) (*poller, error) {
	pollers.once.Do(func() {
		for range max(1, min(runtime.GOMAXPROCS(0), 8)) {
			epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
			if err != nil {
				pollers.err = err
				return
			}
			pollers.all = append(pollers.all, &poller{epfd: epfd, stacks: map[int32]*stack{}})
		}
	})
	if pollers.err != nil {
		return nil, pollers.err
	}
	return pollers.all[fd%len(pollers.all)], nil
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

// stopReading takes the socket out of its poller (before it is closed) and waits for a read of
// it under way.
func (s *stack) stopReading() {
	p := s.rd.p
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.stacks[s.rd.fd] == s {
		delete(p.stacks, s.rd.fd)
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(s.rd.fd), nil)
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
		n, err := unix.EpollWait(p.epfd, events, pollIdle)
		if err != nil && err != unix.EINTR {
			time.Sleep(10 * time.Millisecond) // not expected: do not spin on it
		}
		if n <= 0 {
			p.mu.Lock()
			if len(p.stacks) == 0 {
				p.running = false
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			continue
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			s := p.stacks[ev.Fd]
			p.mu.Unlock()
			if s != nil {
				s.drain(buf)
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

// drain reads the datagrams waiting on the stack's socket (up to a bound, for fairness: the
// poller comes back for the rest).
func (s *stack) drain(buf []byte) {
	s.reading.Lock()
	defer s.reading.Unlock()
	s.drainLocked(buf)
}

func (s *stack) drainLocked(buf []byte) {
	for range 64 {
		n, from, at, ok, err := s.read.tryRead(buf)
		if err != nil || !ok {
			return
		}
		s.datagram(buf[:n], from, at)
	}
}
