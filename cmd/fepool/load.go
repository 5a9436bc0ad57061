package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/fepool/fepool/configs"
	"github.com/fepool/fepool/loadgen"
	"github.com/fepool/fepool/loadgen/aggregate"
	"github.com/fepool/fepool/loadgen/record"
	"github.com/fepool/fepool/loadgen/report"
	"github.com/fepool/fepool/loadgen/scenario"
	"github.com/fepool/fepool/loadgen/threshold"
	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/topology"
)

// exitThresholds is the exit code of a run whose thresholds failed.
const exitThresholds = 5

// exitInterrupted is the exit code of a run stopped by Ctrl-C (its results are kept).
const exitInterrupted = 130

type loadOpts struct {
	scenario, topology, out, shard, startAt, metrics string
	clients                                          int
	quiet, realtime                                  bool
	logs                                             logFlags
	// topologyParsed, when set, is the topology (fepool demo's own).
	topologyParsed *topology.Topology
}

func loadCmd(e env) *cobra.Command {
	o := &loadOpts{}
	ctl := &ctlOpts{}
	c := &cobra.Command{
		Use:   "load --scenario NAME|FILE [--clients N] [--shard i/n]",
		Short: "Drive simulated Lync clients through a scenario against a running emulator, and measure",
		Long: `load runs a scenario against a running 'fepool serve': it starts the clients on an open-model
ramp (a slow registrar cannot slow the schedule), carries out the scenario's steps through the
admin API (crash or restore Front Ends and pools, Back End outage, partition,
Invoke-CsPoolFailOver, Invoke-CsPoolFailBack, waits, contact-list changes), and measures per
step how long disrupted clients take to be signed in again and to get full service back, the
latency of every REGISTER, responses by code and the clients' states per second.

It writes to --out (default fepool-results/<scenario>-<time>/): results.jsonl.gz (the raw
stream: 'fepool report' renders it again), summary.json and report.html, and prints a summary.
Shipped scenarios (configs/scenarios): failover-and-failback, fe-crash, quorum-loss-12,
backend-outage, soak-20k; or give a file.

The load's own delay (recorder lag: from a datagram's arrival, stamped by the kernel, to its
recording) is in every summary. Latencies end at the kernel's stamp, but a load process that
waits for a CPU also answers and re-registers late. On a machine whose CPUs it shares with the
emulator, --realtime puts the load ahead of the emulator: under a failover storm on 2 CPUs its
delay went from milliseconds to under half a millisecond at p99. It slows the emulator when
both are busy (a saturating ramp's REGISTER latencies grow), so leave it off to measure
throughput.

Before it creates anything it checks what it can: the clients asked for against the users of
the scenario's pools, the open-file limit against the sockets of that population, and the
emulator (its admin API answers, takes the token, runs the Front Ends and pools the scenario
names and the listeners its clients sign in through).

The scenario's thresholds (such as 'disrupted[fe01 crashes] > 0', 'never_recovered == 0',
'p99(time_to_signed_in[fe01 crashes]) < 30s') are judged only when the run carried out the
whole scenario: an interrupted run, one that reached max_duration, lost its emulator or had a
step fail (a wait that timed out included) says its thresholds were not judged and why. A
quantile of a distribution without samples fails ("no samples: step 'fe01 crashes'
disrupted no client").

Exit codes: 0 the scenario completed and every threshold passed; 5 a threshold failed; 1 the
emulator did not answer at start (nothing is created), or the run failed or did not complete
(the emulator gone or refusing a step, a wait timed out, max_duration reached: thresholds not
judged, the results so far are kept); 2 bad usage or scenario, or a check before the run failed
(too many clients, a wrong admin token, an open-file limit too low, an emulator running another
topology: nothing is created); 130 interrupted (thresholds not judged, results kept).`,
		Example: `  fepool serve &                        # the emulator (another terminal)
  fepool load --scenario fe-crash --clients 2000
  fepool load --scenario my-scenario.yaml --out results/
  fepool load --scenario soak-20k --shard 0/2 --start-at 2026-11-24T10:00:00Z   # and 1/2 elsewhere`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := ctl.client(e)
			if err != nil {
				return err
			}
			return runLoad(cmd.Context(), e, o, cl)
		},
	}
	f := c.Flags()
	f.StringVar(&o.scenario, "scenario", "failover-and-failback", "a shipped scenario's name or a scenario file")
	f.StringVar(&o.topology, "topology", "", "the topology file the emulator runs (default: the one the scenario names, else the embedded default)")
	f.IntVar(&o.clients, "clients", 0, "number of clients (default: the scenario's)")
	f.StringVar(&o.out, "out", "", "directory for the results (default fepool-results/<scenario>-<time>)")
	f.StringVar(&o.shard, "shard", "0/1", "drive shard i of n of the population (clients with index % n == i); shard 0 carries out the steps")
	f.StringVar(&o.startAt, "start-at", "", "the run's time zero as RFC 3339 (shards given the same one align); default now")
	f.StringVar(&o.metrics, "metrics", "127.0.0.1:0", "serve Prometheus /metrics (and, on a loopback address, Go profiles at /debug/pprof/) here while running (\"\" to disable)")
	f.BoolVar(&o.quiet, "quiet", false, "no live view")
	f.BoolVar(&o.realtime, "realtime", false, "run under real-time scheduling (SCHED_RR) on all CPUs but one: the load reacts at once instead of waiting behind the emulator on shared CPUs, and the emulator gets less CPU when both are busy (needs root or CAP_SYS_NICE)")
	f.StringVar(&ctl.url, "admin", "", "the emulator's admin API URL (default: FEPOOL_ADMIN or http://127.0.0.1:8060)")
	f.StringVar(&ctl.token, "token", "", "admin API bearer token (default: FEPOOL_ADMIN_TOKEN or the serve state file)")
	o.logs.add(c)
	return c
}

