package pairing

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

func kinds(ev []Event) []Kind {
	var out []Kind
	for _, e := range ev {
		out = append(out, e.Kind)
	}
	return out
}

func has(ev []Event, k Kind) bool { return slices.Contains(kinds(ev), k) }

func pair() *Pair {
	return New(Config{Timer: 120 * time.Second, FailbackUsers: 20000, FailbackPer: time.Hour}, t0)
}

func TestResiliencyTimer(t *testing.T) {
	p := pair()
	if ev := p.Observe(t0, true); len(ev) != 0 {
		t.Fatalf("first heartbeat: %v", kinds(ev))
	}
	at := t0.Add(10 * time.Second)
	if ev := p.Observe(at, false); !has(ev, HeartbeatLost) {
		t.Fatalf("missed heartbeat: %v", kinds(ev))
	}
	// The timer counts from the last heartbeat heard.
	if left := p.TimerLeft(at); left != 110*time.Second {
		t.Fatalf("TimerLeft = %s", left)
	}
	if d, ok := p.NextDeadline(); !ok || !d.Equal(t0.Add(120*time.Second)) {
		t.Fatalf("deadline %v %v", d, ok)
	}
	if ev := p.Observe(t0.Add(119*time.Second), false); len(ev) != 0 || p.TimerExpired() {
		t.Fatalf("before the timer: %v", kinds(ev))
	}
	if ev := p.Tick(t0.Add(120 * time.Second)); !has(ev, TimerExpired) || !p.TimerExpired() {
		t.Fatalf("at the timer: %v", kinds(ev))
	}
	if ev := p.Observe(t0.Add(121*time.Second), false); len(ev) != 0 {
		t.Fatalf("expired twice: %v", kinds(ev))
	}
	// Hearing the home pool again resets it.
	if ev := p.Observe(t0.Add(200*time.Second), true); !has(ev, HeartbeatRestored) || p.TimerExpired() {
		t.Fatalf("restored: %v", kinds(ev))
	}
	if _, ok := p.NextDeadline(); ok {
		t.Fatal("a deadline while hearing the home pool")
	}
}

func TestUnobservedRunsNoTimer(t *testing.T) {
	p := pair()
	p.Observe(t0, true)
	p.Observe(t0.Add(5*time.Second), false) // the home pool is lost
	// Then the backup pool goes down too; every heartbeat finds nobody watching.
	for s := 100; s < 300; s += 5 {
		p.Unobserved(t0.Add(time.Duration(s) * time.Second))
	}
	if _, ok := p.NextDeadline(); ok || p.TimerExpired() {
		t.Fatal("a timer runs while nobody watches the home pool")
	}
	// The backup returns and still misses the home pool: the full timer starts now.
	at := t0.Add(300 * time.Second)
	if ev := p.Observe(at, false); !has(ev, HeartbeatLost) || has(ev, TimerExpired) || p.TimerLeft(at) != 120*time.Second {
		t.Fatalf("back: %v, left %s", kinds(ev), p.TimerLeft(at))
	}
}

// Every failback deadline finds its user due, whatever the pace: a pace whose deadlines fall
// between two integer counts must not spin the timer.
func TestFailbackPaceDeadlinesAreDue(t *testing.T) {
	for _, pace := range []struct {
		users int
		per   time.Duration
	}{{20000, time.Hour}, {3, time.Second}, {7, time.Minute}, {1, time.Nanosecond}, {10_000_000, 7 * 24 * time.Hour}, {1000, 3 * time.Millisecond}} {
		p := New(Config{Timer: time.Minute, FailbackUsers: pace.users, FailbackPer: pace.per}, t0)
		p.Restore(FailedOver, t0)
		if _, err := p.FailBack(t0, 0, true); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			at, ok := p.NextDeadline()
			if !ok {
				t.Fatalf("%d/%s: no deadline", pace.users, pace.per)
			}
			p.Tick(at)
			n := p.Due(at)
			if n < 1 {
				t.Fatalf("%d/%s: deadline %d (%s after the start) finds nobody due", pace.users, pace.per, i, at.Sub(t0))
			}
			p.Moved(at, n, 1_000_000)
		}
	}
}

func TestFailbackAbortedWhenHomeFailsAgain(t *testing.T) {
	p := pair()
	p.Restore(FailedOver, t0)
	if _, err := p.FailBack(t0, time.Second, true); err != nil {
		t.Fatal(err)
	}
	if ev := p.AbortFailBack(t0.Add(time.Second)); !has(ev, FailbackAborted) {
		t.Fatalf("abort: %v", kinds(ev))
	}
	if st, _ := p.State(); st != FailedOver {
		t.Fatalf("after the abort: %s", st)
	}
	if ev := p.AbortFailBack(t0.Add(2 * time.Second)); ev != nil {
		t.Fatalf("abort when not failing back: %v", kinds(ev))
	}
	if _, err := p.FailBack(t0.Add(3*time.Second), 0, true); err != nil {
		t.Fatalf("a failback after an abort: %v", err)
	}
}

