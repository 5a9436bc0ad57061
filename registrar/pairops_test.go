package registrar_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/pairing"
	rt "github.com/fepool/fepool/registrar/registrartest"
)

// pairOpsTopology: a planned failover and a failback each take 10 s of data sync, so the second
// operation of a pair arrives while the first is still running.
const pairOpsTopology = "pairing: {failover_wait: 10s, failback_wait: 10s}\n"

// pairOp runs one operation on a pool of the pair.
func pairOp(env *rt.Env, op, pool string) error {
	var err error
	switch op {
	case "failover": // -DisasterMode: refused only for the pairing's states or a backup that does not serve
		_, err = env.R.FailOver(pool, admin.FailOverRequest{DisasterMode: true})
	case "planned failover":
		_, err = env.R.FailOver(pool, admin.FailOverRequest{WaitTime: "10s"})
	case "failback":
		_, err = env.R.FailBack(pool, admin.FailBackRequest{})
	case "reset":
		_, err = env.R.ResetRegistrarState(pool, admin.ResetRequest{ResetType: "ServiceReset"})
	default: // stop, start, crash
		_, err = env.R.PoolAction(pool, op)
	}
	return err
}

// errOther is any other refusal (409) than the pairing's: a pool action that finds nothing to
// start or stop.
var errOther = errors.New("another conflict")

