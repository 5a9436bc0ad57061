// Package record is the load generator's raw results stream: a header, then every client event
// and scenario step as it happened, then an end record, as gzip-compressed JSON lines. It is
// what `fepool load` writes while it runs and what `fepool report` reads to render a run again
// (or several shards' runs merged). Nothing here aggregates.
//
// Times are nanoseconds since the run's start (Header.Start, wall clock), so shards started on
// different hosts align on the wall clock. A Writer is for one goroutine at a time; Read
// streams records in file order.
package record

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Version of the stream format.
const Version = 1

// Kinds of record.
const (
	KindHeader = "header"
	KindStep   = "step"
	KindEvent  = "ev"
	KindEnd    = "end"
)

// Event names: what a client reported (client.Kind), plus "start" when the load generator
// started the client.
const (
	Start      = "start"
	Attempt    = "attempt"
	Response   = "response"
	Challenged = "challenged"
	Redirected = "redirected"
	Registered = "registered"
	Lost       = "lost"
	SignedOut  = "signedout"
	Notified   = "notified"
	// Contact is a contact-list change the load generator made (Code: the answer, 0 when none).
	Contact = "contact"
)

// Header opens a stream.
type Header struct {
	Kind    string    `json:"kind"`
	Version int       `json:"version"`
	Start   time.Time `json:"start"`
	// Scenario is the scenario's name; Description its text.
	Scenario    string `json:"scenario"`
	Description string `json:"description,omitempty"`
	// Clients is the whole population; this stream holds the clients of shard Shard of Shards.
	Clients int `json:"clients"`
	Shard   int `json:"shard"`
	Shards  int `json:"shards"`
	// Emulator is the admin API the run drove; Host the machine it ran on.
	Emulator   string   `json:"emulator,omitempty"`
	Host       string   `json:"host,omitempty"`
	Thresholds []string `json:"thresholds,omitempty"`
	// Realtime says the load process ran under real-time scheduling (fepool load --realtime).
	Realtime bool `json:"realtime,omitempty"`
}

// Teardown is the Action of the step record the load generator writes when the scenario is
// over and it signs its clients out: measurement ends there.
const Teardown = "teardown"

// Step is a scenario step, at the time it was carried out (t0 of the latencies it causes).
type Step struct {
	Kind  string `json:"kind"`
	T     int64  `json:"t"`
	Index int    `json:"i"`
	Name  string `json:"name"`
	// Action is the step's verb (crash_pool, failover, wait, ...); Disruptive marks steps that
	// open a measurement window.
	Action     string `json:"action"`
	Disruptive bool   `json:"disruptive,omitempty"`
	// Duration is how long carrying it out took (a wait's wait); Err why it failed.
	Duration int64  `json:"dur,omitempty"`
	Err      string `json:"err,omitempty"`
	// Shard is the shard whose stream the step was read from (from its header; not stored).
	Shard int `json:"-"`
}