func TestFailOverRules(t *testing.T) {
	for _, tc := range []struct {
		name             string
		state            State
		opts             FailOverOptions
		homeUp, backupUp bool
		err              error
		after            State
	}{
		{"planned, home up", Active, FailOverOptions{WaitTime: 15 * time.Second}, true, true, nil, FailingOver},
		{"planned, home down", Active, FailOverOptions{}, false, true, ErrDown, Active},
		{"disaster, home down", Active, FailOverOptions{DisasterMode: true}, false, true, nil, FailedOver},
		{"backup down", Active, FailOverOptions{DisasterMode: true}, false, false, ErrDown, Active},
		{"already failed over", FailedOver, FailOverOptions{DisasterMode: true}, false, true, ErrState, FailedOver},
		{"failing back", FailingBack, FailOverOptions{DisasterMode: true}, true, true, ErrState, FailingBack},
		{"what if", Active, FailOverOptions{DisasterMode: true, WhatIf: true}, false, true, nil, Active},
		{"skip verification", Active, FailOverOptions{SkipDataVerification: true, WaitTime: time.Hour}, true, true, nil, FailedOver},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pair()
			p.Restore(tc.state, t0)
			_, err := p.FailOver(t0, tc.opts, tc.homeUp, tc.backupUp)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if s, _ := p.State(); s != tc.after {
				t.Fatalf("state %s, want %s", s, tc.after)
			}
		})
	}
}

func TestPlannedFailoverWaitsForTheSync(t *testing.T) {
	p := pair()
	ev, err := p.FailOver(t0, FailOverOptions{WaitTime: 15 * time.Second}, true, true)
	if err != nil || !has(ev, FailoverStarted) {
		t.Fatal(err, kinds(ev))
	}
	if d, _ := p.NextDeadline(); !d.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("deadline %v", d)
	}
	if ev := p.Tick(t0.Add(14 * time.Second)); len(ev) != 0 {
		t.Fatalf("early: %v", kinds(ev))
	}
	if ev := p.Tick(t0.Add(15 * time.Second)); !has(ev, FailedOverEvent) {
		t.Fatalf("at the wait: %v", kinds(ev))
	}
	if p.Disaster() {
		t.Error("a planned failover says disaster")
	}
}