// TestPairOperationsConflicts runs every pair of operations on a pairing (failover, failback,
// pool stop, start, crash and reset): the first on pool-a (still running where it takes time),
// the second on either pool. Each second operation is allowed or refused with a 409 that says
// why and what to do instead; once everything has completed, no pool serves its partner's
// users while its own are served by that partner, nothing is left half-done, and users are only
// ever sent to a pool that serves.
func TestPairOperationsConflicts(t *testing.T) {
	firsts := map[string][]string{ // setup steps on pool-a, the last one is the first operation
		"planned failover a, syncing": {"planned failover"},
		"failover a, done":            {"failover"},
		"failback a, syncing":         {"failover", "failback"},
		"stop a":                      {"stop"},
		"start a":                     {"stop", "start"},
		"crash a":                     {"crash"},
		"reset a":                     {"reset"},
	}
	const (
		act = "Active"
		fo  = "FailedOver"
	)
	for _, tc := range []struct {
		first, second string // second: "<op> a" or "<op> b"
		err           error  // nil: allowed
		a, b          string // the DR states of pool-a's and pool-b's users once everything completed
	}{
		{"planned failover a, syncing", "failover a", pairing.ErrState, fo, act},
		{"planned failover a, syncing", "failover b", pairing.ErrPartner, fo, act},
		{"planned failover a, syncing", "failback a", pairing.ErrState, fo, act},
		{"planned failover a, syncing", "failback b", pairing.ErrState, fo, act},
		{"planned failover a, syncing", "stop a", nil, fo, act},
		{"planned failover a, syncing", "stop b", nil, act, act}, // aborted: the backup no longer serves
		{"planned failover a, syncing", "start a", errOther, fo, act},
		{"planned failover a, syncing", "start b", errOther, fo, act},
		{"planned failover a, syncing", "crash a", nil, fo, act},
		{"planned failover a, syncing", "crash b", nil, act, act}, // aborted
		{"planned failover a, syncing", "reset a", nil, fo, act},
		{"planned failover a, syncing", "reset b", nil, fo, act},

		{"failover a, done", "failover a", pairing.ErrState, fo, act},
		{"failover a, done", "failover b", pairing.ErrPartner, fo, act},
		{"failover a, done", "failback a", nil, act, act},
		{"failover a, done", "failback b", pairing.ErrState, fo, act},
		{"failover a, done", "stop a", nil, fo, act},
		{"failover a, done", "stop b", nil, fo, act}, // a second disaster: failing back is the way out
		{"failover a, done", "start a", errOther, fo, act},
		{"failover a, done", "start b", errOther, fo, act},
		{"failover a, done", "crash a", nil, fo, act},
		{"failover a, done", "crash b", nil, fo, act},
		{"failover a, done", "reset a", nil, fo, act},
		{"failover a, done", "reset b", nil, fo, act},

		{"failback a, syncing", "failover a", pairing.ErrState, act, act},
		{"failback a, syncing", "failover b", pairing.ErrPartner, act, act},
		{"failback a, syncing", "failback a", pairing.ErrState, act, act},
		{"failback a, syncing", "failback b", pairing.ErrState, act, act},
		{"failback a, syncing", "stop a", nil, fo, act}, // aborted: the home pool no longer serves
		{"failback a, syncing", "stop b", nil, act, act},
		{"failback a, syncing", "start a", errOther, act, act},
		{"failback a, syncing", "start b", errOther, act, act},
		{"failback a, syncing", "crash a", nil, fo, act}, // aborted
		{"failback a, syncing", "crash b", nil, act, act},
		{"failback a, syncing", "reset a", nil, act, act},
		{"failback a, syncing", "reset b", nil, act, act},

		{"stop a", "failover a", nil, fo, act},
		{"stop a", "failover b", pairing.ErrDown, act, act}, // its backup pool does not serve
		{"stop a", "failback a", pairing.ErrState, act, act},
		{"stop a", "failback b", pairing.ErrState, act, act},
		{"stop a", "stop a", errOther, act, act},
		{"stop a", "stop b", nil, act, act},
		{"stop a", "start a", nil, act, act},
		{"stop a", "start b", errOther, act, act},
		{"stop a", "crash a", errOther, act, act},
		{"stop a", "crash b", nil, act, act},
		{"stop a", "reset a", nil, act, act},
		{"stop a", "reset b", nil, act, act},

		{"start a", "failover a", nil, fo, act},
		{"start a", "failover b", nil, act, fo},
		{"start a", "failback a", pairing.ErrState, act, act},
		{"start a", "failback b", pairing.ErrState, act, act},
		{"start a", "stop a", nil, act, act},
		{"start a", "stop b", nil, act, act},
		{"start a", "start a", errOther, act, act},
		{"start a", "start b", errOther, act, act},
		{"start a", "crash a", nil, act, act},
		{"start a", "crash b", nil, act, act},
		{"start a", "reset a", nil, act, act},
		{"start a", "reset b", nil, act, act},

		{"crash a", "failover a", nil, fo, act},
		{"crash a", "failover b", pairing.ErrDown, act, act},
		{"crash a", "failback a", pairing.ErrState, act, act},
		{"crash a", "failback b", pairing.ErrState, act, act},
		{"crash a", "stop a", errOther, act, act},
		{"crash a", "stop b", nil, act, act},
		{"crash a", "start a", nil, act, act},
		{"crash a", "start b", errOther, act, act},
		{"crash a", "crash a", errOther, act, act},
		{"crash a", "crash b", nil, act, act},
		{"crash a", "reset a", nil, act, act},
		{"crash a", "reset b", nil, act, act},

		{"reset a", "failover a", nil, fo, act},
		{"reset a", "failover b", nil, act, fo},
		{"reset a", "failback a", pairing.ErrState, act, act},
		{"reset a", "failback b", pairing.ErrState, act, act},
		{"reset a", "stop a", nil, act, act},
		{"reset a", "stop b", nil, act, act},
		{"reset a", "start a", errOther, act, act},
		{"reset a", "start b", errOther, act, act},
		{"reset a", "crash a", nil, act, act},
		{"reset a", "crash b", nil, act, act},
		{"reset a", "reset a", nil, act, act},
		{"reset a", "reset b", nil, act, act},
	} {
		t.Run(tc.first+", then "+tc.second, func(t *testing.T) {
			env, clock := drEnv(t, pairOpsTopology)
			for _, op := range firsts[tc.first] {
				if err := pairOp(env, op, poolA); err != nil {
					t.Fatalf("%s a: %v", op, err)
				}
			}
			op, side, _ := strings.Cut(tc.second, " ")
			pool := map[string]string{"a": poolA, "b": poolB}[side]
			before := [2]string{drState(t, env, poolA).State, drState(t, env, poolB).State}
			err := pairOp(env, op, pool)
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != nil && !errors.Is(err, admin.ErrConflict):
				t.Fatalf("got %v, want a conflict (409)", err)
			case tc.err != nil && tc.err != errOther && !errors.Is(err, tc.err):
				t.Fatalf("got %v, want %v", err, tc.err)
			case tc.err == errOther && (errors.Is(err, pairing.ErrState) || errors.Is(err, pairing.ErrPartner) || errors.Is(err, pairing.ErrDown)):
				t.Fatalf("got %v, want a pool action's own conflict", err)
			}
			if err != nil {
				if after := [2]string{drState(t, env, poolA).State, drState(t, env, poolB).State}; after != before {
					t.Fatalf("a refused operation changed the states %v -> %v", before, after)
				}
				if errors.Is(err, pairing.ErrState) || errors.Is(err, pairing.ErrPartner) {
					if msg := err.Error(); !strings.Contains(msg, "Invoke-Cs") && !strings.Contains(msg, "wait") && !strings.Contains(msg, "nothing to fail back") {
						t.Errorf("the refusal does not say what to do instead: %v", err)
					}
				}
			}
			settle(t, env, clock)
			a, b := drState(t, env, poolA), drState(t, env, poolB)
			if a.State != tc.a || b.State != tc.b {
				t.Fatalf("once completed: pool-a's users %s, pool-b's users %s; want %s and %s", a.State, b.State, tc.a, tc.b)
			}
			if a.State != act && b.State != act {
				t.Fatalf("each pool serves the other's users: %s and %s", a.State, b.State)
			}
			for _, dr := range []admin.DisasterRecovery{a, b} {
				if dr.UsersServedBy != "" && poolState(env, dr.UsersServedBy).FabricState != "Started" {
					t.Fatalf("users sent to %s, which does not serve: %+v", dr.UsersServedBy, dr)
				}
			}
		})
	}
}

