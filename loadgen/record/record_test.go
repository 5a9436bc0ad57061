package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// TestWriterRoundTrip: everything written before Close reads back in order, after the header,
// with the end record last; a Flush alone leaves a readable (truncated) prefix.
func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Start: time.Unix(1700000000, 0).UTC(), Scenario: "rt", Clients: 3, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000 // several chunks
	for i := range n {
		if err := w.Event(Event{T: int64(i), C: i % 3, E: Attempt}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Step(Step{T: n, Index: 1, Name: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// Flush does not wait: Close does, and only then is everything in buf.
	if err := w.Close(End{T: n + 1, Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Event(Event{E: Attempt}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Event after Close: %v, want ErrClosed", err)
	}
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if err := w.Close(End{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close twice: %v", err)
	}
	var events, steps int
	var end End
	truncated, err := Read(bytes.NewReader(buf.Bytes()), Handler{
		Event: func(e Event) error {
			if e.T != int64(events) {
				t.Fatalf("event %d has T %d", events, e.T)
			}
			events++
			return nil
		},
		Step: func(Step) error { steps++; return nil },
		End:  func(e End) error { end = e; return nil },
	})
	if err != nil || truncated || events != n || steps != 1 || end.Reason != "done" {
		t.Fatalf("read %d events, %d steps, end %+v, truncated %v, err %v", events, steps, end, truncated, err)
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestWriterReportsWriteErrors: a failing file surfaces on a later call and on Close.
func TestWriterReportsWriteErrors(t *testing.T) {
	w, err := NewWriter(&failingWriter{after: 100}, Header{Scenario: "fail", Clients: 1, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20000 {
		if err := w.Event(Event{T: int64(i), E: Attempt, Reason: "padding padding padding padding"}); err != nil {
			break
		}
	}
	if err := w.Close(End{Reason: "x"}); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close: %v, want disk full", err)
	}
}

// FuzzAppendEvent: the event encoder writes what json.Encoder writes.
func FuzzAppendEvent(f *testing.F) {
	f.Add(int64(12), int64(0), 3, "response", 200, int64(1500), "", "127.0.1.1:5060;transport=udp", false, false, "")
	f.Add(int64(-1), int64(7), 0, "lost", 0, int64(0), "resiliency", "", true, true, "503 \"Service\" <Unavailable> & \x01 \xff é \u2028")
	f.Fuzz(func(t *testing.T, tm, lag int64, c int, e string, code int, rtt int64, mode, srv string, refresh, final bool, reason string) {
		ev := Event{Kind: KindEvent, T: tm, Lag: lag, C: c, E: e, Code: code, RTT: rtt, Mode: mode, Server: srv, Refresh: refresh, Final: final, Reason: reason}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(ev); err != nil {
			t.Fatal(err)
		}
		if got := appendEvent(nil, &ev); string(got) != want.String() {
			t.Fatalf("appendEvent\n got %s\nwant %s", got, want.String())
		}
	})
}
