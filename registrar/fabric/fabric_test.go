package fabric

import (
	"fmt"
	"math/bits"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// The tables of ../../../shared/DESIGN.md §2, written as data.
var quorumTable = []struct {
	totals      []int
	need, among int // among 0 = any
}{
	{[]int{1}, 1, 0},
	{[]int{3, 4}, 2, 0},
	{[]int{5, 6}, 3, 0},
	{[]int{7}, 4, 0},
	{[]int{8, 9}, 4, 7},
	{[]int{10, 11, 12}, 5, 9},
	{[]int{13, 14, 15, 16}, 7, 12},
}

var coldStartTable = map[int]int{1: 1, 2: 1, 3: 3, 4: 3, 5: 4, 6: 5, 7: 5, 8: 6, 9: 7, 10: 8, 11: 9, 12: 10, 16: 12}

// TestPoolQuorumEverySubset checks HasPoolQuorum against the table for every set of running
// Front Ends of every pool size, so "any N of the first M" is checked exhaustively.
func TestPoolQuorumEverySubset(t *testing.T) {
	for _, row := range quorumTable {
		for _, total := range row.totals {
			among := row.among
			if among == 0 {
				among = total
			}
			firstMask := uint32(1)<<among - 1
			for set := uint32(0); set < 1<<total; set++ {
				running := make([]bool, total)
				for i := range running {
					running[i] = set&(1<<i) != 0
				}
				want := bits.OnesCount32(set&firstMask) >= row.need
				for _, backEnd := range []bool{true, false} {
					if got := HasPoolQuorum(running, backEnd); got != want {
						t.Fatalf("total %d running %0*b backEnd %v: quorum %v, want %v (need %d of first %d)", total, total, set, backEnd, got, want, row.need, among)
					}
				}
			}
		}
	}
}

func TestTwoServerPoolUsesBackEndAsWitness(t *testing.T) {
	for _, tc := range []struct {
		running []bool
		backEnd bool
		want    bool
	}{
		{[]bool{true, true}, true, true},
		{[]bool{true, false}, true, true},
		{[]bool{false, true}, true, true},
		{[]bool{false, false}, true, false},
		{[]bool{true, true}, false, true},
		{[]bool{true, false}, false, false},
		{[]bool{false, true}, false, false},
	} {
		if got := HasPoolQuorum(tc.running, tc.backEnd); got != tc.want {
			t.Errorf("running %v backEnd %v = %v, want %v", tc.running, tc.backEnd, got, tc.want)
		}
	}
}

func TestColdStartTable(t *testing.T) {
	for total := 1; total <= 16; total++ {
		need, published := coldStartTable[total]
		if !published {
			need = ColdStartNeed(total) // 13-15: our choice, checked for monotony below
		} else if got := ColdStartNeed(total); got != need {
			t.Fatalf("ColdStartNeed(%d) = %d, want %d", total, got, need)
		}
		if total > 1 && ColdStartNeed(total) < ColdStartNeed(total-1) {
			t.Errorf("ColdStartNeed not monotonic at %d", total)
		}
		// Bring Front Ends up one at a time: the pool starts exactly at the need-th.
		p := New(Config{FrontEnds: total, RoutingGroups: 16})
		for fe := 0; fe < total; fe++ {
			ev, err := p.Start(t0, fe)
			if err != nil {
				t.Fatal(err)
			}
			up := fe + 1
			switch {
			case up < need:
				if p.State() != Starting || p.Snapshot().State != Starting {
					t.Fatalf("total %d with %d up: state %s, want Starting", total, up, p.State())
				}
				if !hasEvent(ev, 32174) {
					t.Errorf("total %d with %d up: no 32174 startup-delayed event in %v", total, up, ev)
				}
				if _, ok := p.Snapshot().Primary(0); ok {
					t.Fatalf("a Starting pool routes users")
				}
			case up == need:
				if p.State() != Started || !hasKind(ev, PoolStarted) {
					t.Fatalf("total %d with %d up: state %s events %v, want Started", total, up, p.State(), ev)
				}
			}
		}
		checkPlacement(t, p, fmt.Sprintf("cold start of %d", total))
	}
}

func TestPlacementIsBalancedAndDeterministic(t *testing.T) {
	for n := 1; n <= 16; n++ {
		for _, rgs := range []int{1, 5, 64, 100} {
			a, b := started(t, n, rgs), started(t, n, rgs)
			if !slices.EqualFunc(a.replicas, b.replicas, slices.Equal) {
				t.Fatalf("%d FEs %d RGs: placement differs between two runs", n, rgs)
			}
			checkPlacement(t, a, fmt.Sprintf("%d FEs %d RGs", n, rgs))
			prim, load := counts(a)
			fair := (rgs + n - 1) / n
			for fe := 0; fe < n; fe++ {
				if prim[fe] > fair {
					t.Errorf("%d FEs %d RGs: FE %d holds %d primaries, fair share %d", n, rgs, fe, prim[fe], fair)
				}
			}
			if lo, hi := slices.Min(load), slices.Max(load); hi-lo > 3 {
				t.Errorf("%d FEs %d RGs: replicas per FE range %d..%d: %v", n, rgs, lo, hi, load)
			}
		}
	}
}

func TestFailurePromotesPrimaryBackupAndReplaces(t *testing.T) {
	for n := 2; n <= 16; n++ {
		for failed := 0; failed < n; failed++ {
			p := started(t, n, 64)
			before := p.Snapshot()
			ev, err := p.Stop(t0, failed)
			if err != nil {
				t.Fatal(err)
			}
			if !hasEvent(ev, 32108) {
				t.Fatalf("no 32108 event for the failed FE: %v", ev)
			}
			quorum := HasPoolQuorum(p.running, true)
			if !quorum {
				if p.State() != QuorumLost {
					t.Fatalf("%d FEs, FE %d down: state %s without quorum", n, failed, p.State())
				}
				continue
			}
			checkPlacement(t, p, fmt.Sprintf("%d FEs after FE %d failed", n, failed))
			promoted := map[int]int{}
			for rg, old := range before.Replicas {
				now := p.replicas[rg]
				if slices.Contains(now, failed) {
					t.Fatalf("RG %d still on the failed FE", rg)
				}
				if old[0] == failed {
					if now[0] != old[1] {
						t.Fatalf("%d FEs: RG %d primary %d failed; new primary %d, want the primary backup %d", n, rg, failed, now[0], old[1])
					}
					if len(old) > 2 && now[1] != old[2] {
						t.Fatalf("RG %d: secondary backup %d did not become primary backup (got %v)", rg, old[2], now)
					}
					promoted[now[0]]++
					if !hasRGEvent(ev, 32167, rg) {
						t.Errorf("no 32167 event for RG %d", rg)
					}
				} else if now[0] != old[0] {
					t.Fatalf("RG %d moved its primary %d -> %d though it did not fail", rg, old[0], now[0])
				}
			}
			// The failed FE's RGs land on several Front Ends, not all on one.
			total := 0
			for _, c := range promoted {
				total += c
			}
			fair := (total + n - 2) / (n - 1)
			for fe, c := range promoted {
				if c > fair+1 {
					t.Errorf("%d FEs, FE %d failed: FE %d took %d of its %d RGs (fair %d): %v", n, failed, fe, c, total, fair, promoted)
				}
			}
		}
	}
}

func TestCrashIsDetectedAfterTheLease(t *testing.T) {
	p := New(Config{FrontEnds: 3, RoutingGroups: 8, FailureDetection: 2 * time.Second, QuorumLossShutdown: 5 * time.Minute})
	startAll(t, p)
	rg := rgWithPrimary(p, 1)
	if ev, _ := p.Crash(t0, 1); len(ev) != 0 {
		t.Fatalf("crash produced events before detection: %v", ev)
	}
	if fe, _ := p.Snapshot().Primary(rg); fe != 1 {
		t.Fatalf("before detection the RG still points at the crashed FE, got %d", fe)
	}
	if d, ok := p.NextDeadline(); !ok || !d.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("deadline = %v %v", d, ok)
	}
	if ev := p.Tick(t0.Add(time.Second)); len(ev) != 0 {
		t.Fatalf("early tick: %v", ev)
	}
	ev := p.Tick(t0.Add(2 * time.Second))
	if !hasEvent(ev, 32108) || !hasEvent(ev, 32167) || !hasEvent(ev, 51037) || !hasEvent(ev, 51035) || !hasEvent(ev, 32033) {
		t.Fatalf("detection events = %v", ev)
	}
	if fe, ok := p.Snapshot().Primary(rg); !ok || fe == 1 {
		t.Fatalf("after detection primary = %d %v", fe, ok)
	}
	if _, ok := p.NextDeadline(); ok {
		t.Fatal("deadline left after detection")
	}
	// Restart: it rejoins as a secondary; no primary moves back by itself.
	prim := p.Snapshot()
	if _, err := p.Start(t0.Add(time.Minute), 1); err != nil {
		t.Fatal(err)
	}
	for rg := range p.replicas {
		if p.replicas[rg][0] != prim.Replicas[rg][0] || !slices.Contains(p.replicas[rg], 1) {
			t.Fatalf("after rejoin RG %d = %v (was %v)", rg, p.replicas[rg], prim.Replicas[rg])
		}
	}
}