// settle advances the clock until no failover or failback is in progress.
func settle(t *testing.T, env *rt.Env, clock *clockwork.FakeClock) {
	t.Helper()
	eventually(t, "every failover and failback to complete", func() bool {
		clock.Advance(5 * time.Second)
		for _, p := range []string{poolA, poolB} {
			if st := drState(t, env, p).State; st == "FailingOver" || st == "FailingBack" {
				return false
			}
		}
		return true
	})
}

// TestCrossFailoverAtTheSameTime: Invoke-CsPoolFailOver pool-a and Invoke-CsPoolFailOver
// pool-b started together over the admin API: one is accepted, the other gets 409 saying what
// to do instead; each pool never ends up serving the other's users.
func TestCrossFailoverAtTheSameTime(t *testing.T) {
	for _, req := range []admin.FailOverRequest{{DisasterMode: true}, {WaitTime: "10s"}} {
		env, clock := drEnv(t, pairOpsTopology)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, p := range []string{poolA, poolB} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = env.Admin.FailOver(context.Background(), p, req)
			}()
		}
		wg.Wait()
		var refused *admin.APIError
		switch {
		case errs[0] == nil && errs[1] == nil:
			t.Fatalf("%+v: both failovers accepted", req)
		case errs[0] != nil && errs[1] != nil:
			t.Fatalf("%+v: both refused: %v; %v", req, errs[0], errs[1])
		case !errors.As(errors.Join(errs...), &refused) || refused.Status != http.StatusConflict ||
			!strings.Contains(refused.Message, "Invoke-CsPoolFailBack -PoolFqdn") && !strings.Contains(refused.Message, "wait"):
			t.Fatalf("%+v: the refusal %v is not a 409 saying what to do instead", req, errors.Join(errs...))
		}
		settle(t, env, clock)
		if a, b := drState(t, env, poolA).State, drState(t, env, poolB).State; a != "Active" && b != "Active" {
			t.Fatalf("%+v: each pool serves the other's users: %s and %s", req, a, b)
		}
	}
}
