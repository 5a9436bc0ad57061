package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fepool/fepool/configs"
	"github.com/fepool/fepool/registrar"
	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/topology"
)

// demoTopology is configs/demo.yaml: the embedded default topology with shortened timers
// (resiliency timer 15 s, failback of 2,000 users every 10 s).
func demoTopology() (*topology.Topology, error) {
	data, err := configs.Topologies.ReadFile("demo.yaml")
	if err != nil {
		return nil, err
	}
	return topology.Parse("embedded demo topology (configs/demo.yaml)", data)
}

func demoCmd(e env) *cobra.Command {
	o := &loadOpts{}
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the emulator and 2,000 clients through a pool failure, failover and failback",
		Long: `demo starts the embedded default topology in this process (pool-a and pool-b, paired, on
127.0.1.x and 127.0.2.x port 5060) with shortened timers (resiliency timer 15 s, failback of
2,000 users in 10 s), then runs the failover-and-failback scenario with 2,000 clients homed on
pool-a: pool-a crashes, its users wait out the resiliency timer and sign in to pool-b in
resiliency mode (contact-list changes refused), Invoke-CsPoolFailOver -DisasterMode gives them
full service, pool-a returns and Invoke-CsPoolFailBack brings them home. It prints the summary
and writes an HTML report. The scenario's thresholds require each step to do what it is there
for (the crash and the failback sign clients out, the failover finds them in resiliency mode,
contact-list changes are refused there and accepted after); they are judged only when the whole
scenario ran. Exit codes as for 'fepool load'. About 2 minutes; Ctrl-C stops it cleanly (not
judged, exit 130).

It needs the default topology's addresses free: stop a running 'fepool serve' first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), e, o)
		},
	}
	c.Flags().IntVar(&o.clients, "clients", 2000, "number of clients")
	c.Flags().StringVar(&o.out, "out", "", "directory for the results (default fepool-results/demo-<time>)")
	c.Flags().BoolVar(&o.quiet, "quiet", false, "no live view")
	c.Flags().StringVar(&o.metrics, "metrics", "", "serve the load generator's Prometheus /metrics here while running")
	o.logs.add(c)
	c.Flags().Lookup("log-level").DefValue = "warn"
	_ = c.Flags().Set("log-level", "warn")
	c.Flags().Lookup("log-format").DefValue = "console"
	_ = c.Flags().Set("log-format", "console")
	return c
}

func runDemo(ctx context.Context, e env, o *loadOpts) error {
	log, err := o.logs.logger(e.stderr)
	if err != nil {
		return err
	}
	top, err := demoTopology()
	if err != nil {
		return withCode(exitConfig, err)
	}
	r, err := registrar.New(registrar.Config{Topology: top, AdminListen: "127.0.0.1:0"}, registrar.WithLogger(log))
	if err != nil {
		return err
	}
	if err := r.Start(); err != nil {
		return fmt.Errorf("starting the emulator (are the default topology's addresses free? stop 'fepool serve' first): %w", err)
	}
	defer r.Close()
	fmt.Fprintf(e.stderr, "fepool demo: emulator running (admin API http://%s, token %s)\n", r.AdminAddr(), r.Token())
	cl := admin.NewClient("http://"+r.AdminAddr().String(), r.Token())
	if o.out == "" {
		o.out = filepath.Join("fepool-results", "demo-"+time.Now().Format("20060102-150405"))
	}
	o.scenario, o.shard = "failover-and-failback", "0/1"
	o.topologyParsed = top
	return runLoad(ctx, e, o, cl)
}