func TestRoutingGroupQuorumLoss(t *testing.T) {
	p := started(t, 12, 64)
	rg := 0
	victims := p.Replicas(rg)
	// One at a time, an RG never loses its data: each failure re-places a secondary.
	for _, fe := range victims {
		p.Stop(t0, fe)
	}
	if _, ok := p.Snapshot().Primary(rg); !ok {
		t.Fatal("sequential failures lost the RG")
	}
	// All replicas crashing together (detected together) lose it.
	p = started(t, 12, 64)
	ev, _ := p.Crash(t0, victims...)
	if p.State() != Started {
		t.Fatalf("9 of 12 running should keep pool quorum, state %s", p.State())
	}
	if _, ok := p.Snapshot().Primary(rg); ok {
		t.Fatal("an RG with no running replica still routes")
	}
	if !hasKind(ev, RoutingGroupLost) {
		t.Fatalf("no RoutingGroupLost event: %v", ev)
	}
	if got := p.Snapshot().MissingReplicas(1); got == 0 {
		t.Fatal("MissingReplicas(1) = 0 with a lost RG")
	}
	// A replica returning brings the RG back with it as primary.
	ev, _ = p.Start(t0, victims[2])
	if fe, ok := p.Snapshot().Primary(rg); !ok || fe != victims[2] {
		t.Fatalf("after the replica returned primary = %d %v, want %d", fe, ok, victims[2])
	}
	if !hasKind(ev, RoutingGroupRestored) {
		t.Fatalf("no RoutingGroupRestored: %v", ev)
	}
	checkPlacement(t, p, "after restore")

	// Or QuorumLossRecovery re-places lost RGs, empty.
	p = started(t, 12, 64)
	p.Stop(t0, p.Replicas(rg)...)
	res, err := p.Reset(QuorumLossRecovery, -1, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Emptied, rg) {
		t.Fatalf("Emptied = %v, want RG %d", res.Emptied, rg)
	}
	if _, ok := p.Snapshot().Primary(rg); !ok {
		t.Fatal("QuorumLossRecovery did not place the lost RG")
	}
	checkPlacement(t, p, "after QuorumLossRecovery")
}

