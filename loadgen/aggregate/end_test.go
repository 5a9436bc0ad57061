package aggregate_test

import (
	"bytes"
	"testing"

	"github.com/fepool/fepool/loadgen/record"
)

// A run is complete only when every shard's stream is whole and says its scenario ran to the
// end; otherwise the summary says why, from the shard that did not complete.
func TestCompleted(t *testing.T) {
	stream := func(shard, shards int, end *record.End) []byte {
		t.Helper()
		var buf bytes.Buffer
		w, err := record.NewWriter(&buf, record.Header{Start: base, Scenario: "c", Clients: 2, Shard: shard, Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Event(record.Event{T: ms, C: shard, E: record.Start}); err != nil {
			t.Fatal(err)
		}
		for i := range 2000 { // enough for a cut to leave a readable prefix
			if err := w.Event(record.Event{T: ms + int64(i), C: shard, E: record.Attempt}); err != nil {
				t.Fatal(err)
			}
		}
		cut := end == nil
		if cut {
			end = &record.End{T: 3 * ms, Reason: "the scenario completed", Completed: true}
		}
		if err := w.Close(*end); err != nil {
			t.Fatal(err)
		}
		if cut { // the load generator was killed: the end record and more are missing
			return buf.Bytes()[:buf.Len()*2/3]
		}
		return buf.Bytes()
	}
	done := &record.End{T: 2 * ms, Reason: "the scenario completed", Completed: true}
	stopped := &record.End{T: 2 * ms, Reason: "interrupted: interrupt signal received"}
	legacy := &record.End{T: 2 * ms, Reason: "the scenario completed"} // written before End.Completed
	for _, tc := range []struct {
		name       string
		streams    [][]byte
		completed  bool
		truncated  bool
		wantReason string
	}{
		{"one, completed", [][]byte{stream(0, 1, done)}, true, false, "the scenario completed"},
		{"one, interrupted", [][]byte{stream(0, 1, stopped)}, false, false, "interrupted: interrupt signal received"},
		{"one, before Completed existed", [][]byte{stream(0, 1, legacy)}, true, false, "the scenario completed"},
		{"two, both completed", [][]byte{stream(0, 2, done), stream(1, 2, done)}, true, false, "the scenario completed"},
		{"two, the second interrupted", [][]byte{stream(0, 2, done), stream(1, 2, stopped)}, false, false, "interrupted: interrupt signal received"},
		{"two, the first interrupted", [][]byte{stream(0, 2, stopped), stream(1, 2, done)}, false, false, "interrupted: interrupt signal received"},
		{"two, one cut short", [][]byte{stream(0, 2, done), stream(1, 2, nil)}, false, true, "the scenario completed"},
		{"one, cut short", [][]byte{stream(0, 1, nil)}, false, true, "the results stream ends without an end record (the load generator was killed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := merge(t, tc.streams...)
			if s.Completed != tc.completed || s.Truncated != tc.truncated || s.EndReason != tc.wantReason {
				t.Errorf("completed %v truncated %v reason %q; want %v %v %q", s.Completed, s.Truncated, s.EndReason, tc.completed, tc.truncated, tc.wantReason)
			}
		})
	}
}