// loadScenario finds a scenario by file path or shipped name, validated against top, else the
// topology file at topologyPath, else the one the scenario names.
func loadScenario(name, topologyPath string, top *topology.Topology) (*scenario.Scenario, error) {
	if top == nil && topologyPath != "" {
		t, err := topology.Load(topologyPath)
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		top = t
	}
	if _, err := os.Stat(name); err == nil {
		s, err := scenario.Load(name, top)
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		return s, nil
	}
	file := "scenarios/" + strings.TrimSuffix(name, ".yaml") + ".yaml"
	data, err := configs.Scenarios.ReadFile(file)
	if err != nil {
		var names []string
		entries, _ := fs.ReadDir(configs.Scenarios, "scenarios")
		for _, en := range entries {
			names = append(names, strings.TrimSuffix(en.Name(), ".yaml"))
		}
		return nil, withCode(exitUsage, fmt.Errorf("--scenario %q: no such file and no shipped scenario of that name (%s)", name, strings.Join(names, ", ")))
	}
	if top == nil {
		ref := scenario.TopologyRef(data)
		switch {
		case ref == "" || ref == "default":
			top = topology.Default()
		default:
			tdata, err := configs.Topologies.ReadFile(filepath.Base(ref))
			if err != nil {
				return nil, withCode(exitUsage, fmt.Errorf("shipped scenario %s names topology %s, which is not shipped: give --topology", name, ref))
			}
			if top, err = topology.Parse("configs/"+filepath.Base(ref), tdata); err != nil {
				return nil, withCode(exitConfig, err)
			}
		}
	}
	s, err := scenario.Parse("configs/"+file, data, top)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return s, nil
}

func parseShard(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, withCode(exitUsage, fmt.Errorf("--shard %q: want i/n with 0 <= i < n, such as 0/1 or 2/4", s))
	}
	return i, n, nil
}