func TestPoolQuorumLossShutsDownAfterDelay(t *testing.T) {
	p := New(Config{FrontEnds: 3, RoutingGroups: 8, QuorumLossShutdown: 5 * time.Minute})
	startAll(t, p)
	p.Stop(t0, 0)
	ev, _ := p.Stop(t0, 1)
	for _, id := range []int{32163, 32189, 32173} {
		if !hasEvent(ev, id) {
			t.Errorf("quorum loss events lack %d: %v", id, ev)
		}
	}
	if p.State() != QuorumLost || p.Snapshot().State != QuorumLost {
		t.Fatalf("state %s", p.State())
	}
	if _, ok := p.Snapshot().Primary(0); ok {
		t.Fatal("a pool without quorum routes users")
	}
	if d, ok := p.NextDeadline(); !ok || !d.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("shutdown deadline = %v", d)
	}
	if ev := p.Tick(t0.Add(5*time.Minute - time.Nanosecond)); len(ev) != 0 {
		t.Fatalf("early shutdown: %v", ev)
	}
	ev = p.Tick(t0.Add(5 * time.Minute))
	if !hasKind(ev, ServicesStopped) || p.State() != Stopped || p.Running(2) {
		t.Fatalf("after the delay: state %s events %v", p.State(), ev)
	}
	// Cold start again: 3 needed of 3; QuorumLossRecovery needs pool quorum (2).
	ev, _ = p.Start(t0.Add(6*time.Minute), 2)
	if p.State() != Starting || !hasEvent(ev, 32170) || !hasEvent(ev, 32174) {
		t.Fatalf("restart one: state %s events %v", p.State(), ev)
	}
	if _, err := p.Reset(QuorumLossRecovery, -1, t0); err == nil {
		t.Fatal("QuorumLossRecovery with 1 of 3 running succeeded")
	}
	p.Start(t0, 0)
	if p.State() != Starting {
		t.Fatalf("2 of 3 must not cold-start, state %s", p.State())
	}
	if _, err := p.Reset(QuorumLossRecovery, -1, t0); err != nil {
		t.Fatal(err)
	}
	if p.State() != Started {
		t.Fatalf("after QuorumLossRecovery state %s", p.State())
	}
	checkPlacement(t, p, "recovered")
}

