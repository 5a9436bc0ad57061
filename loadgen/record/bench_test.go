package record

import (
	"io"
	"testing"
)

// BenchmarkWriterEvent is the recorder's cost per client event (JSON and compression): at
// 10,000 sign-ins/s a load process records about 60,000 events/s on one goroutine.
func BenchmarkWriterEvent(b *testing.B) {
	w, err := NewWriter(io.Discard, Header{Scenario: "bench", Clients: 20000, Shards: 1})
	if err != nil {
		b.Fatal(err)
	}
	evs := []Event{
		{T: 1_000_000, C: 4711, E: Attempt, Server: "127.0.1.100:5060;transport=udp"},
		{T: 1_900_000, Lag: 1200, C: 4711, E: Response, Code: 401, RTT: 900_000, Server: "127.0.1.100:5060;transport=udp"},
		{T: 1_950_000, C: 4711, E: Challenged, Server: "127.0.1.100:5060;transport=udp"},
		{T: 2_900_000, Lag: 900, C: 4711, E: Registered, Mode: "regular", Server: "127.0.1.100:5060;transport=udp"},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := evs[i%len(evs)]
		e.C += i % 20000
		e.T += int64(i) * 1000
		if err := w.Event(e); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}