func runLoad(ctx context.Context, e env, o *loadOpts, cl *admin.Client) error {
	log, err := o.logs.logger(e.stderr)
	if err != nil {
		return err
	}
	sc, err := loadScenario(o.scenario, o.topology, o.topologyParsed)
	if err != nil {
		return err
	}
	shard, shards, err := parseShard(o.shard)
	if err != nil {
		return err
	}
	var start time.Time
	if o.startAt != "" {
		if start, err = time.Parse(time.RFC3339, o.startAt); err != nil {
			return withCode(exitUsage, fmt.Errorf("--start-at %q: %v (use RFC 3339, such as 2026-11-24T10:00:00Z)", o.startAt, err))
		}
	}
	plan, err := preflight(ctx, e, o, sc, cl, shard, shards)
	if err != nil {
		return err
	}
	clients := plan.Clients
	if o.realtime {
		procs, err := realtime(e)
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("--realtime: %w", err))
		}
		fmt.Fprintf(e.stderr, "scheduling: real-time (SCHED_RR 1), at most %d of %d CPUs at once\n", procs, runtime.NumCPU())
	}
	dir := o.out
	if dir == "" {
		dir = filepath.Join("fepool-results", fmt.Sprintf("%s-%s", sc.Name, time.Now().Format("20060102-150405")))
		if shards > 1 {
			dir += fmt.Sprintf("-shard%dof%d", shard, shards)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	resultsPath := filepath.Join(dir, "results.jsonl.gz")
	file, err := os.Create(resultsPath)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	defer file.Close()
	if start.IsZero() {
		start = time.Now()
	}
	var srcs []string
	for _, t := range sc.Thresholds {
		srcs = append(srcs, t.Source)
	}
	w, err := record.NewWriter(file, record.Header{Start: start, Scenario: sc.Name, Description: sc.Description, Clients: clients,
		Shard: shard, Shards: shards, Host: loadgen.Hostname(), Thresholds: srcs, Realtime: o.realtime})
	if err != nil {
		return err
	}

	cfg := loadgen.Config{Scenario: sc, Admin: cl, Clients: o.clients, Shard: shard, Shards: shards, Results: w, Start: start, Log: log}
	if o.metrics != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		cfg.Metrics = loadgen.NewMetrics(reg)
		ln, err := net.Listen("tcp", o.metrics)
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("--metrics %s: %w", o.metrics, err))
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		// Go profiles have no token here (the emulator's do): served on a loopback listener only
		if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		fmt.Fprintf(e.stderr, "metrics: http://%s/metrics\n", ln.Addr())
	}
	live := newLiveView(e, o.quiet, sc.Name)
	cfg.Status = live.show
	fmt.Fprintf(e.stderr, "fepool load: scenario %s, %d clients (shard %d/%d), results in %s\n", sc.Name, clients, shard, shards, dir)
	end, runErr := loadgen.Run(ctx, cfg)
	live.done()
	if err := file.Close(); err != nil && runErr == nil {
		runErr = err
	}
	out, err := renderRun(e, dir, []string{resultsPath})
	if err != nil {
		return err
	}
	switch {
	case runErr != nil:
		return withCode(exitError, fmt.Errorf("the run stopped early, its thresholds not judged (results so far are in %s): %w", dir, runErr))
	case !end.Completed && ctx.Err() != nil:
		return withCode(exitInterrupted, fmt.Errorf("%s: thresholds not judged; results so far are in %s", end.Reason, dir))
	case out.notJudged != "":
		return withCode(exitError, fmt.Errorf("%s (results in %s)", out.notJudgedMsg(), dir))
	case out.failed:
		return withCode(exitThresholds, fmt.Errorf("thresholds failed (see %s)", filepath.Join(dir, "report.html")))
	}
	return nil
}

