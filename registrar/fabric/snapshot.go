package fabric

import "slices"

// Snapshot is an immutable copy of a pool's fabric for lock-free readers (the SIP path).
type Snapshot struct {
	State State
	// Replicas[rg]: FE indices, primary first; empty when the RG has no replica.
	Replicas [][]int
	// Running[fe]: the fabric counts the Front End as running.
	Running []bool
}

// Snapshot copies the pool's current placement.
func (p *Pool) Snapshot() *Snapshot {
	s := &Snapshot{State: p.state, Replicas: make([][]int, len(p.replicas)), Running: slices.Clone(p.running)}
	for rg, list := range p.replicas {
		s.Replicas[rg] = slices.Clone(list)
	}
	return s
}

// Primary returns the RG's primary Front End; ok is false when the pool does not serve or the
// RG has no replica.
func (s *Snapshot) Primary(rg int) (fe int, ok bool) {
	if s == nil || s.State != Started || rg < 0 || rg >= len(s.Replicas) || len(s.Replicas[rg]) == 0 {
		return -1, false
	}
	return s.Replicas[rg][0], true
}

// MissingReplicas counts RGs with fewer than want replicas.
func (s *Snapshot) MissingReplicas(want int) int {
	n := 0
	for _, r := range s.Replicas {
		if len(r) < want {
			n++
		}
	}
	return n
}
