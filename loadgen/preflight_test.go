package loadgen_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fepool/fepool/loadgen"
	"github.com/fepool/fepool/loadgen/scenario"
	"github.com/fepool/fepool/registrar/admin"
	rt "github.com/fepool/fepool/registrar/registrartest"
	"github.com/fepool/fepool/registrar/topology"
)

func TestNewPlan(t *testing.T) {
	top, err := topology.Parse("test.yaml", []byte(rt.Topology)) // 1,001 users on pool-a (one without auth), 1,000 on pool-b
	if err != nil {
		t.Fatal(err)
	}
	parse := func(extra string) *scenario.Scenario {
		t.Helper()
		sc, err := scenario.Parse("p.yaml", []byte("name: p\n"+extra+"steps: [{hold: 1s}]\n"), top)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	for _, tc := range []struct {
		name, scenario        string
		clients, shard, of    int
		wantClients, wantMine int
		wantFiles             uint64
		wantErr               string
	}{
		// no clients: in the scenario means every user of its pools: the real count, not 0
		{name: "every user of pool-a", scenario: "users: {pools: [pool-a.contoso.com]}\n", of: 1, wantClients: 1001, wantMine: 1001, wantFiles: 1001 + 256},
		{name: "every user", scenario: "", of: 1, wantClients: 2001, wantMine: 2001, wantFiles: 2001 + 256},
		{name: "the scenario's count", scenario: "clients: 300\n", of: 1, wantClients: 300, wantMine: 300, wantFiles: 300 + 256},
		{name: "--clients overrides", scenario: "clients: 300\n", clients: 40, of: 1, wantClients: 40, wantMine: 40, wantFiles: 40 + 256},
		{name: "shards split it", scenario: "clients: 10\n", shard: 1, of: 4, wantClients: 10, wantMine: 3, wantFiles: 3 + 256},
		{name: "last shard", scenario: "clients: 10\n", shard: 3, of: 4, wantClients: 10, wantMine: 2, wantFiles: 2 + 256},
		{name: "a stream per client over tcp", scenario: "clients: 100\nclient: {transport: tcp}\n", of: 1, wantClients: 100, wantMine: 100, wantFiles: 200 + 256},
		{name: "shared sockets", scenario: "clients: 1000\nclient: {sockets: 8}\n", of: 1, wantClients: 1000, wantMine: 1000, wantFiles: 8 + 256},
		{name: "more than the pool has", scenario: "users: {pools: [pool-b.contoso.com]}\nclients: 1500\n", of: 1,
			wantErr: "the population does not fit the topology: 1500 clients asked for, but test.yaml has only 1000 users in pool-b.contoso.com"},
		{name: "--clients more than the topology has", scenario: "", clients: 5000, of: 1,
			wantErr: "5000 clients asked for, but test.yaml has only 2001 users in the topology"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := loadgen.NewPlan(parse(tc.scenario), top, tc.clients, tc.shard, tc.of)
			if tc.wantErr != "" {
				if !errors.Is(err, loadgen.ErrPopulation) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want %q", p, err, tc.wantErr)
				}
				return
			}
			if err != nil || p.Clients != tc.wantClients || p.ShardClients != tc.wantMine || p.Files != tc.wantFiles {
				t.Fatalf("got %+v, %v; want %d clients, %d here, %d files", p, err, tc.wantClients, tc.wantMine, tc.wantFiles)
			}
		})
	}
}

// CheckEmulator finds, before anything starts, what would otherwise end a run midway: no
// emulator, a refused token, an emulator that runs another topology.
func TestCheckEmulator(t *testing.T) {
	env := rt.Start(t, rt.Topology)
	ctx := context.Background()
	parse := func(src string, top *topology.Topology) *scenario.Scenario {
		t.Helper()
		sc, err := scenario.Parse("c.yaml", []byte(src), top)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	const crash = "name: c\nclients: 10\nusers: {pools: [pool-a.contoso.com]}\nsteps:\n  - {crash_fe: fe02.pool-a.contoso.com}\n  - {wait: {until: all_regular, pool: pool-b.contoso.com}}\n"
	sc := parse(crash, env.Top)
	if err := loadgen.CheckEmulator(ctx, env.Admin, sc, env.Top); err != nil {
		t.Fatalf("the emulator runs what the scenario drives: %v", err)
	}

	wrong := admin.NewClient("http://"+env.R.AdminAddr().String(), "not-the-token")
	if err := loadgen.CheckEmulator(ctx, wrong, sc, env.Top); !errors.Is(err, loadgen.ErrAdminToken) || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("wrong token: %v", err)
	}
	gone := admin.NewClient("http://127.0.0.1:1", "x")
	if err := loadgen.CheckEmulator(ctx, gone, sc, env.Top); !errors.Is(err, loadgen.ErrEmulator) || !strings.Contains(err.Error(), "admin API unreachable") {
		t.Errorf("no emulator: %v", err)
	}

	// The scenario was written for the twelve-Front-End topology; the emulator runs the test one.
	path := filepath.Join("..", "configs", "enterprise-12.yaml")
	big, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	other := parse("name: q\nclients: 10\nsteps:\n  - {crash_fe: fe05.big.contoso.com}\n  - {failover: {pool: big.contoso.com}}\n", big)
	err = loadgen.CheckEmulator(ctx, env.Admin, other, big)
	for _, want := range []string{
		`step 1 "1 crash_fe fe05.big.contoso.com" (line 4) names Front End fe05.big.contoso.com, which the emulator (test.yaml) does not run`,
		`step 2 "2 failover big.contoso.com" (line 5) names pool big.contoso.com`,
		"pool big.contoso.com offers no udp listener",
	} {
		if !errors.Is(err, loadgen.ErrMismatch) || !strings.Contains(err.Error(), want) {
			t.Errorf("another topology: %v\nwant %q", err, want)
		}
	}
	// TLS through the front doors, which listen on UDP and TCP only.
	tls := parse(strings.Replace(crash, "steps:", "client: {transport: tls, via: front_door}\nsteps:", 1), env.Top)
	if err := loadgen.CheckEmulator(ctx, env.Admin, tls, env.Top); !errors.Is(err, loadgen.ErrMismatch) || !strings.Contains(err.Error(), "pool pool-a.contoso.com offers no tls listener") {
		t.Errorf("no listener: %v", err)
	}
}
