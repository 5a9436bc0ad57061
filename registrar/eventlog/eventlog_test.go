package eventlog

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"
)

func TestEmitRingFollow(t *testing.T) {
	var buf bytes.Buffer
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	l := New(zerolog.New(&buf), clock, 3)
	f := l.Follow(1)
	rg := 7
	e := l.Emit(Event{EventID: 32167, Kind: "PrimaryPromoted", Pool: "pool-a", FrontEnd: "fe02", RoutingGroup: &rg, Message: "promoted"})
	if e.Seq != 1 || e.Source != "LS User Services" || !e.Time.Equal(clock.Now()) {
		t.Fatalf("emitted %+v", e)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if line["eventId"] != float64(32167) || line["rg"] != float64(7) || line["message"] != "promoted" || line["fe"] != "fe02" {
		t.Errorf("log line = %v", line)
	}
	if got := <-f.C(); got.Seq != 1 {
		t.Errorf("follower got %+v", got)
	}
	for i := 0; i < 4; i++ {
		l.Emit(Event{Kind: "X", Message: "m"})
	}
	if lost := f.Close(); lost != 3 {
		t.Errorf("follower with buffer 1 lost %d of 4, want 3", lost)
	}
	got := l.Since(0)
	if len(got) != 3 || got[0].Seq != 3 || got[2].Seq != 5 {
		t.Fatalf("Since(0) over a ring of 3 = %+v", got)
	}
	if got := l.Since(4); len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("Since(4) = %+v", got)
	}
	if l.Last() != 5 {
		t.Fatalf("Last = %d", l.Last())
	}
	l.Emit(Event{Kind: "after close"}) // a closed follower is not written to
}
