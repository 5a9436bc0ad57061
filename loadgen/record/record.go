// Package record is the load generator's raw results stream: a header, then every client event
// and scenario step as it happened, then an end record, as gzip-compressed JSON lines. It is
// what `fepool load` writes while it runs and what `fepool report` reads to render a run again
// (or several shards' runs merged). Nothing here aggregates.
//
// Times are nanoseconds since the run's start (Header.Start, wall clock), so shards started on
// different hosts align on the wall clock. A Writer is safe for use by one goroutine; Read
// streams records in file order.
package record

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
}

// Event is one client event.
type Event struct {
	Kind string `json:"kind"`
	// T is when it happened; Lag how long the load generator took to record it.
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
	// Err is set when the run ended because something failed (the emulator went away).
	Err string `json:"err,omitempty"`
}

// Writer writes a stream.
type Writer struct {
	w   io.Writer
	gz  *gzip.Writer
	buf *bufio.Writer
	enc *json.Encoder
	err error
}

// NewWriter starts a stream on w with its header.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	gz := gzip.NewWriter(w)
	buf := bufio.NewWriterSize(gz, 256<<10)
	wr := &Writer{w: w, gz: gz, buf: buf, enc: json.NewEncoder(buf)}
	h.Kind, h.Version = KindHeader, Version
	if err := wr.put(h); err != nil {
		return nil, err
	}
	return wr, nil
}

func (w *Writer) put(v any) error {
	if w.err != nil {
		return w.err
	}
	w.err = w.enc.Encode(v)
	return w.err
}

// Step records a step.
func (w *Writer) Step(s Step) error { s.Kind = KindStep; return w.put(s) }

// Event records a client event.
func (w *Writer) Event(e Event) error { e.Kind = KindEvent; return w.put(e) }

// Flush pushes what is buffered to the file (a reader sees a valid prefix after it).
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = err
		return err
	}
	w.err = w.gz.Flush()
	return w.err
}

// Close writes the end record and closes the compression (not the underlying writer).
func (w *Writer) Close(e End) error {
	e.Kind = KindEnd
	err := w.put(e)
	if ferr := w.buf.Flush(); err == nil {
		err = ferr
	}
	if cerr := w.gz.Close(); err == nil {
		err = cerr
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

// Read streams the records of r to h. A stream cut short (truncated gzip or last line) ends
// without error when at least the header was read; Truncated reports it.
func Read(r io.Reader, h Handler) (truncated bool, err error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	defer gz.Close()
	sc := bufio.NewScanner(gz)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	ended := false
	for sc.Scan() {
		line++
		b := sc.Bytes()
		var k struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(b, &k); err != nil {
			if line == 1 {
				return false, fmt.Errorf("%w: %v", ErrFormat, err)
			}
			return true, nil // a line cut by a crash
		}
		if line == 1 && k.Kind != KindHeader {
			return false, fmt.Errorf("%w: the first record is %q, not a header", ErrFormat, k.Kind)
		}
		switch k.Kind {
		case KindHeader:
			var v Header
			if err := json.Unmarshal(b, &v); err != nil {
				return false, fmt.Errorf("record %d: %w", line, err)
			}
			if v.Version != Version {
				return false, fmt.Errorf("%w: version %d (this fepool reads %d)", ErrFormat, v.Version, Version)
			}
			if h.Header != nil {
				if err := h.Header(v); err != nil {
					return false, err
				}
			}
		case KindStep:
			var v Step
			if err := json.Unmarshal(b, &v); err != nil {
				return false, fmt.Errorf("record %d: %w", line, err)
			}
			if h.Step != nil {
				if err := h.Step(v); err != nil {
					return false, err
				}
			}
		case KindEvent:
			var v Event
			if err := json.Unmarshal(b, &v); err != nil {
				return false, fmt.Errorf("record %d: %w", line, err)
			}
			if h.Event != nil {
				if err := h.Event(v); err != nil {
					return false, err
				}
			}
		case KindEnd:
			var v End
			if err := json.Unmarshal(b, &v); err != nil {
				return false, fmt.Errorf("record %d: %w", line, err)
			}
			ended = true
			if h.End != nil {
				if err := h.End(v); err != nil {
					return false, err
				}
			}
		default:
			return false, fmt.Errorf("record %d: unknown kind %q", line, k.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		if line == 0 {
			return false, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		return true, nil // gzip cut short: keep what was read
	}
	if line == 0 {
		return false, fmt.Errorf("%w: empty", ErrFormat)
	}
	return !ended, nil
}
