package aggregate_test

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fepool/fepool/loadgen/aggregate"
	"github.com/fepool/fepool/loadgen/record"
)

const ms = int64(time.Millisecond)

var base = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// world is one run's records at times since base: steps and the events of clients 0..n-1,
// random but reproducible (seeded). Clients register, a crash loses most of them, they come
// back through resiliency mode (some never), a failover gives service back, and the teardown
// signs everybody out.
type world struct {
	steps  []record.Step
	events []record.Event
	end    int64
}

func newWorld(n int, seed uint64) world {
	rng := rand.New(rand.NewPCG(seed, 1))
	var w world
	jitter := func(max int64) int64 { return rng.Int64N(max) }
	reg := func(c int, at int64, code int, mode string) int64 {
		rtt := ms + jitter(40*ms)
		w.events = append(w.events,
			record.Event{T: at, C: c, E: record.Attempt},
			record.Event{T: at + rtt, C: c, E: record.Response, Code: code, RTT: rtt, Lag: jitter(900_000) + 1000})
		if code == 200 {
			w.events = append(w.events, record.Event{T: at + rtt, C: c, E: record.Registered, Mode: mode})
		}
		return at + rtt
	}
	w.steps = append(w.steps,
		record.Step{T: 2000 * ms, Index: 0, Name: "signed in", Action: "wait"},
		record.Step{T: 2500 * ms, Index: 0, Name: "signed in", Action: "wait", Duration: 500 * ms},
		record.Step{T: 3000 * ms, Index: 1, Name: "crash", Action: "crash_pool", Disruptive: true},
		record.Step{T: 3010 * ms, Index: 1, Name: "crash", Action: "crash_pool", Duration: 10 * ms},
		record.Step{T: 9000 * ms, Index: 2, Name: "failover", Action: "failover", Disruptive: true},
		record.Step{T: 9400 * ms, Index: 2, Name: "failover", Action: "failover", Duration: 400 * ms},
		record.Step{T: 15000 * ms, Index: 3, Name: "x", Action: record.Teardown},
	)
	for c := range n {
		t := int64(c) * 10 * ms
		w.events = append(w.events, record.Event{T: t, C: c, E: record.Start})
		t = reg(c, t+ms, 401, "")
		reg(c, t+ms, 200, "regular")
		if c%5 == 0 {
			continue // on the pool that stays up
		}
		lost := 3000*ms + jitter(800*ms)
		w.events = append(w.events, record.Event{T: lost, C: c, E: record.Lost, Reason: "timeout"})
		t = reg(c, lost+500*ms, 503, "")
		if c%7 == 0 {
			continue // never back
		}
		reg(c, t+4000*ms+jitter(1500*ms), 200, "resiliency")
		if c%11 == 0 {
			continue // no service
		}
		reg(c, 9400*ms+jitter(3000*ms), 200, "regular")
	}
	for c := range n {
		w.events = append(w.events, record.Event{T: 15000*ms + int64(c)*ms/10, C: c, E: record.SignedOut})
	}
	w.end = 16000 * ms
	return w
}

