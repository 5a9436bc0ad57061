package client

import (
	"crypto/tls"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
)

// Pool is a set of shared UDP sockets for very large populations: its clients multiplex over
// them, telling their requests apart by Contact user and answering server requests from the
// socket they registered from. A client is assigned a socket by a hash of its user, so one user
// always lands on the same socket.
type Pool struct {
	stacks []*stack
}

// NewPool opens size shared sockets on ip (default 127.0.0.1; tls nil: no verification).
func NewPool(size int, ip netip.Addr, tlsConf *tls.Config, logger *slog.Logger) (*Pool, error) {
	if size < 1 {
		return nil, fmt.Errorf("%w: pool size %d", ErrConfig, size)
	}
	if !ip.IsValid() {
		ip = netip.MustParseAddr("127.0.0.1")
	}
	if tlsConf == nil {
		tlsConf = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // self-signed emulator on loopback
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{}
	for i := 0; i < size; i++ {
		st, err := newStack(ip, tlsConf, logger)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.stacks = append(p.stacks, st)
	}
	return p, nil
}

func (p *Pool) pick(user string) *stack {
	h := fnv.New32a()
	h.Write([]byte(user))
	return p.stacks[h.Sum32()%uint32(len(p.stacks))]
}

// Close closes the sockets; close the pool's clients first.
func (p *Pool) Close() {
	for _, st := range p.stacks {
		st.close()
	}
}