func TestQuorumRegainedBeforeShutdown(t *testing.T) {
	p := New(Config{FrontEnds: 3, RoutingGroups: 8, QuorumLossShutdown: 5 * time.Minute})
	startAll(t, p)
	p.Stop(t0, 0)
	p.Stop(t0, 1)
	ev, _ := p.Start(t0.Add(time.Minute), 1)
	if p.State() != Started || !hasKind(ev, QuorumRegained) {
		t.Fatalf("state %s events %v", p.State(), ev)
	}
	if _, ok := p.NextDeadline(); ok {
		t.Fatal("shutdown still scheduled")
	}
	if ev := p.Tick(t0.Add(10 * time.Minute)); len(ev) != 0 {
		t.Fatalf("tick after regain: %v", ev)
	}
	checkPlacement(t, p, "regained")
}

func TestAllDownThenColdStartKeepsPlacement(t *testing.T) {
	p := started(t, 3, 16)
	before := p.Snapshot()
	p.Crash(t0, 2)
	p.Crash(t0, 1)
	p.Crash(t0, 0)
	if p.State() != Stopped {
		t.Fatalf("all crashed: state %s", p.State())
	}
	startAll(t, p)
	// Crash order 0,1,2 leaves each RG remembered on its last replica: every RG comes back.
	checkPlacement(t, p, "restarted")
	if p.State() != Started || len(before.Replicas) != len(p.replicas) {
		t.Fatalf("state %s", p.State())
	}
}

func TestTwoServerPoolLosesQuorumWithBackEnd(t *testing.T) {
	p := started(t, 2, 8)
	p.Stop(t0, 1)
	if p.State() != Started {
		t.Fatalf("1 of 2 with the Back End up: %s", p.State())
	}
	ev := p.SetBackEnd(false, t0)
	if p.State() != QuorumLost || !hasEvent(ev, 32163) {
		t.Fatalf("Back End down with 1 of 2: state %s events %v", p.State(), ev)
	}
	ev = p.SetBackEnd(true, t0)
	if p.State() != Started || !hasKind(ev, QuorumRegained) {
		t.Fatalf("Back End back: state %s", p.State())
	}
}

