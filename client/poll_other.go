//go:build !linux

package client

import (
	"errors"
	"net"
	"net/netip"
)

// Elsewhere each client socket has its own read goroutine.

type sockReader struct{}

func (s *stack) startReading() error {
	s.serving.Add(1)
	go s.serveUDP()
	return nil
}

// readPending: the read goroutine reads as datagrams arrive.
func (s *stack) readPending() {}

// stopReading: the read goroutine ends when the socket closes (close waits for it).
func (s *stack) stopReading() {}

// serveUDP reads the socket until it is closed.
func (s *stack) serveUDP() {
	defer s.serving.Done()
	buf := make([]byte, udpReadSize)
	for {
		n, from, at, err := s.read.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isClosed() {
				return
			}
			s.logger.Debug("client socket read failed", "error", err)
			continue
		}
		s.datagram(buf[:n], from, at)
	}
}

func (s *stack) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// writeTo sends a datagram.
func (s *stack) writeTo(b []byte, dst netip.AddrPort) error {
	_, err := s.udp.WriteToUDPAddrPort(b, dst)
	return err
}