func TestFailBackPaceAndCompletion(t *testing.T) {
	p := New(Config{Timer: time.Minute, FailbackUsers: 600, FailbackPer: time.Minute}, t0) // 10 users/s
	if _, err := p.FailBack(t0, 15*time.Second, true); !errors.Is(err, ErrState) {
		t.Fatalf("failback of an Active pool: %v", err)
	}
	p.Restore(FailedOver, t0)
	if _, err := p.FailBack(t0, 15*time.Second, false); !errors.Is(err, ErrDown) {
		t.Fatalf("failback with the home pool down: %v", err)
	}
	ev, err := p.FailBack(t0, 15*time.Second, true)
	if err != nil || !has(ev, FailbackStarted) {
		t.Fatal(err, kinds(ev))
	}
	if p.Due(t0.Add(10*time.Second)) != 0 {
		t.Fatal("users moved during the sync")
	}
	if _, err := p.FailOver(t0, FailOverOptions{DisasterMode: true}, true, true); !errors.Is(err, ErrState) {
		t.Fatalf("failover during a failback: %v", err)
	}
	start := t0.Add(15 * time.Second)
	if ev := p.Tick(start); !has(ev, FailbackMoving) {
		t.Fatalf("after the sync: %v", kinds(ev))
	}
	if d, _ := p.NextDeadline(); !d.Equal(start.Add(100 * time.Millisecond)) {
		t.Fatalf("next move at %v", d)
	}
	if n := p.Due(start.Add(2 * time.Second)); n != 20 {
		t.Fatalf("due after 2 s: %d, want 20", n)
	}
	ev = p.Moved(start.Add(2*time.Second), 20, 80)
	if !has(ev, FailbackProgress) || p.Progress().Percent != 20 {
		t.Fatalf("progress %+v %v", p.Progress(), kinds(ev))
	}
	if n := p.Due(start.Add(2 * time.Second)); n != 0 {
		t.Fatalf("due again: %d", n)
	}
	ev = p.Moved(start.Add(10*time.Second), 80, 0)
	if !has(ev, FailedBack) {
		t.Fatalf("completion: %v", kinds(ev))
	}
	if s, _ := p.State(); s != Active {
		t.Fatalf("state %s after the failback", s)
	}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Situation
		want Decision
	}{
		{"active, home serving", Situation{State: Active, HomeServing: true, HasBackup: true, BackupServing: true}, Decision{Where: Home}},
		{"active, home survivable", Situation{State: Active, HomeServing: true, HomeSurvivable: true}, Decision{Where: Home, Resiliency: true}},
		{"active, home down, timer running", Situation{State: Active, HasBackup: true, BackupServing: true, TimerLeft: 42 * time.Second}, Decision{Where: Wait, RetryAfter: 42 * time.Second}},
		{"active, home down, timer nearly out", Situation{State: Active, HasBackup: true, BackupServing: true}, Decision{Where: Wait, RetryAfter: time.Second}},
		{"active, home down, timer expired", Situation{State: Active, HasBackup: true, BackupServing: true, TimerExpired: true}, Decision{Where: Backup, Resiliency: true}},
		{"active, home down, no backup", Situation{State: Active}, Decision{Where: Nowhere}},
		{"active, both down", Situation{State: Active, HasBackup: true, TimerExpired: true}, Decision{Where: Nowhere}},
		{"failing over", Situation{State: FailingOver, HomeServing: true, HasBackup: true, BackupServing: true}, Decision{Where: Backup, Resiliency: true}},
		{"failed over", Situation{State: FailedOver, HomeServing: true, HasBackup: true, BackupServing: true}, Decision{Where: Backup}},
		{"failed over, backup survivable", Situation{State: FailedOver, HasBackup: true, BackupServing: true, BackupSurvivable: true}, Decision{Where: Backup, Resiliency: true}},
		{"failed over, backup down", Situation{State: FailedOver, HomeServing: true, HasBackup: true}, Decision{Where: Nowhere}},
		{"failing back", Situation{State: FailingBack, HomeServing: true, HasBackup: true, BackupServing: true}, Decision{Where: Home, Resiliency: true}},
		{"failing back, not moved yet", Situation{State: FailingBack, HomeServing: true, HasBackup: true, BackupServing: true, RegisteredAtBackup: true}, Decision{Where: Backup, Resiliency: true}},
		{"failing back, home down again", Situation{State: FailingBack, HasBackup: true, BackupServing: true}, Decision{Where: Backup, Resiliency: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.s); got != tc.want {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPlanAndParse(t *testing.T) {
	if s := (FailOverOptions{WaitTime: 15 * time.Second, FlushStorageService: true}).Plan("pool-a", "pool-b"); s == "" {
		t.Fatal("empty plan")
	}
	for _, st := range []State{Active, FailingOver, FailedOver, FailingBack} {
		if got, err := ParseState(st.String()); err != nil || got != st {
			t.Fatalf("ParseState(%s) = %v %v", st, got, err)
		}
	}
	if _, err := ParseState("Sideways"); err == nil {
		t.Fatal("ParseState accepted Sideways")
	}
}

func TestFailoverAbortedWhenBackupStops(t *testing.T) {
	p := pair()
	if _, err := p.FailOver(t0, FailOverOptions{WaitTime: 15 * time.Second}, true, true); err != nil {
		t.Fatal(err)
	}
	if ev := p.AbortFailOver(t0.Add(time.Second)); !has(ev, FailoverAborted) {
		t.Fatalf("abort: %v", kinds(ev))
	}
	if st, _ := p.State(); st != Active {
		t.Fatalf("after the abort: %s", st)
	}
	if ev := p.Tick(t0.Add(time.Minute)); has(ev, FailedOverEvent) {
		t.Fatalf("the aborted failover completed: %v", kinds(ev))
	}
	if _, ok := p.NextDeadline(); ok {
		t.Fatal("a deadline is left after the abort")
	}
	// A completed failover is not undone: failing back is the way home.
	p.Restore(FailedOver, t0)
	if ev := p.AbortFailOver(t0.Add(2 * time.Minute)); ev != nil {
		t.Fatalf("abort of a completed failover: %v", kinds(ev))
	}
	if st, _ := p.State(); st != FailedOver {
		t.Fatalf("a completed failover was undone: %s", st)
	}
}

// TestAllow is Allow's table for every state of both directions of a pairing: the pool's own
// users (Own) and its partner's users (Partner), whom this pool backs up.
func TestAllow(t *testing.T) {
	states := []State{Active, FailingOver, FailedOver, FailingBack}
	seen := map[[3]int]bool{}
	for _, tc := range []struct {
		op             Op
		own, partner   State
		want           error
		instead        string // what the refusal tells the operator to do
		withoutPartner error  // the same, when the partner does not name this pool as backup
	}{
		{OpFailOver, Active, Active, nil, "", nil},
		{OpFailOver, Active, FailingOver, ErrPartner, "Invoke-CsPoolFailBack -PoolFqdn pool-b", nil},
		{OpFailOver, Active, FailedOver, ErrPartner, "Invoke-CsPoolFailBack -PoolFqdn pool-b", nil},
		{OpFailOver, Active, FailingBack, ErrPartner, "wait for that failback to complete", nil},
		{OpFailOver, FailingOver, Active, ErrState, "wait for it to complete", ErrState},
		{OpFailOver, FailingOver, FailingOver, ErrState, "wait for it to complete", ErrState},
		{OpFailOver, FailingOver, FailedOver, ErrState, "wait for it to complete", ErrState},
		{OpFailOver, FailingOver, FailingBack, ErrState, "wait for it to complete", ErrState},
		{OpFailOver, FailedOver, Active, ErrState, "Invoke-CsPoolFailBack -PoolFqdn pool-a", ErrState},
		{OpFailOver, FailedOver, FailingOver, ErrState, "Invoke-CsPoolFailBack -PoolFqdn pool-a", ErrState},
		{OpFailOver, FailedOver, FailedOver, ErrState, "Invoke-CsPoolFailBack -PoolFqdn pool-a", ErrState},
		{OpFailOver, FailedOver, FailingBack, ErrState, "Invoke-CsPoolFailBack -PoolFqdn pool-a", ErrState},
		{OpFailOver, FailingBack, Active, ErrState, "wait for the failback to complete", ErrState},
		{OpFailOver, FailingBack, FailingOver, ErrState, "wait for the failback to complete", ErrState},
		{OpFailOver, FailingBack, FailedOver, ErrState, "wait for the failback to complete", ErrState},
		{OpFailOver, FailingBack, FailingBack, ErrState, "wait for the failback to complete", ErrState},
		// Failing back is how a pair in any state unwinds: the partner's users never stop it.
		{OpFailBack, FailedOver, Active, nil, "", nil},
		{OpFailBack, FailedOver, FailingOver, nil, "", nil},
		{OpFailBack, FailedOver, FailedOver, nil, "", nil},
		{OpFailBack, FailedOver, FailingBack, nil, "", nil},
		{OpFailBack, Active, Active, ErrState, "nothing to fail back", ErrState},
		{OpFailBack, Active, FailingOver, ErrState, "nothing to fail back", ErrState},
		{OpFailBack, Active, FailedOver, ErrState, "nothing to fail back", ErrState},
		{OpFailBack, Active, FailingBack, ErrState, "nothing to fail back", ErrState},
		{OpFailBack, FailingOver, Active, ErrState, "wait for the failover to complete", ErrState},
		{OpFailBack, FailingOver, FailingOver, ErrState, "wait for the failover to complete", ErrState},
		{OpFailBack, FailingOver, FailedOver, ErrState, "wait for the failover to complete", ErrState},
		{OpFailBack, FailingOver, FailingBack, ErrState, "wait for the failover to complete", ErrState},
		{OpFailBack, FailingBack, Active, ErrState, "wait for the failback to complete", ErrState},
		{OpFailBack, FailingBack, FailingOver, ErrState, "wait for the failback to complete", ErrState},
		{OpFailBack, FailingBack, FailedOver, ErrState, "wait for the failback to complete", ErrState},
		{OpFailBack, FailingBack, FailingBack, ErrState, "wait for the failback to complete", ErrState},
	} {
		seen[[3]int{int(tc.op), int(tc.own), int(tc.partner)}] = true
		s := Sides{Pool: "pool-a", Partner: "pool-b", Own: tc.own, Paired: true, PartnerUsers: tc.partner}
		err := Allow(tc.op, s)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s with own %s, partner's %s: %v, want %v", tc.op, tc.own, tc.partner, err, tc.want)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tc.instead) {
			t.Errorf("%s with own %s, partner's %s: %q does not say %q", tc.op, tc.own, tc.partner, err, tc.instead)
		}
		s.Paired = false
		if err := Allow(tc.op, s); !errors.Is(err, tc.withoutPartner) || (tc.withoutPartner == nil) != (err == nil) {
			t.Errorf("%s with own %s, one-way pairing: %v, want %v", tc.op, tc.own, err, tc.withoutPartner)
		}
	}
	if len(seen) != 2*len(states)*len(states) {
		t.Errorf("the table covers %d of the %d states of a failover and a failback", len(seen), 2*len(states)*len(states))
	}
}
