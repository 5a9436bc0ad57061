package registrar_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"

	"github.com/fepool/fepool/registrar"
	"github.com/fepool/fepool/registrar/backend"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

// backEndFault is something that happens to pool-a's Back End file at run time, behind the
// emulator's back; undo puts it right.
type backEndFault func(t *testing.T, path string) (undo func())

// lockBackEnd holds a write lock on the database from another connection (an operator's
// sqlite3 shell in a transaction, a backup tool): the emulator's writes get SQLITE_BUSY.
func lockBackEnd(t *testing.T, path string) func() {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		db.Close()
	}
}

// freezeBackEnd makes the database and its write-ahead log immutable (chattr +i): the file
// system refuses every write, even through the descriptors the emulator holds open, as a disk
// remounted read-only would (a chmod would not: it only affects later opens). It needs
// CAP_LINUX_IMMUTABLE and a file system with attributes; the test is skipped without them.
func freezeBackEnd(t *testing.T, path string) func() {
	t.Helper()
	files := []string{path, path + "-wal"}
	if out, err := exec.Command("chattr", append([]string{"+i"}, files...)...).CombinedOutput(); err != nil {
		t.Skipf("cannot make the Back End's files immutable here (chattr +i: %v %s)", err, out)
	}
	return func() {
		if out, err := exec.Command("chattr", append([]string{"-i"}, files...)...).CombinedOutput(); err != nil {
			t.Errorf("chattr -i: %v %s", err, out)
		}
	}
}

// TestBackEndLockedOrReadOnlyAtRunTime: a contact-list change (SERVICE) that finds pool-a's
// Back End locked or read-only gets 503 with ms-diagnostics naming that Back End (it got 500),
// and the admin API answers while the change waits for the database (it waited 3-13 s: the
// write ran under the control-plane lock).
func TestBackEndLockedOrReadOnlyAtRunTime(t *testing.T) {
	for name, tc := range map[string]struct {
		fault  backEndFault
		stalls bool // the database makes a writer wait (for backend.BusyTimeout)
	}{
		"locked":    {lockBackEnd, true},
		"read-only": {freezeBackEnd, false},
	} {
		t.Run(name, func(t *testing.T) {
			topo := persistentTopology(t)
			env := rt.StartFile(t, topo)
			dbPath := filepath.Join(filepath.Dir(topo), "pool-a.db")
			dst := env.Addr(t, env.Primary(t, alice), "udp")
			ph := rt.NewPhone(t, "udp")
			if res := addContact(t, ph, dst, alice, bob); res.StatusCode != 200 {
				t.Fatalf("before the fault: %s", res.StartLine())
			}
			// The challenge first, so that only the authorised request meets the fault.
			req := ph.Service(alice, []string{"sip:carol@contoso.com"}, nil)
			chal, err := ph.Send(dst, req)
			if err != nil || chal.StatusCode != 401 {
				t.Fatalf("SERVICE without credentials: %v %v", chal, err)
			}
			authed := ph.Authorize(req, chal, "user00042", "secret", "")
			undo := sync.OnceFunc(tc.fault(t, dbPath))
			defer undo()

			type answer struct {
				res *sip.Response
				err error
			}
			done := make(chan answer, 1)
			go func() {
				res, err := ph.Send(dst, authed)
				done <- answer{res, err}
			}()
			// Admin calls made while the change is in progress must not wait for the database.
			var calls int
			var slowest time.Duration
			var got *answer
			for got == nil {
				start := time.Now()
				env.R.Pools()
				slowest = max(slowest, time.Since(start))
				calls++
				select {
				case a := <-done:
					got = &a
				case <-time.After(5 * time.Millisecond):
				}
			}
			if got.err != nil {
				t.Fatalf("SERVICE with the Back End %s: %v (after %d admin calls, the slowest %s)", name, got.err, calls, slowest)
			}
			res := got.res
			if res.StatusCode != 503 {
				t.Fatalf("SERVICE with the Back End %s: %s (ms-diagnostics %q), want 503", name, res.StartLine(), rt.Header(res, "ms-diagnostics"))
			}
			if diag := rt.Header(res, "ms-diagnostics"); !strings.HasPrefix(diag, "1007;") || !strings.Contains(diag, "Back End of pool-a.contoso.com") {
				t.Fatalf("ms-diagnostics %q does not name pool-a's Back End", diag)
			}
			// The change waits a second for the lock: ~200 calls of 5 ms; far fewer means the
			// calls did not run while the change waited.
			if tc.stalls && calls < 20 {
				t.Fatalf("only %d admin calls during the change", calls)
			}
			if slowest > 250*time.Millisecond {
				t.Fatalf("an admin call waited %s for the Back End (slowest of %d calls during the change)", slowest, calls)
			}
			// Put right, the Back End takes changes again.
			undo()
			if res := addContact(t, ph, dst, alice, "sip:carol@contoso.com"); res.StatusCode != 200 {
				t.Fatalf("after the fault: %s", res.StartLine())
			}
		})
	}
}