// preflight checks, before the results directory exists, what would end the run midway or
// leave a result that measured nothing: the population against the topology's users, the
// open-file limit against the real population's sockets, and the emulator (its admin API
// answers, takes the token, and runs what the scenario drives). It raises the open-file soft
// limit to the hard one on the way.
func preflight(ctx context.Context, e env, o *loadOpts, sc *scenario.Scenario, cl *admin.Client, shard, shards int) (loadgen.Plan, error) {
	plan, err := loadgen.NewPlan(sc, sc.Topology, o.clients, shard, shards)
	if err != nil {
		return plan, withCode(exitUsage, fmt.Errorf("%w: ask for fewer clients (--clients, or clients: in the scenario) or run a topology with more users (--topology)", err))
	}
	raise := e.raiseFileLimit
	if raise == nil {
		raise = loadgen.RaiseFileLimit
	}
	soft, hard, err := raise()
	switch {
	case err != nil && soft == 0:
		fmt.Fprintf(e.stderr, "fepool load: could not read the open-file limit (%v): not checked\n", err)
	case soft < plan.Files:
		return plan, withCode(exitUsage, fmt.Errorf("the open-file limit is %d (hard limit %d) but this process's %d clients (%s) need about %d file descriptors: raise it (ulimit -n %d, or LimitNOFILE= for a service), run fewer clients per process (--shard i/n), or share sockets (client.sockets in the scenario)",
			soft, hard, plan.ShardClients, sc.Client.Transport, plan.Files, plan.Files))
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = loadgen.CheckEmulator(cctx, cl, sc, sc.Topology)
	switch {
	case err == nil:
		return plan, nil
	case ctx.Err() != nil:
		return plan, withCode(exitInterrupted, errors.New("interrupted before the run started"))
	case errors.Is(err, loadgen.ErrAdminToken):
		return plan, withCode(exitUsage, fmt.Errorf("%w: pass the token 'fepool serve' printed at start (--token or FEPOOL_ADMIN_TOKEN), or leave both unset to read the serve state file", err))
	case errors.Is(err, loadgen.ErrMismatch):
		return plan, withCode(exitUsage, fmt.Errorf("%w\nrun the emulator with the scenario's topology ('fepool serve --config FILE'), or give the one it runs (--topology)", err))
	}
	return plan, withCode(exitError, fmt.Errorf("%w: is 'fepool serve' running? (--admin or FEPOOL_ADMIN says where)", err))
}

// outcome is what a rendered run says of its thresholds.
type outcome struct {
	// failed: one failed; notJudged: why they were not judged (the run did not complete, a
	// step failed); thresholds: the run had some.
	failed     bool
	notJudged  string
	thresholds bool
}

func (o outcome) notJudgedMsg() string {
	if o.thresholds {
		return "thresholds not judged: " + o.notJudged
	}
	return o.notJudged
}

// renderRun aggregates streams (several: the shards of one run, merged), judges the
// thresholds (only when the run completed), prints the summary and writes summary.json and
// report.html to dir. Its error carries its exit code.
func renderRun(e env, dir string, streams []string) (outcome, error) {
	var srcs []record.Source
	for _, path := range streams {
		f, err := os.Open(path)
		if err != nil {
			return outcome{}, withCode(exitUsage, err)
		}
		defer f.Close()
		srcs = append(srcs, record.Source{Name: path, R: f})
	}
	agg := aggregate.New()
	truncated, err := record.Merge(srcs, agg.Handler())
	if err != nil {
		return outcome{}, withCode(exitUsage, err)
	}
	sum := agg.Summary(truncated)
	ts, err := threshold.ParseAll(sum.Thresholds)
	if err != nil {
		return outcome{}, withCode(exitUsage, err)
	}
	sum.Verdicts, sum.NotJudged = threshold.JudgeRun(sum, ts)
	report.Text(e.stdout, sum)
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return outcome{}, withCode(exitError, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), js, 0o644); err != nil {
		return outcome{}, withCode(exitError, err)
	}
	htmlPath := filepath.Join(dir, "report.html")
	hf, err := os.Create(htmlPath)
	if err != nil {
		return outcome{}, withCode(exitError, err)
	}
	if err := report.HTML(hf, sum); err != nil {
		hf.Close()
		return outcome{}, withCode(exitError, err)
	}
	if err := hf.Close(); err != nil {
		return outcome{}, withCode(exitError, err)
	}
	fmt.Fprintf(e.stdout, "\nReport: %s\nSummary: %s\n", htmlPath, filepath.Join(dir, "summary.json"))
	return outcome{failed: !threshold.Passed(sum.Verdicts), notJudged: sum.NotJudged, thresholds: len(ts) > 0}, nil
}