func TestResets(t *testing.T) {
	p := started(t, 6, 64)
	p.Stop(t0, 0)
	p.Start(t0, 0) // rejoins with no primaries
	if prim, _ := counts(p); prim[0] != 0 {
		t.Fatalf("a rejoined FE took primaries: %v", prim)
	}
	res, err := p.Reset(ServiceReset, -1, t0)
	if err != nil || res.DropAll || len(res.Moved) == 0 {
		t.Fatalf("ServiceReset = %+v, %v", res, err)
	}
	checkPlacement(t, p, "after ServiceReset")
	if prim, _ := counts(p); prim[0] == 0 {
		t.Fatalf("ServiceReset did not rebalance primaries: %v", prim)
	}
	for rg, old := range res.Moved {
		if slices.Equal(old, p.replicas[rg]) {
			t.Fatalf("RG %d reported moved but unchanged", rg)
		}
	}
	res, _ = p.Reset(FullReset, -1, t0)
	if !res.DropAll {
		t.Fatal("FullReset does not drop registrations")
	}
	if _, err := p.Reset(MachineStateRemoved, 2, t0); err == nil {
		t.Fatal("MachineStateRemoved of a running FE succeeded")
	}
	p.Stop(t0, 2)
	if _, err := p.Reset(MachineStateRemoved, 2, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reset(MachineStateRemoved, 9, t0); err == nil {
		t.Fatal("MachineStateRemoved of a bad index succeeded")
	}
	if _, err := ParseResetType("quorumlossrecovery"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseResetType("Reboot"); err == nil {
		t.Fatal("ParseResetType accepted Reboot")
	}
	// On a stopped pool ServiceReset forgets the placement.
	q := started(t, 3, 8)
	q.Stop(t0, 0, 1, 2)
	if _, err := q.Reset(ServiceReset, -1, t0); err != nil || q.placed {
		t.Fatalf("ServiceReset on a stopped pool: %v placed=%v", err, q.placed)
	}
}

func TestBadFrontEndIndex(t *testing.T) {
	p := New(Config{FrontEnds: 3, RoutingGroups: 4})
	for _, f := range []func(time.Time, ...int) ([]Event, error){p.Start, p.Stop, p.Crash} {
		if _, err := f(t0, 0, 3); err == nil {
			t.Fatal("index 3 of 3 accepted")
		}
		if _, err := f(t0, -1); err == nil {
			t.Fatal("index -1 accepted")
		}
	}
	if p.RunningCount() != 0 {
		t.Fatal("a rejected batch changed state")
	}
}

func TestCrashedUndetectedTakesNoNewReplica(t *testing.T) {
	p := New(Config{FrontEnds: 4, RoutingGroups: 32, FailureDetection: 2 * time.Second})
	startAll(t, p)
	p.Crash(t0, 3) // not yet detected
	p.Stop(t0, 0)  // graceful: re-placement now
	for rg, list := range p.replicas {
		if slices.Contains(list[1:], 3) && !slices.Contains(p.Snapshot().Replicas[rg], 3) {
			t.Fatal("inconsistent snapshot")
		}
	}
	before := p.Snapshot()
	p.Tick(t0.Add(2 * time.Second))
	for rg, old := range before.Replicas {
		if !slices.Contains(old, 3) && slices.Contains(p.replicas[rg], 3) {
			t.Fatalf("RG %d got a new replica on the crashed FE", rg)
		}
	}
	checkPlacement(t, p, "after detection")
}

func TestRoutingGroupOfIsStableAndSpread(t *testing.T) {
	// Golden values: changing the hash re-homes every user's routing group.
	for aor, want := range map[string]int{"user00000@contoso.com": 58, "user00042@contoso.com": 60, "user19999@contoso.com": 61} {
		if got := RoutingGroupOf(aor, 64); got != want {
			t.Errorf("RoutingGroupOf(%s) = %d, want %d", aor, got, want)
		}
	}
	hist := make([]int, 64)
	for i := 0; i < 20000; i++ {
		hist[RoutingGroupOf(fmt.Sprintf("user%05d@contoso.com", i), 64)]++
	}
	mean := 20000 / 64
	for rg, c := range hist {
		if c < mean*6/10 || c > mean*14/10 {
			t.Errorf("RG %d holds %d users, mean %d", rg, c, mean)
		}
	}
	if RoutingGroupOf("x", 1) != 0 || RoutingGroupOf("x", 0) != 0 {
		t.Error("a single RG must be 0")
	}
}

// checkPlacement asserts the invariants of a serving pool: every RG not lost has min(3, running)
// distinct running replicas.
func checkPlacement(t *testing.T, p *Pool, what string) {
	t.Helper()
	k := min(MaxReplicas, p.RunningCount())
	for rg, list := range p.replicas {
		if len(list) == 0 && len(p.lost[rg]) > 0 {
			continue
		}
		if len(list) != k {
			t.Fatalf("%s: RG %d has %d replicas %v, want %d", what, rg, len(list), list, k)
		}
		seen := map[int]bool{}
		for _, fe := range list {
			if !p.running[fe] || seen[fe] {
				t.Fatalf("%s: RG %d replicas %v: FE %d not running or repeated", what, rg, list, fe)
			}
			seen[fe] = true
		}
	}
}

func started(t *testing.T, n, rgs int) *Pool {
	t.Helper()
	p := New(Config{FrontEnds: n, RoutingGroups: rgs, QuorumLossShutdown: 5 * time.Minute})
	startAll(t, p)
	return p
}

func startAll(t *testing.T, p *Pool) {
	t.Helper()
	all := make([]int, len(p.running))
	for fe := range all {
		all[fe] = fe
	}
	if _, err := p.Start(t0, all...); err != nil {
		t.Fatal(err)
	}
	if p.State() != Started {
		t.Fatalf("all FEs up, state %s", p.State())
	}
}

func counts(p *Pool) (primaries, load []int) {
	primaries, load = make([]int, len(p.running)), make([]int, len(p.running))
	for _, list := range p.replicas {
		for i, fe := range list {
			load[fe]++
			if i == 0 {
				primaries[fe]++
			}
		}
	}
	return primaries, load
}

func rgWithPrimary(p *Pool, fe int) int {
	for rg, list := range p.replicas {
		if list[0] == fe {
			return rg
		}
	}
	return -1
}

func hasEvent(ev []Event, id int) bool {
	return slices.ContainsFunc(ev, func(e Event) bool { return e.ID == id })
}

func hasRGEvent(ev []Event, id, rg int) bool {
	return slices.ContainsFunc(ev, func(e Event) bool { return e.ID == id && e.RG == rg })
}

func hasKind(ev []Event, k Kind) bool {
	return slices.ContainsFunc(ev, func(e Event) bool { return e.Kind == k })
}

// TestRestartBeforeDetectionRejoins: a Front End that crashed and started again before the
// fabric detected the crash is a new process with an empty memory. It must end exactly where a
// Front End that restarts after a longer outage ends: its routing groups promoted away, itself
// back as a secondary, one 32108 event saying why, and no detection left to fire later (which
// used to take it out of the fabric while its listeners ran: Starting with 0 routing groups).
func TestRestartBeforeDetectionRejoins(t *testing.T) {
	const detect = 2 * time.Second
	fresh := func(n int) *Pool {
		p := New(Config{FrontEnds: n, RoutingGroups: 32, FailureDetection: detect, QuorumLossShutdown: 5 * time.Minute})
		startAll(t, p)
		return p
	}
	for _, tc := range []struct {
		name string
		n    int
		fes  []int // crashed together, then started together
	}{
		{"standard edition", 1, []int{0}},
		{"2 FEs, first", 2, []int{0}},
		{"2 FEs, both", 2, []int{0, 1}},
		{"3 FEs, one", 3, []int{1}},
		{"3 FEs, all", 3, []int{0, 1, 2}},
		{"4 FEs, last", 4, []int{3}},
		{"6 FEs, two", 6, []int{0, 4}},
		{"12 FEs, first", 12, []int{0}},
		{"16 FEs, one", 16, []int{9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			short, long := fresh(tc.n), fresh(tc.n)
			before := short.Snapshot()
			restart := t0.Add(detect / 2)
			short.Crash(t0, tc.fes...)
			ev, err := short.Start(restart, tc.fes...)
			if err != nil {
				t.Fatal(err)
			}
			long.Crash(t0, tc.fes...)
			long.Tick(t0.Add(detect))
			long.Start(t0.Add(detect), tc.fes...)

			if short.State() != Started || long.State() != Started {
				t.Fatalf("state %s, after a longer outage %s", short.State(), long.State())
			}
			for _, fe := range tc.fes {
				if !short.Running(fe) {
					t.Fatalf("FE %d restarted but the fabric does not count it as running", fe)
				}
				if !slices.ContainsFunc(ev, func(e Event) bool { return e.ID == 32108 && e.FE == fe }) {
					t.Errorf("no 32108 event for the restarted FE %d: %v", fe, ev)
				}
			}
			if !slices.EqualFunc(short.replicas, long.replicas, slices.Equal) {
				t.Fatalf("placement after a restart within the detection interval\n%v\nafter a longer outage\n%v", short.replicas, long.replicas)
			}
			checkPlacement(t, short, "restarted")
			// With another Front End running, the restarted one takes no primary (its memory
			// is empty); where the others were too few to hold three replicas of every routing
			// group, it takes secondaries.
			if others := tc.n - len(tc.fes); others > 0 {
				prim, load := counts(short)
				for _, fe := range tc.fes {
					if prim[fe] != 0 || others < MaxReplicas && load[fe] == 0 {
						t.Fatalf("restarted FE %d holds %d primaries and %d replicas (before: %v)", fe, prim[fe], load[fe], before.Replicas)
					}
				}
			}
			// Nothing is left to detect: a later tick changes nothing.
			if d, ok := short.NextDeadline(); ok {
				t.Fatalf("a deadline is left at %v", d)
			}
			if ev := short.Tick(t0.Add(10 * detect)); len(ev) != 0 {
				t.Fatalf("a later tick: %v", ev)
			}
			for _, fe := range tc.fes {
				if !short.Running(fe) {
					t.Fatalf("FE %d was taken out of the fabric after it restarted", fe)
				}
			}
		})
	}
}

// TestRestartBeforeDetectionKeepsQuorum: the restarted Front End never left, as far as
// pool-level quorum goes: a pool at its quorum does not lose it (and close every routing group's
// connections) because one of its Front Ends restarted.
func TestRestartBeforeDetectionKeepsQuorum(t *testing.T) {
	p := New(Config{FrontEnds: 3, RoutingGroups: 8, FailureDetection: 2 * time.Second, QuorumLossShutdown: 5 * time.Minute})
	startAll(t, p)
	p.Stop(t0, 2) // 2 of 3 run: exactly pool-level quorum
	p.Crash(t0, 0)
	ev, _ := p.Start(t0.Add(time.Second), 0)
	if p.State() != Started || hasKind(ev, QuorumLoss) || hasKind(ev, RoutingGroupsClosed) || hasKind(ev, QuorumRegained) {
		t.Fatalf("state %s events %v", p.State(), ev)
	}
	checkPlacement(t, p, "restarted at quorum")
}