// streams writes the world as the streams of shards shards, shard k started k*137 ms after
// base (its times are from its own start). Shards other than 0 mark the steps 20 ms early and
// take no time over them, as a load process that does not drive the emulator does; every shard tears down at teardownAt
// (plus k*skew).
func (w world) streams(t *testing.T, shards int, skew int64) [][]byte {
	t.Helper()
	out := make([][]byte, shards)
	for k := range shards {
		shift := int64(k) * 137 * ms
		var buf bytes.Buffer
		wr, err := record.NewWriter(&buf, record.Header{Start: base.Add(time.Duration(shift)), Scenario: "merge", Clients: 60, Shard: k, Shards: shards, Thresholds: []string{"never_recovered == 0"}})
		if err != nil {
			t.Fatal(err)
		}
		// steps and events interleaved in time order, as a recorder writes them
		si := 0
		putStep := func(s record.Step) {
			if s.Action == record.Teardown {
				s.T += int64(k) * skew
			} else if k > 0 {
				s.T -= 20 * ms // its own clock, and it did not carry the step out
				s.Duration = 0
			}
			s.T -= shift
			if err := wr.Step(s); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range sorted(w.events) {
			for si < len(w.steps) && w.steps[si].T <= e.T {
				putStep(w.steps[si])
				si++
			}
			if e.C%shards != k {
				continue
			}
			e.T -= shift
			if err := wr.Event(e); err != nil {
				t.Fatal(err)
			}
		}
		for ; si < len(w.steps); si++ {
			putStep(w.steps[si])
		}
		if err := wr.Close(record.End{T: w.end - shift, Reason: "scenario completed"}); err != nil {
			t.Fatal(err)
		}
		out[k] = buf.Bytes()
	}
	return out
}

// sorted orders events by time, stably: the order a recorder writes them.
func sorted(evs []record.Event) []record.Event {
	out := slices.Clone(evs)
	slices.SortStableFunc(out, func(a, b record.Event) int { return cmp.Compare(a.T, b.T) })
	return out
}

func merge(t *testing.T, streams ...[]byte) aggregate.Summary {
	t.Helper()
	var srcs []record.Source
	for i, s := range streams {
		srcs = append(srcs, record.Source{Name: string(rune('a' + i)), R: bytes.NewReader(s)})
	}
	a := aggregate.New()
	truncated, err := record.Merge(srcs, a.Handler())
	if err != nil {
		t.Fatal(err)
	}
	return a.Summary(truncated)
}

// Merging the shards' streams gives exactly the summary of the same run recorded by one
// process: histograms, counts, steps and series.
func TestMergeIsExact(t *testing.T) {
	w := newWorld(60, 42)
	one := merge(t, w.streams(t, 1, 0)...)
	for _, shards := range []int{2, 3, 4} {
		ss := w.streams(t, shards, 0)
		// given in any order
		for i, j := 0, len(ss)-1; i < j; i, j = i+1, j-1 {
			ss[i], ss[j] = ss[j], ss[i]
		}
		got := merge(t, ss...)
		if len(got.Shards) != shards || got.Of != shards {
			t.Errorf("%d shards: summary says shards %v of %d", shards, got.Shards, got.Of)
		}
		got.Shards, got.Of = one.Shards, one.Of
		if !reflect.DeepEqual(got, one) {
			t.Errorf("%d shards merged differ from one stream:\n got %+v\nwant %+v", shards, got, one)
		}
	}
	if one.Started != 60 || one.NeverRecovered == 0 || one.Steps[1].Disrupted == 0 || one.Truncated {
		t.Fatalf("the world is not what the test means: %+v", one)
	}
}

// A shard that tears down earlier ends the measurement of its own clients only: their
// sign-outs are not losses, and the others are still measured.
func TestMergeShardTeardownEndsItsClients(t *testing.T) {
	w := newWorld(60, 7)
	one := merge(t, w.streams(t, 1, 0)...)
	got := merge(t, w.streams(t, 2, 300*ms)...)
	if got.Losses != one.Losses || got.NeverRecovered != one.NeverRecovered || got.FinalRegular != one.FinalRegular {
		t.Errorf("losses %d never recovered %d final regular %d, want %d %d %d", got.Losses, got.NeverRecovered, got.FinalRegular, one.Losses, one.NeverRecovered, one.FinalRegular)
	}
}

func TestMergeRefusesOtherRuns(t *testing.T) {
	w := newWorld(10, 1)
	two := w.streams(t, 2, 0)
	three := w.streams(t, 3, 0)
	for name, srcs := range map[string][][]byte{
		"same shard twice":  {two[0], two[0]},
		"other shard count": {two[0], three[1]},
	} {
		var rs []record.Source
		for i, s := range srcs {
			rs = append(rs, record.Source{Name: []string{"x.gz", "y.gz"}[i], R: bytes.NewReader(s)})
		}
		_, err := record.Merge(rs, aggregate.New().Handler())
		if err == nil || !strings.Contains(err.Error(), "x.gz") {
			t.Errorf("%s: err = %v, want one naming the streams", name, err)
		}
	}
	if _, err := record.Merge([]record.Source{{Name: "junk", R: strings.NewReader("not gzip")}}, record.Handler{}); err == nil || !strings.Contains(err.Error(), "junk") {
		t.Errorf("junk: err = %v", err)
	}
}

// A shard's stream cut short by a crash still merges: what it recorded counts, and the
// summary says a stream was truncated.
func TestMergeTruncatedShard(t *testing.T) {
	w := newWorld(60, 3)
	ss := w.streams(t, 2, 0)
	ss[1] = ss[1][:len(ss[1])*2/3]
	got := merge(t, ss...)
	if !got.Truncated || got.Started < 40 {
		t.Errorf("truncated %v started %d, want true and the clients before the cut", got.Truncated, got.Started)
	}
}

// A run was real-time only if every one of its load processes was.
func TestHeaderRealtime(t *testing.T) {
	for _, tc := range []struct {
		name  string
		modes []bool
		want  bool
	}{
		{"one real-time", []bool{true}, true},
		{"one normal", []bool{false}, false},
		{"both real-time", []bool{true, true}, true},
		{"first normal", []bool{false, true}, false},
		{"second normal", []bool{true, false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := aggregate.New()
			for i, rt := range tc.modes {
				a.Header(record.Header{Shard: i, Shards: len(tc.modes), Realtime: rt})
			}
			if got := a.Summary(false).Realtime; got != tc.want {
				t.Errorf("realtime %v, want %v", got, tc.want)
			}
		})
	}
}