// resultsStream resolves a RESULTS argument: a results stream, or a results directory
// holding results.jsonl.gz.
func resultsStream(arg string) (string, error) {
	fi, err := os.Stat(arg)
	if err != nil {
		return "", withCode(exitUsage, err)
	}
	if fi.IsDir() {
		p := filepath.Join(arg, "results.jsonl.gz")
		if _, err := os.Stat(p); err != nil {
			return "", withCode(exitUsage, fmt.Errorf("%s: not a results directory (no results.jsonl.gz)", arg))
		}
		return p, nil
	}
	return arg, nil
}

// render renders streams into dir (created) and maps the outcome to an exit code.
func render(e env, dir string, streams []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, err := renderRun(e, dir, streams)
	switch {
	case err != nil:
		return err
	case out.notJudged != "":
		return withCode(exitError, errors.New(out.notJudgedMsg()))
	case out.failed:
		return withCode(exitThresholds, errors.New("thresholds failed"))
	}
	return nil
}

var shardSuffix = regexp.MustCompile(`-shard\d+of\d+$`)

func reportCmd(e env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "report RESULTS",
		Short: "Render a load run's results again, or merge shards' results",
		Long: `report reads a results stream written by 'fepool load' (RESULTS: results.jsonl.gz or the
results directory holding it; also a stream cut short by a crash), aggregates it, judges the
scenario's thresholds, prints the summary and writes summary.json and report.html to --out
(default: the stream's directory). Exit code 5 when a threshold failed, 1 when the run did not
complete (or a step failed: its thresholds are not judged), 2 when a stream cannot be read.

'fepool report merge' does the same for the streams of several shards of one run.`,
		Example: `  fepool report fepool-results/fe-crash-20261124-101500
  fepool report merge --out merged shard-*/results.jsonl.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stream, err := resultsStream(args[0])
			if err != nil {
				return err
			}
			dir := out
			if dir == "" {
				dir = filepath.Dir(stream)
			}
			return render(e, dir, []string{stream})
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory for summary.json and report.html")
	c.AddCommand(mergeCmd(e))
	return c
}

func mergeCmd(e env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "merge RESULTS...",
		Short: "Merge the results of several shards of one run into one report",
		Long: `merge reads the results streams of the shards of one run ('fepool load --shard i/n', on one
or several hosts; RESULTS as for 'fepool report') and reports them as one run, exactly: every
client event of every shard is aggregated again in time order (nothing is averaged), times
are aligned on the shards' wall-clock starts (give the shards the same --start-at), and the
scenario steps are those shard 0 carried out (the lowest shard given, when 0 is missing). The
streams must be distinct shards of one run (same scenario, population and shard count); a
missing shard is allowed and shown ("shards 0,2 of 3"). Clocks of different hosts must agree
(NTP): an offset between them shifts that shard's latencies relative to the steps.

It prints the summary and writes summary.json and report.html to --out (default: the first
stream's directory name without its -shardIofN suffix, plus -merged). Exit code 5 when a
threshold failed, 1 when a shard's run did not complete (its thresholds are not judged).`,
		Example: `  fepool report merge fepool-results/soak-20k-20261124-100000-shard*of4
  fepool report merge --out results/merged /mnt/results/shard-*/results.jsonl.gz`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var streams []string
			for _, a := range args {
				s, err := resultsStream(a)
				if err != nil {
					return err
				}
				streams = append(streams, s)
			}
			dir := out
			if dir == "" {
				first := filepath.Dir(streams[0])
				dir = filepath.Join(filepath.Dir(first), shardSuffix.ReplaceAllString(filepath.Base(first), "")+"-merged")
			}
			return render(e, dir, streams)
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory for summary.json and report.html")
	return c
}

// liveView shows the run's progress: a redrawn line on a terminal, a plain line every 5 s
// otherwise.
type liveView struct {
	w     io.Writer
	tty   bool
	quiet bool
	name  string
	last  time.Time
}

func newLiveView(e env, quiet bool, name string) *liveView {
	v := &liveView{w: e.stderr, quiet: quiet, name: name}
	if f, ok := e.stderr.(*os.File); ok {
		v.tty = isatty.IsTerminal(f.Fd())
	}
	return v
}

func (v *liveView) show(st loadgen.Status) {
	if v.quiet {
		return
	}
	ramp := ""
	if st.Started < st.Population {
		const width = 20
		filled := width * st.Started / max(1, st.Population)
		ramp = fmt.Sprintf("ramp [%s%s] %3d%% ", strings.Repeat("#", filled), strings.Repeat(".", width-filled), 100*st.Started/max(1, st.Population))
	}
	step := "-"
	if st.Step != "" {
		step = fmt.Sprintf("%d/%d %s", st.StepNo, st.Steps, st.Step)
	}
	line := fmt.Sprintf("%6s %sregular %d resiliency %d signed-out %d | %d REGISTER/s p99 %s | lag max %s | step %s",
		st.Elapsed.Round(time.Second), ramp, st.Regular, st.Resiliency, st.SignedOut, st.AttemptsPerSec,
		st.P99.Round(100*time.Microsecond), st.RecorderLagMax.Round(time.Microsecond), step)
	if v.tty {
		fmt.Fprintf(v.w, "\r\033[K%s", line)
		return
	}
	if time.Since(v.last) >= 5*time.Second {
		v.last = time.Now()
		fmt.Fprintln(v.w, line)
	}
}

func (v *liveView) done() {
	if v.tty && !v.quiet {
		fmt.Fprintln(v.w)
	}
}

// realtime puts the process under real-time scheduling, on all CPUs but one unless GOMAXPROCS
// is set: a real-time process that used every CPU would leave the emulator and the system only
// the 5% of each second Linux keeps for them.
func realtime(e env) (procs int, err error) {
	procs, err = realtimeProcs(runtime.NumCPU(), runtime.GOMAXPROCS(0), e.getenv("GOMAXPROCS") != "")
	if err != nil {
		return 0, err
	}
	if err := loadgen.SetRealtime(); err != nil {
		if errors.Is(err, loadgen.ErrRealtimeRefused) {
			return 0, fmt.Errorf("%w: run it as root, give the binary CAP_SYS_NICE (setcap cap_sys_nice+ep fepool), or allow real-time priorities (ulimit -r 1, or LimitRTPRIO=1 for a service)", err)
		}
		return 0, err
	}
	runtime.GOMAXPROCS(procs)
	return procs, nil
}

// realtimeProcs is how many CPUs a real-time load process may use at once: all but one, or
// what GOMAXPROCS says when the user set it.
func realtimeProcs(cpus, procs int, userSet bool) (int, error) {
	if userSet {
		return procs, nil
	}
	if cpus < 2 {
		return 0, fmt.Errorf("needs at least 2 CPUs, one of them left to the emulator and the system (this process may use %d; set GOMAXPROCS to take them all anyway)", cpus)
	}
	return min(procs, cpus-1), nil
}
