// Package eventlog is the emulator's event log: every state change (Front End started or crashed,
// routing group promoted, quorum lost, reset) as a zerolog JSON line carrying its Lync event ID
// where Lync has one, kept in a ring for the admin API's /events and fanned out to followers.
// Safe for concurrent use; Emit never blocks on a slow follower (it drops for that follower and
// counts the loss).
package eventlog

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"
)

// Event is one entry of the log.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// EventID is the Lync event ID (32108, 32167, ...), 0 when Lync has none.
	EventID int    `json:"eventId,omitempty"`
	Kind    string `json:"kind"`
	// Source is the Lync event source, such as "LS User Services".
	Source       string `json:"source,omitempty"`
	Pool         string `json:"pool,omitempty"`
	FrontEnd     string `json:"frontEnd,omitempty"`
	RoutingGroup *int   `json:"routingGroup,omitempty"`
	Count        int    `json:"count,omitempty"`
	Message      string `json:"message"`
}

// Sources of the Lync event IDs the emulator raises.
var sources = map[int]string{
	32108: "LS User Services", 32167: "LS User Services", 32163: "LS User Services",
	32170: "LS User Services", 32173: "LS User Services", 32174: "LS User Services",
	32189: "LS User Services", 32033: "LS Storage Service",
	51035: "LS MCU Infrastructure", 51037: "LS MCU Infrastructure",
}

// Log is the event log.
type Log struct {
	log   zerolog.Logger
	clock clockwork.Clock

	mu      sync.Mutex
	seq     uint64
	ring    []Event
	next    int
	full    bool
	subs    map[*Follower]struct{}
	dropped uint64
}

// New returns a log keeping the last size events.
func New(log zerolog.Logger, clock clockwork.Clock, size int) *Log {
	if size < 1 {
		size = 1
	}
	return &Log{log: log.With().Str("component", "eventlog").Logger(), clock: clock, ring: make([]Event, size), subs: map[*Follower]struct{}{}}
}

// Emit records an event: it assigns Seq, Time and Source, writes the JSON log line and hands it to
// followers.
func (l *Log) Emit(e Event) Event {
	l.mu.Lock()
	l.seq++
	e.Seq = l.seq
	e.Time = l.clock.Now()
	if e.Source == "" {
		e.Source = sources[e.EventID]
	}
	l.ring[l.next] = e
	l.next = (l.next + 1) % len(l.ring)
	if l.next == 0 {
		l.full = true
	}
	for f := range l.subs {
		select {
		case f.ch <- e:
		default:
			f.lost++
			l.dropped++
		}
	}
	l.mu.Unlock()

	ev := l.log.Info()
	if e.EventID != 0 {
		ev = ev.Int("eventId", e.EventID).Str("source", e.Source)
	}
	ev = ev.Uint64("seq", e.Seq).Str("kind", e.Kind)
	if e.Pool != "" {
		ev = ev.Str("pool", e.Pool)
	}
	if e.FrontEnd != "" {
		ev = ev.Str("fe", e.FrontEnd)
	}
	if e.RoutingGroup != nil {
		ev = ev.Int("rg", *e.RoutingGroup)
	}
	if e.Count != 0 {
		ev = ev.Int("count", e.Count)
	}
	ev.Msg(e.Message)
	return e
}

// Since returns the retained events with Seq > seq, oldest first.
func (l *Log) Since(seq uint64) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	n := l.next
	if l.full {
		n = len(l.ring)
	}
	start := 0
	if l.full {
		start = l.next
	}
	for i := 0; i < n; i++ {
		e := l.ring[(start+i)%len(l.ring)]
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// Last returns the sequence number of the newest event.
func (l *Log) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Follower receives new events until closed.
type Follower struct {
	l    *Log
	ch   chan Event
	lost int
}

// Follow subscribes to new events; buf bounds how far a follower may lag before events are
// dropped for it.
func (l *Log) Follow(buf int) *Follower {
	f := &Follower{l: l, ch: make(chan Event, buf)}
	l.mu.Lock()
	l.subs[f] = struct{}{}
	l.mu.Unlock()
	return f
}

// C delivers events.
func (f *Follower) C() <-chan Event { return f.ch }

// Close unsubscribes; it returns how many events this follower lost to lag.
func (f *Follower) Close() int {
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	delete(f.l.subs, f)
	return f.lost
}