// TestPartnerBackEndLockedStallsNothing: a change whose copy to the partner pool's Back End
// finds it locked is kept for the backup service (200), and the backup service's retries at
// each heartbeat wait for that lock outside the control-plane lock: the admin API answers
// meanwhile, and the copy lands once the lock is gone.
func TestPartnerBackEndLockedStallsNothing(t *testing.T) {
	topo := persistentTopology(t)
	clock := clockwork.NewFakeClockAt(drStart)
	var logs rt.LogBuffer // the backup service logs each failed copy (debug)
	env := rt.StartFile(t, topo, registrar.WithClock(clock), registrar.WithLogger(zerolog.New(&logs).Level(zerolog.DebugLevel)))
	waitEvent(t, env, "BackupServiceSynced") // the start-up reconciliation of file Back Ends
	dst := env.Addr(t, env.Primary(t, alice), "udp")
	ph := rt.NewPhone(t, "udp")
	undo := sync.OnceFunc(lockBackEnd(t, filepath.Join(filepath.Dir(topo), "pool-b.db")))
	defer undo()
	if res := addContact(t, ph, dst, alice, bob); res.StatusCode != 200 {
		t.Fatalf("SERVICE with the partner's Back End locked: %s (%s)", res.StartLine(), rt.Header(res, "ms-diagnostics"))
	}
	if dr := drState(t, env, poolA); dr.UnsyncedSince == nil {
		t.Fatal("the change that missed pool-b's Back End is not pending for the backup service")
	}
	synced := env.R.Events().Last()
	// Heartbeats (every 5 s by default): the backup service retries, waiting a second for the
	// lock each time. Admin calls run until one retry has failed, so they overlapped its wait.
	var calls int
	var slowest time.Duration
	retried := func() bool { return strings.Contains(logs.String(), "backup service: copy failed") }
	for begin := time.Now(); !retried() || time.Since(begin) < 3*backend.BusyTimeout/2; {
		if time.Since(begin) > 10*backend.BusyTimeout {
			t.Fatalf("the backup service did not retry the copy (%d admin calls)", calls)
		}
		if calls%40 == 0 {
			clock.Advance(5 * time.Second)
		}
		start := time.Now()
		env.R.Pools()
		slowest = max(slowest, time.Since(start))
		calls++
		time.Sleep(5 * time.Millisecond)
	}
	if slowest > 250*time.Millisecond {
		t.Fatalf("an admin call waited %s while the backup service retried (slowest of %d)", slowest, calls)
	}
	if dr := drState(t, env, poolA); dr.UnsyncedSince == nil {
		t.Fatal("the backup service cleared the pending change though pool-b's Back End is locked")
	}
	undo()
	eventually(t, "the backup service to copy the change", func() bool {
		clock.Advance(5 * time.Second)
		for _, e := range env.R.Events().Since(synced) {
			if e.Kind == "BackupServiceSynced" {
				return true
			}
		}
		return false
	})
	if dr := drState(t, env, poolA); dr.UnsyncedSince != nil {
		t.Fatalf("still pending after the copy: %+v", dr)
	}
}

// TestLockedBackEndDoesNotQueueChanges: changes of several users arriving together while their
// Back End is locked are each answered 503 within a bounded time; they do not queue one lock
// wait behind another.
func TestLockedBackEndDoesNotQueueChanges(t *testing.T) {
	topo := persistentTopology(t)
	env := rt.StartFile(t, topo)
	defer lockBackEnd(t, filepath.Join(filepath.Dir(topo), "pool-a.db"))()
	const users = 6
	ph := rt.NewPhone(t, "udp")
	type change struct {
		dst  netip.AddrPort
		req  *sip.Request
		res  *sip.Response
		err  error
		took time.Duration
	}
	changes := make([]*change, users)
	for i := range changes {
		aor := fmt.Sprintf("user%05d@contoso.com", 100+i)
		c := &change{dst: env.Addr(t, env.Primary(t, aor), "udp"), req: ph.Service(aor, []string{bob}, nil)}
		chal, err := ph.Send(c.dst, c.req)
		if err != nil || chal.StatusCode != 401 {
			t.Fatalf("SERVICE without credentials: %v %v", chal, err)
		}
		c.req = ph.Authorize(c.req, chal, aor[:9], "secret", "")
		changes[i] = c
	}
	var wg sync.WaitGroup
	for _, c := range changes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c.res, c.err = ph.Send(c.dst, c.req)
			c.took = time.Since(start)
		}()
	}
	wg.Wait()
	for i, c := range changes {
		if c.err != nil || c.res.StatusCode != 503 {
			t.Fatalf("change %d: %v %v, want 503", i, c.res, c.err)
		}
		// One lock wait (backend.BusyTimeout) and the wait for the changes ahead
		// (backend.OpTimeout) at most: 3 s, where queueing took 1 s per change ahead.
		if c.took > 3500*time.Millisecond {
			t.Fatalf("change %d answered after %s", i, c.took)
		}
	}
}
