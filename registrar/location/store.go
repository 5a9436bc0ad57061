package location

import (
	"hash/maphash"
	"sync"
	"time"
)

// RG names a routing group: the pool's index in the topology and the RG's index in the pool.
type RG struct {
	Pool, Index int
}

const shards = 64

// Store is one Front End's registration memory: the records of every RG it holds a replica of.
// It is safe for concurrent use; operations on one AOR are serialised by its shard's lock.
type Store struct {
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu sync.Mutex
	m  map[string]entry
}

type entry struct {
	rg  RG
	rec *Record
}

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]entry)
	}
	return s
}

func (s *Store) shard(aor string) *shard {
	return &s.shards[maphash.String(s.seed, aor)%shards]
}

// Get returns the AOR's record, or nil.
func (s *Store) Get(aor string) *Record {
	sh := s.shard(aor)
	sh.mu.Lock()
	e := sh.m[aor]
	sh.mu.Unlock()
	return e.rec
}

// Put stores (or, with nil, deletes) a record: a secondary receiving replication.
func (s *Store) Put(rg RG, aor string, rec *Record) {
	sh := s.shard(aor)
	sh.mu.Lock()
	put(sh, rg, aor, rec)
	sh.mu.Unlock()
}

func put(sh *shard, rg RG, aor string, rec *Record) {
	if rec == nil {
		delete(sh.m, aor)
		return
	}
	sh.m[aor] = entry{rg: rg, rec: rec}
}

// Update runs fn on the AOR's record under its lock and stores what fn returns unless fn fails.
// The primary replicates from inside fn, so replicas see updates of one AOR in order.
func (s *Store) Update(rg RG, aor string, fn func(old *Record) (*Record, error)) error {
	sh := s.shard(aor)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rec, err := fn(sh.m[aor].rec)
	if err != nil {
		return err
	}
	put(sh, rg, aor, rec)
	return nil
}

// Each calls fn for every record of the RGs keep selects, shard by shard, until fn returns false.
// fn must not call back into the store.
func (s *Store) Each(keep func(RG) bool, fn func(rg RG, rec *Record) bool) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, e := range sh.m {
			if keep(e.rg) && !fn(e.rg, e.rec) {
				sh.mu.Unlock()
				return
			}
		}
		sh.mu.Unlock()
	}
}

// CopyRG copies every record of an RG into dst: state transfer to a new secondary.
func (s *Store) CopyRG(rg RG, dst *Store) int {
	n := 0
	s.Each(func(r RG) bool { return r == rg }, func(_ RG, rec *Record) bool {
		dst.Put(rg, rec.AOR, rec)
		n++
		return true
	})
	return n
}

// DropRG forgets every record of the RGs drop selects: this Front End no longer holds them.
func (s *Store) DropRG(drop func(RG) bool) int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for aor, e := range sh.m {
			if drop(e.rg) {
				delete(sh.m, aor)
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// Sweep drops expired bindings and empty records at now; it returns how many bindings went.
func (s *Store) Sweep(now time.Time) int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for aor, e := range sh.m {
			active := e.rec.Active(now)
			if len(active) == len(e.rec.Bindings) {
				continue
			}
			n += len(e.rec.Bindings) - len(active)
			put(sh, e.rg, aor, build(aor, active))
		}
		sh.mu.Unlock()
	}
	return n
}

// Counts returns the users with at least one active binding, and the active bindings, in the RGs
// keep selects.
func (s *Store) Counts(keep func(RG) bool, now time.Time) (users, bindings int) {
	s.Each(keep, func(_ RG, rec *Record) bool {
		if a := rec.Active(now); len(a) > 0 {
			users++
			bindings += len(a)
		}
		return true
	})
	return users, bindings
}
