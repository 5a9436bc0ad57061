package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/fepool/fepool/loadgen/scenario"
	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/topology"
)

// Errors of the checks made before a run starts (Plan and CheckEmulator): a run that cannot go
// as planned is refused before it creates anything.
var (
	// ErrPopulation: the scenario asks for clients the topology has no users for.
	ErrPopulation = errors.New("the population does not fit the topology")
	// ErrAdminToken: the emulator's admin API refused the bearer token.
	ErrAdminToken = errors.New("the emulator refused the admin token")
	// ErrMismatch: the emulator does not run what the scenario drives (a Front End or pool it
	// names, a listener its clients sign in through).
	ErrMismatch = errors.New("the emulator does not run what the scenario drives")
)

// fileHeadroom is the descriptors a load process uses besides its clients' sockets: the
// results file, the admin API's and /metrics' connections, the runtime's and the pollers' own.
const fileHeadroom = 256

// Plan is a run worked out before it starts, from the scenario and the topology alone.
type Plan struct {
	// Clients is the whole population; ShardClients this process's part of it.
	Clients, ShardClients int
	// Files estimates the file descriptors this process needs: each socket a client owns (or
	// each shared socket), twice over TCP and TLS (the client's UDP socket is bound whatever
	// its transport, and its stream is another), plus fileHeadroom.
	Files uint64
}

// NewPlan works out the population of a run of sc over top's users (clients overrides the
// scenario's count when positive; 0 in both means every user of the scenario's pools) and
// what this shard of shards needs. It fails with ErrPopulation when the pools have fewer
// users than the clients asked for, or none.
func NewPlan(sc *scenario.Scenario, top *topology.Topology, clients, shard, shards int) (Plan, error) {
	total, err := population(sc, top, clients)
	if err != nil {
		return Plan{}, err
	}
	shards = max(shards, 1)
	p := Plan{Clients: total, ShardClients: (total - shard + shards - 1) / shards}
	sockets := p.ShardClients
	if n := sc.Client.Sockets; n > 0 {
		sockets = min(n, p.ShardClients)
	}
	perSocket := uint64(1)
	if sc.Client.Transport != topology.UDP {
		perSocket = 2
	}
	p.Files = uint64(sockets)*perSocket + fileHeadroom
	return p, nil
}

// population is how many clients a run of sc drives over top: the count asked for (clients,
// else the scenario's), or every user of the scenario's pools (every pool when it names none).
func population(sc *scenario.Scenario, top *topology.Topology, clients int) (int, error) {
	want := sc.Clients
	if clients > 0 {
		want = clients
	}
	have, where := 0, "the topology"
	if len(sc.Pools) == 0 {
		have = top.Users.Count()
	} else {
		for _, p := range sc.Pools {
			have += top.Users.CountIn(p)
		}
		where = strings.Join(sc.Pools, ", ")
	}
	src := top.Source
	if src == "" {
		src = "the topology"
	}
	switch {
	case have == 0:
		return 0, fmt.Errorf("%w: %s has no users in %s", ErrPopulation, src, where)
	case want > have:
		return 0, fmt.Errorf("%w: %d clients asked for, but %s has only %d users in %s", ErrPopulation, want, src, have, where)
	case want > 0:
		return want, nil
	}
	return have, nil
}

// CheckEmulator asks the emulator's admin API for the topology it runs, before a run starts: it
// fails with ErrEmulator when the API does not answer, ErrAdminToken when it refuses the token,
// and ErrMismatch when the emulator lacks a Front End or pool a step of sc names or a listener
// the population (top's users of sc's pools, through sc's transport and way in) signs in
// through: each would otherwise end the run midway.
func CheckEmulator(ctx context.Context, a *admin.Client, sc *scenario.Scenario, top *topology.Topology) error {
	running, err := a.Topology(ctx)
	if err != nil {
		return adminError(err)
	}
	fes, pools := map[string]bool{}, map[string]bool{}
	for _, f := range running.FrontEnds {
		fes[f.FQDN] = true
	}
	for _, p := range running.Pools {
		pools[p.FQDN] = true
	}
	var errs []error
	for _, st := range sc.Steps {
		switch st.Action {
		case scenario.CrashFE, scenario.StopFE, scenario.StartFE:
			if !fes[st.Target] {
				errs = append(errs, fmt.Errorf("%w: step %d %q (line %d) names Front End %s, which the emulator (%s) does not run", ErrMismatch, st.Index, st.Name, st.Line, st.Target, running.Source))
			}
		case scenario.Wait, scenario.Hold, scenario.Contacts, scenario.End:
			if st.Pool != "" && !pools[st.Pool] {
				errs = append(errs, fmt.Errorf("%w: step %d %q (line %d) waits on pool %s, which the emulator (%s) does not run", ErrMismatch, st.Index, st.Name, st.Line, st.Pool, running.Source))
			}
		default:
			if p := st.Target + st.Pool; !pools[p] {
				errs = append(errs, fmt.Errorf("%w: step %d %q (line %d) names pool %s, which the emulator (%s) does not run", ErrMismatch, st.Index, st.Name, st.Line, p, running.Source))
			}
		}
	}
	// Each home pool of the population must offer its clients a way in.
	r := &run{cfg: Config{Topology: top}, sc: sc}
	homes := sc.Pools
	if len(homes) == 0 {
		for _, p := range top.Pools {
			if top.Users.CountIn(p.FQDN) > 0 {
				homes = append(homes, p.FQDN)
			}
		}
	}
	for _, h := range homes {
		if top.Pool(h) == nil {
			continue
		}
		if _, err := r.servers(running, &member{home: h}); err != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrMismatch, strings.TrimPrefix(err.Error(), "loadgen: ")))
		}
	}
	return errors.Join(errs...)
}

// adminError names a failed admin API call: a refused token (ErrAdminToken) or an emulator
// that did not answer or failed (ErrEmulator).
func adminError(err error) error {
	var ae *admin.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		return fmt.Errorf("%w: %v", ErrAdminToken, err)
	}
	return fmt.Errorf("%w: %v", ErrEmulator, err)
}