// Event is one client event.
type Event struct {
	Kind string `json:"kind"`
	// T is when it happened (for a response and the registration it makes: when the datagram
	// reached the socket, the kernel's stamp); Lag how long the load generator took from then
	// to record it: its own delay.
	T   int64 `json:"t"`
	Lag int64 `json:"lag,omitempty"`
	// C is the client's index in the whole population (shards never share one).
	C    int    `json:"c"`
	E    string `json:"e"`
	Code int    `json:"code,omitempty"`
	RTT  int64  `json:"rtt,omitempty"`
	Mode string `json:"mode,omitempty"`
	// Server is the registrar concerned (ip:port;transport=...).
	Server  string `json:"srv,omitempty"`
	Refresh bool   `json:"refresh,omitempty"`
	Final   bool   `json:"final,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// End closes a stream. A stream without one was cut short (the generator died): the records
// before the cut still report.
type End struct {
	Kind   string `json:"kind"`
	T      int64  `json:"t"`
	Reason string `json:"reason"`
	// Completed says the scenario ran to its end (its last step, or an end step): only a
	// completed run's thresholds are judged. Interrupted, bounded and failed runs leave it
	// false; Reason says why.
	Completed bool `json:"completed,omitempty"`
	// Err is set when the run ended because something failed (the emulator went away).
	Err string `json:"err,omitempty"`
}

// Writer writes a stream. Encoding happens in the caller; compression and writing run on the
// Writer's own goroutine, fed 64 KiB chunks through a queue, so a caller recording tens of
// thousands of events a second never waits for gzip or the disk (unless the queue of 16 MiB is
// full: Stalls counts those waits). Close ends the goroutine. A Writer is for one goroutine at a
// time.
type Writer struct {
	chunk  *bytes.Buffer
	enc    *json.Encoder
	queue  chan chunk
	done   chan struct{}
	stalls int
	mu     sync.Mutex // err, set by the compressing goroutine
	err    error
}

// chunk is encoded records, or (flush set) a request to push everything so far to the file.
type chunk struct {
	data  *bytes.Buffer
	flush bool
}

const (
	chunkSize   = 64 << 10
	queueChunks = 256
)

var chunks = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, chunkSize+4096)) }}

// NewWriter starts a stream on w with its header.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	wr := &Writer{queue: make(chan chunk, queueChunks), done: make(chan struct{})}
	wr.next()
	go wr.compress(w)
	h.Kind, h.Version = KindHeader, Version
	if err := wr.put(h); err != nil {
		close(wr.queue)
		<-wr.done
		return nil, err
	}
	return wr, nil
}

func (w *Writer) next() {
	w.chunk = chunks.Get().(*bytes.Buffer)
	w.chunk.Reset()
	w.enc = json.NewEncoder(w.chunk)
}

// compress writes the queued chunks through gzip to out until the queue closes.
func (w *Writer) compress(out io.Writer) {
	defer close(w.done)
	gz, _ := gzip.NewWriterLevel(out, gzip.BestSpeed) // a valid level: never fails
	fail := func(err error) {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	for c := range w.queue {
		if _, err := gz.Write(c.data.Bytes()); err != nil {
			fail(err)
		}
		chunks.Put(c.data)
		if c.flush {
			if err := gz.Flush(); err != nil {
				fail(err)
			}
		}
	}
	if err := gz.Close(); err != nil {
		fail(err)
	}
}

// ErrClosed is what a Writer answers once it is closed.
var ErrClosed = errors.New("results stream already closed")

// failed is the first error of the compressing goroutine, or ErrClosed.
func (w *Writer) failed() error {
	if w.chunk == nil {
		return ErrClosed
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) put(v any) error {
	if err := w.failed(); err != nil {
		return err
	}
	if err := w.enc.Encode(v); err != nil {
		return err
	}
	w.sendFull()
	return nil
}

// sendFull sends the chunk once it is full.
func (w *Writer) sendFull() {
	if w.chunk.Len() >= chunkSize {
		w.send(false)
	}
}

// send queues the current chunk (counting a stall when the queue is full) and starts another.
func (w *Writer) send(flush bool) {
	c := chunk{data: w.chunk, flush: flush}
	select {
	case w.queue <- c:
	default:
		w.stalls++
		w.queue <- c
	}
	w.next()
}

// Stalls is how many times a record waited for the compressing goroutine.
func (w *Writer) Stalls() int { return w.stalls }

// Step records a step.
func (w *Writer) Step(s Step) error { s.Kind = KindStep; return w.put(s) }

// Event records a client event.
func (w *Writer) Event(e Event) error {
	if err := w.failed(); err != nil {
		return err
	}
	e.Kind = KindEvent
	w.chunk.Write(appendEvent(w.chunk.AvailableBuffer(), &e))
	w.sendFull()
	return nil
}

// Flush has what was recorded so far pushed to the file (a reader then sees a valid prefix).
// It does not wait for it.
func (w *Writer) Flush() error {
	if err := w.failed(); err != nil {
		return err
	}
	w.send(true)
	return nil
}

// Close writes the end record, waits until everything is compressed and written, and closes
// the compression (not the underlying writer).
func (w *Writer) Close(e End) error {
	if w.chunk == nil {
		return ErrClosed
	}
	e.Kind = KindEnd
	err := w.enc.Encode(e)
	w.queue <- chunk{data: w.chunk}
	w.chunk, w.enc = nil, nil
	close(w.queue)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		err = w.err
	}
	return err
}

// Handler receives a stream's records; any of its functions may be nil.
type Handler struct {
	Header func(Header) error
	Step   func(Step) error
	Event  func(Event) error
	End    func(End) error
}

// ErrFormat marks a stream that is not a fepool results stream.
var ErrFormat = errors.New("not a fepool results stream")

// Reader reads a stream record by record (Read and Merge are built on it).
type Reader struct {
	gz        *gzip.Reader
	sc        *bufio.Scanner
	line      int
	ended     bool
	truncated bool
	done      bool
}

// NewReader opens a stream and reads its header.
func NewReader(r io.Reader) (*Reader, Header, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, Header{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	sc := bufio.NewScanner(gz)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	rd := &Reader{gz: gz, sc: sc}
	if !sc.Scan() {
		gz.Close()
		if err := sc.Err(); err != nil {
			return nil, Header{}, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		return nil, Header{}, fmt.Errorf("%w: empty", ErrFormat)
	}
	rd.line = 1
	var h Header
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		gz.Close()
		return nil, Header{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if h.Kind != KindHeader {
		gz.Close()
		return nil, Header{}, fmt.Errorf("%w: the first record is %q, not a header", ErrFormat, h.Kind)
	}
	if h.Version != Version {
		gz.Close()
		return nil, Header{}, fmt.Errorf("%w: version %d (this fepool reads %d)", ErrFormat, h.Version, Version)
	}
	return rd, h, nil
}

// Next returns the next record after the header (a Step, an Event or an End), or io.EOF at
// the end of the stream. A stream cut short (by a crash) ends with io.EOF too: Truncated says
// so afterwards.
func (r *Reader) Next() (any, error) {
	if r.done {
		return nil, io.EOF
	}
	if !r.sc.Scan() {
		r.done = true
		r.gz.Close()
		r.truncated = r.sc.Err() != nil || !r.ended // gzip cut short, or no end record
		return nil, io.EOF
	}
	r.line++
	b := r.sc.Bytes()
	var k struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(b, &k); err != nil {
		r.done, r.truncated = true, true // a line cut by a crash: keep what was read
		r.gz.Close()
		return nil, io.EOF
	}
	var v any
	switch k.Kind {
	case KindStep:
		v = &Step{}
	case KindEvent:
		v = &Event{}
	case KindEnd:
		v = &End{}
	default:
		return nil, fmt.Errorf("record %d: unknown kind %q", r.line, k.Kind)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("record %d: %w", r.line, err)
	}
	switch v := v.(type) {
	case *Step:
		return *v, nil
	case *Event:
		return *v, nil
	case *End:
		r.ended = true
		return *v, nil
	}
	panic("unreachable")
}

// Truncated reports, once Next returned io.EOF, whether the stream was cut short.
func (r *Reader) Truncated() bool { return r.truncated }

// Read streams the records of r to h. A stream cut short (truncated gzip or last line) ends
// without error when at least the header was read; the result reports it.
func Read(r io.Reader, h Handler) (truncated bool, err error) {
	rd, hdr, err := NewReader(r)
	if err != nil {
		return false, err
	}
	if h.Header != nil {
		if err := h.Header(hdr); err != nil {
			return false, err
		}
	}
	for {
		v, err := rd.Next()
		if err == io.EOF {
			return rd.Truncated(), nil
		}
		if err != nil {
			return false, err
		}
		if st, ok := v.(Step); ok {
			st.Shard = hdr.Shard
			v = st
		}
		if err := h.dispatch(v); err != nil {
			return false, err
		}
	}
}

func (h Handler) dispatch(v any) error {
	switch v := v.(type) {
	case Step:
		if h.Step != nil {
			return h.Step(v)
		}
	case Event:
		if h.Event != nil {
			return h.Event(v)
		}
	case End:
		if h.End != nil {
			return h.End(v)
		}
	}
	return nil
}

// Source is one shard's stream, for Merge; Name says which in errors.
type Source struct {
	Name string
	R    io.Reader
}

// Merge reads the streams of several shards of one run as one stream, exactly: every record
// of every stream, in time order, with times shifted to the earliest shard's start (the
// streams' times are from their own Header.Start, on the wall clock). The handler sees each
// header, then the records. Scenario steps come from the leading shard only (shard 0, or the
// lowest one given: the others only marked them), except each shard's teardown, which ends
// the measurement of its own clients. The streams must be distinct shards of one run (same
// scenario, population and shard count); truncated reports that one was cut short.
func Merge(srcs []Source, h Handler) (truncated bool, err error) {
	if len(srcs) == 0 {
		return false, errors.New("no streams to merge")
	}
	type stream struct {
		name string
		rd   *Reader
		hdr  Header
	}
	ss := make([]*stream, len(srcs))
	for i, src := range srcs {
		rd, hdr, err := NewReader(src.R)
		if err != nil {
			return false, fmt.Errorf("%s: %w", src.Name, err)
		}
		ss[i] = &stream{name: src.Name, rd: rd, hdr: hdr}
	}
	slices.SortStableFunc(ss, func(a, b *stream) int { return a.hdr.Shard - b.hdr.Shard })
	first := ss[0]
	start := first.hdr.Start
	for i, s := range ss {
		switch {
		case s.hdr.Scenario != first.hdr.Scenario:
			return false, fmt.Errorf("%s is scenario %q but %s is %q: not one run", s.name, s.hdr.Scenario, first.name, first.hdr.Scenario)
		case s.hdr.Shards != first.hdr.Shards || s.hdr.Clients != first.hdr.Clients:
			return false, fmt.Errorf("%s is shard %d/%d of %d clients but %s is %d/%d of %d: not one run", s.name, s.hdr.Shard, s.hdr.Shards, s.hdr.Clients, first.name, first.hdr.Shard, first.hdr.Shards, first.hdr.Clients)
		case i > 0 && s.hdr.Shard == ss[i-1].hdr.Shard:
			return false, fmt.Errorf("%s and %s are both shard %d/%d", ss[i-1].name, s.name, s.hdr.Shard, s.hdr.Shards)
		}
		if s.hdr.Start.Before(start) {
			start = s.hdr.Start
		}
	}
	for _, s := range ss {
		if h.Header != nil {
			if err := h.Header(s.hdr); err != nil {
				return false, err
			}
		}
	}
	// k-way merge on each stream's next record's shifted time
	q := &mergeQueue{}
	next := func(i int) error {
		s := ss[i]
		v, err := s.rd.Next()
		if err == io.EOF {
			truncated = truncated || s.rd.Truncated()
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		shift := s.hdr.Start.Sub(start).Nanoseconds()
		var t int64
		switch r := v.(type) {
		case Step:
			r.T += shift
			r.Shard = s.hdr.Shard
			t, v = r.T, r
		case Event:
			r.T += shift
			t, v = r.T, r
		case End:
			r.T += shift
			t, v = r.T, r
		}
		heap.Push(q, mergeItem{t: t, src: i, v: v})
		return nil
	}
	for i := range ss {
		if err := next(i); err != nil {
			return false, err
		}
	}
	for q.Len() > 0 {
		it := heap.Pop(q).(mergeItem)
		if st, ok := it.v.(Step); !ok || it.src == 0 || st.Action == Teardown {
			if err := h.dispatch(it.v); err != nil {
				return false, err
			}
		}
		if err := next(it.src); err != nil {
			return false, err
		}
	}
	return truncated, nil
}

type mergeItem struct {
	t   int64
	src int
	v   any
}

type mergeQueue []mergeItem

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].t != q[j].t {
		return q[i].t < q[j].t
	}
	return q[i].src < q[j].src
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(mergeItem)) }
func (q *mergeQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
