// Package loadgen drives a population of simulated Lync clients (package client) against a
// running emulator through a scenario: it starts the clients on an open-model ramp, carries out
// the scenario's steps through the admin API, and records every client event and step to a
// results stream (package record) for the aggregate, threshold and report stages. It reaches
// the emulator only over the network (SIP and the admin API); the topology file tells it the
// users and their passwords.
//
// Stages stay apart: the clients generate events; the recorder stamps and writes each one in
// the callback of the client that reported it and keeps the live counts the scenario's waits
// and the live view read; aggregation happens afterwards from the stream. Every goroutine
// started by Run ends before Run returns.
//
// Before a run, NewPlan (pure) and CheckEmulator (one admin API call) check what can be
// checked, so that a run that cannot go as planned is refused before anything is created; both
// keep no state and are safe for concurrent use. A run's end record says whether its scenario
// ran to its end (record.End.Completed): only then are its thresholds judged.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/fepool/fepool/client"
	"github.com/fepool/fepool/loadgen/record"
	"github.com/fepool/fepool/loadgen/scenario"
	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/topology"
)

// Config is one load run. sipgo's read buffer per TCP or TLS connection
// (sip.TransportBufferReadSize) is process-wide and 32 KiB by default: a process running
// thousands of clients over TCP or TLS should lower it (fepool load sets 4 KiB) before creating
// them.
type Config struct {
	Scenario *scenario.Scenario
	// Topology gives the users and passwords (default: the scenario's).
	Topology *topology.Topology
	// Admin is the emulator's admin API.
	Admin *admin.Client
	// Clients overrides the scenario's population (0 keeps it).
	Clients int
	// Shard of Shards: this process drives the clients whose index i has i % Shards == Shard.
	// Steps run only on shard 0; the others record them as markers at their scheduled times.
	Shard, Shards int
	// Results receives the results stream.
	Results *record.Writer
	// Start is the run's time zero (shards given the same one align); zero means now.
	Start time.Time
	// Status, when set, is called about once a second with the run's state (the live view).
	Status func(Status)
	// Metrics, when set, is updated as the run goes (Prometheus /metrics).
	Metrics *Metrics
	// WatchEvery is how often the emulator's admin API is asked whether it is there while the
	// run goes (default 1 s); unanswered watchMisses times in a row, the run ends: the emulator
	// died or is cut off, and waiting for clients to come back would only run out the clock.
	WatchEvery time.Duration
	Log        zerolog.Logger
}

// errBound ends a run that reached its scenario's max_duration.
var errBound = errors.New("the run's bound")

// watchMisses is how many unanswered health checks in a row end a run.
const watchMisses = 3

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.Scenario == nil:
		return errors.New("loadgen: no scenario")
	case c.Admin == nil:
		return errors.New("loadgen: no admin API client")
	case c.Results == nil:
		return errors.New("loadgen: no results writer")
	case c.Shards < 1 || c.Shard < 0 || c.Shard >= c.Shards:
		return fmt.Errorf("loadgen: shard %d/%d: want 0 <= shard < shards", c.Shard, c.Shards)
	}
	if c.Topology == nil {
		c.Topology = c.Scenario.Topology
	}
	if c.Topology == nil {
		return errors.New("loadgen: no topology")
	}
	if c.WatchEvery <= 0 {
		c.WatchEvery = time.Second
	}
	return nil
}

// ErrEmulator wraps failures of the emulator (unreachable, refusing a step).
var ErrEmulator = errors.New("emulator")

// Status is the live state of a run.
type Status struct {
	Elapsed time.Duration
	// Ramp progress: clients started of this shard's population.
	Started, Population int
	Regular, Resiliency int
	SignedOut           int
	// AttemptsPerSec and P99 (REGISTER latency) over the last second.
	AttemptsPerSec int
	P99            time.Duration
	// Step is the step running now ("" before the first).
	Step   string
	Steps  int
	StepNo int
	// RecorderLagMax is the largest event-to-record delay over the last second.
	RecorderLagMax time.Duration
}

// member is one simulated client.
type member struct {
	index int // in the whole population
	user  topology.User
	c     *client.Client
	// home is the user's pool (for waits on a pool).
	home string
}

// run is a Run in progress.
type run struct {
	cfg     Config
	sc      *scenario.Scenario
	log     zerolog.Logger
	start   time.Time
	members []*member
	pool    *client.Pool
	addrs   map[netip.AddrPort]string // registrar address -> pool
	rec     *recorder
	stepNo  atomic.Int32
	step    atomic.Value // string
}

// Run carries out the scenario and returns how it ended. The results stream is written and
// closed (with an end record) whatever happens; err says why a run ended early.
func Run(ctx context.Context, cfg Config) (end record.End, err error) {
	if err := cfg.Validate(); err != nil {
		return record.End{}, err
	}
	r := &run{cfg: cfg, sc: cfg.Scenario, log: cfg.Log.With().Str("component", "loadgen").Logger(), start: cfg.Start}
	r.step.Store("")
	if r.start.IsZero() {
		r.start = time.Now()
	}
	top, err := cfg.Admin.Topology(ctx)
	if err != nil {
		err = adminError(err)
		return r.finish(record.End{Reason: "the emulator's admin API failed at start"}, err)
	}
	if err := r.population(top); err != nil {
		return r.finish(record.End{Reason: "no population"}, err)
	}
	r.rec = newRecorder(r.start, cfg.Results, len(r.members), r.addrs, cfg.Metrics)
	defer r.closeClients()
	if err := r.newClients(top); err != nil {
		r.rec.stop()
		return r.finish(record.End{Reason: "clients could not be created"}, err)
	}
	ctx, gone := context.WithCancelCause(ctx)
	defer gone(nil)
	ctx, cancel := context.WithTimeoutCause(ctx, r.sc.MaxDuration, errBound)
	defer cancel()

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(3)
	go func() { defer wg.Done(); r.ramp(ctx) }()
	go func() { defer wg.Done(); r.live(done) }()
	go func() { defer wg.Done(); r.watch(ctx, gone) }()
	stepErr := r.steps(ctx)
	stopped := context.Cause(ctx) // before cancel: nil when the scenario ran to its end
	cancel()
	close(done)
	wg.Wait()
	r.rec.step(record.Step{T: time.Since(r.start).Nanoseconds(), Index: len(r.sc.Steps) + 1, Name: "sign out", Action: record.Teardown})
	end = record.End{Reason: "the scenario completed", Completed: true}
	runErr := stepErr
	switch {
	case stepErr != nil:
		end = record.End{Reason: "stopped: " + stepErr.Error()}
	case stopped != nil:
		end = record.End{Reason: r.stopReason(stopped)}
		if errors.Is(stopped, ErrEmulator) {
			runErr = stopped
		}
	}
	r.closeClients()
	r.rec.stop()
	if n := r.rec.stalls(); n > 0 {
		r.log.Warn().Int("waits", n).Msg("clients waited for the results file's compression: the disk or the CPU was too slow for the event rate")
	}
	return r.finish(end, runErr)
}

// finish closes the stream with the end record.
func (r *run) finish(end record.End, err error) (record.End, error) {
	end.T = time.Since(r.start).Nanoseconds()
	if err != nil && !errors.Is(err, context.Canceled) {
		end.Err = err.Error()
	}
	if errors.Is(err, context.Canceled) {
		end.Reason, end.Completed = "interrupted", false
		err = nil
	}
	if cerr := r.cfg.Results.Close(end); cerr != nil && err == nil {
		err = fmt.Errorf("writing results: %w", cerr)
	}
	return end, err
}

// stopReason says why the run's context ended before the scenario did, from its cause: the
// emulator gone, the run's bound, an interrupt.
func (r *run) stopReason(cause error) string {
	switch {
	case errors.Is(cause, ErrEmulator):
		return "stopped: " + cause.Error()
	case errors.Is(cause, errBound):
		return fmt.Sprintf("the run reached its bound of %s (max_duration) before the scenario's end", r.sc.MaxDuration)
	}
	return interrupted(cause)
}

// interrupted is the end reason of a run whose context was cancelled, with the cause when it
// says more than "context canceled" (signal.NotifyContext's "interrupt signal received").
func interrupted(cause error) string {
	if cause == nil || cause == context.Canceled {
		return "interrupted"
	}
	return "interrupted: " + cause.Error()
}

// population picks this shard's users: the scenario's pools' users in topology order, the
// first N of them.
func (r *run) population(top admin.Topology) error {
	want, err := population(r.sc, r.cfg.Topology, r.cfg.Clients)
	if err != nil {
		return err
	}
	i := 0
	r.cfg.Topology.Users.Each(func(u topology.User) bool {
		if len(r.sc.Pools) > 0 && !slices.Contains(r.sc.Pools, u.Pool) {
			return true
		}
		if i >= want {
			return false
		}
		if i%r.cfg.Shards == r.cfg.Shard {
			r.members = append(r.members, &member{index: i, user: u, home: u.Pool})
		}
		i++
		return true
	})
	if len(r.members) == 0 {
		return fmt.Errorf("%w: shard %d/%d has none of the %d clients", ErrPopulation, r.cfg.Shard, r.cfg.Shards, want)
	}
	r.addrs = map[netip.AddrPort]string{}
	for _, f := range top.FrontEnds {
		for _, a := range []string{f.UDP, f.TCP, f.TLS} {
			if ap, err := netip.ParseAddrPort(a); err == nil {
				r.addrs[ap] = f.Pool
			}
		}
	}
	return nil
}

// servers lists where a user's client signs in.
func (r *run) servers(top admin.Topology, m *member) ([]client.Server, error) {
	transport := r.sc.Client.Transport
	pick := func(udp, tcp, tls string) string {
		return map[string]string{topology.UDP: udp, topology.TCP: tcp, topology.TLS: tls}[transport]
	}
	home := r.cfg.Topology.Pool(m.home)
	pools := []*topology.Pool{home}
	if b := r.cfg.Topology.BackupOf(home); b != nil {
		pools = append(pools, b)
	}
	var out []client.Server
	for _, p := range pools {
		var list []client.Server
		if r.sc.Client.Via == scenario.ViaFrontDoor {
			for _, ap := range top.Pools {
				if ap.FQDN == p.FQDN && ap.FrontDoor != nil {
					if a, err := netip.ParseAddrPort(pick(ap.FrontDoor.UDP, ap.FrontDoor.TCP, ap.FrontDoor.TLS)); err == nil {
						list = append(list, client.Server{Name: p.FQDN, Addr: a, Transport: transport})
					}
				}
			}
		} else {
			for _, f := range top.FrontEnds {
				if f.Pool == p.FQDN {
					if a, err := netip.ParseAddrPort(pick(f.UDP, f.TCP, f.TLS)); err == nil {
						list = append(list, client.Server{Addr: a, Transport: transport})
					}
				}
			}
			if len(list) > 0 { // spread first contacts over the pool, as DNS round robin does
				k := m.index % len(list)
				list = append(list[k:], list[:k]...)
			}
		}
		out = append(out, list...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadgen: pool %s offers no %s listener to sign in through (%s)", m.home, transport, r.sc.Client.Via)
	}
	return out, nil
}

// newClients creates every client (sockets bound, nothing sent).
func (r *run) newClients(top admin.Topology) error {
	if n := r.sc.Client.Sockets; n > 0 {
		p, err := client.NewPool(n, netip.Addr{}, nil, nil)
		if err != nil {
			return err
		}
		r.pool = p
	}
	sc := r.sc.Client
	for _, m := range r.members {
		servers, err := r.servers(top, m)
		if err != nil {
			return err
		}
		cfg := client.Config{
			AOR: m.user.URI(), Password: m.user.Password, Servers: servers,
			Expires: sc.Expires, KeepAlive: sc.KeepAlive, RequestTimeout: sc.RequestTimeout,
			Backoff:   client.Backoff{Min: sc.BackoffMin, Max: sc.BackoffMax},
			UserAgent: "fepool-load",
		}
		if sc.KeepAlive == 0 {
			cfg.KeepAlive = -1
		}
		if r.pool == nil {
			cfg.LocalIP = sourceOf(m.index)
		}
		opts := []client.Option{client.WithEvents(r.rec.callback(m.index))}
		if r.pool != nil {
			opts = append(opts, client.WithPool(r.pool))
		}
		c, err := client.New(cfg, opts...)
		if err != nil {
			if isFileLimit(err) {
				return fmt.Errorf("loadgen: out of file descriptors after %d clients with their own socket: raise the limit (ulimit -n) or share sockets (client.sockets in the scenario): %w", len(slices.DeleteFunc(slices.Clone(r.members), func(x *member) bool { return x.c == nil })), err)
			}
			return fmt.Errorf("loadgen: client %s: %w", m.user.AOR, err)
		}
		m.c = c
	}
	return nil
}

// clientsPerSource is how many clients (with sockets of their own) share a source address: well
// under the emulator's default per-IP connection limit (sip.limits.max_conns_per_ip, 2048), so
// that a large population over TCP is not refused as a flood from one host, nor one over UDP
// limited as one by sip.limits.per_source_rate. Clients sharing sockets (client.sockets) send
// from 127.0.0.1.
const clientsPerSource = 1000

// sourceOf is the source address of the i-th client: 127.1.0.1 for the first thousand,
// 127.1.0.2 for the next, and so on (Linux routes all of 127.0.0.0/8 to lo).
func sourceOf(i int) netip.Addr {
	n := i / clientsPerSource
	return netip.AddrFrom4([4]byte{127, 1, byte(n / 254), byte(n%254 + 1)})
}

func isFileLimit(err error) bool {
	return strings.Contains(err.Error(), "too many open files")
}

// closeClients signs every client out and releases its socket (once).
func (r *run) closeClients() {
	var wg sync.WaitGroup
	slots := make(chan struct{}, 256)
	for _, m := range r.members {
		if m.c == nil {
			continue
		}
		c := m.c
		m.c = nil
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			_ = c.Close()
		}()
	}
	wg.Wait()
	if r.pool != nil {
		r.pool.Close()
		r.pool = nil
	}
}

// ramp starts the clients on an open model: client k at its scheduled time, whatever the
// registrar does (a slow registrar cannot slow the schedule and hide its latency).
func (r *run) ramp(ctx context.Context) {
	n := len(r.members)
	total := r.sc.Clients
	if r.cfg.Clients > 0 {
		total = r.cfg.Clients
	}
	if total <= 0 {
		total = n * r.cfg.Shards
	}
	for k, m := range r.members {
		at := Schedule(m.index, total, r.sc.Rate, r.sc.RampDuration)
		if d := time.Until(r.start.Add(at)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		r.rec.started(m.index, at)
		if err := m.c.Start(); err != nil {
			r.log.Error().Err(err).Str("user", m.user.AOR).Msg("client did not start")
		}
		_ = k
	}
}

// Schedule is when client i of n starts, from the run's start: at rate per second, or spread
// evenly over ramp when it is set (the pacer of the open model; a pure function).
func Schedule(i, n int, rate float64, ramp time.Duration) time.Duration {
	if ramp > 0 && n > 0 {
		return time.Duration(float64(ramp) * float64(i) / float64(n))
	}
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(i) / rate * float64(time.Second))
}

// live calls the Status callback each second.
func (r *run) live(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if r.cfg.Status == nil {
				r.rec.tick()
				continue
			}
			st := r.rec.tick()
			st.Elapsed = time.Since(r.start)
			st.Population = len(r.members)
			st.Steps = len(r.sc.Steps)
			st.StepNo = int(r.stepNo.Load())
			st.Step, _ = r.step.Load().(string)
			r.cfg.Status(st)
		}
	}
}

// watch asks the emulator's admin API whether it is there every WatchEvery until ctx ends, and
// ends the run through gone when it went unanswered watchMisses times in a row. An emulator
// that answers unhealthy (a pool down) is there.
func (r *run) watch(ctx context.Context, gone context.CancelCauseFunc) {
	t := time.NewTicker(r.cfg.WatchEvery)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, max(r.cfg.WatchEvery, time.Second))
		_, err := r.cfg.Admin.Health(hctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			misses = 0
			continue
		}
		if misses++; misses < watchMisses {
			continue
		}
		err = fmt.Errorf("%w: its admin API stopped answering (%d checks in a row, the last at +%s): %v",
			ErrEmulator, misses, time.Since(r.start).Round(time.Second), err)
		gone(err)
		return
	}
}

// Errorf is a step failure.
func stepError(st scenario.Step, err error) error {
	return fmt.Errorf("step %d %q (line %d): %w", st.Index, st.Name, st.Line, err)
}

// steps carries out the timeline, in order.
func (r *run) steps(ctx context.Context) error {
	last := time.Duration(0)
	for _, st := range r.sc.Steps {
		at := last + st.After
		if st.HasAt {
			at = st.At
		}
		if err := sleepUntil(ctx, r.start.Add(at)); err != nil {
			return nil // the run's bound or an interrupt
		}
		r.stepNo.Store(int32(st.Index))
		r.step.Store(st.Name)
		t0 := time.Since(r.start)
		r.rec.step(record.Step{T: t0.Nanoseconds(), Index: st.Index, Name: st.Name, Action: st.Action, Disruptive: st.Disruptive()})
		err := r.do(ctx, st)
		took := time.Since(r.start) - t0
		last = t0 + took
		rs := record.Step{T: (t0 + took).Nanoseconds(), Index: st.Index, Name: st.Name, Action: st.Action, Duration: took.Nanoseconds()}
		switch {
		case err != nil && ctx.Err() != nil:
			// Cut short by the run's end, not failed: say why ("interrupted: ...", its bound).
			rs.Err = "cut short: " + r.stopReason(context.Cause(ctx))
		case err != nil:
			rs.Err = err.Error()
		}
		r.rec.step(rs)
		switch {
		case err == nil:
			r.log.Info().Int("step", st.Index).Str("name", st.Name).Dur("took", took).Msg("step done")
		case errors.Is(err, errWaitTimedOut):
			r.log.Warn().Int("step", st.Index).Str("name", st.Name).Err(err).Msg("step timed out: the run goes on")
		case ctx.Err() != nil:
			return nil
		default:
			return stepError(st, err)
		}
		if st.Action == scenario.End {
			return nil
		}
	}
	return nil
}

func sleepUntil(ctx context.Context, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

var errWaitTimedOut = errors.New("wait timed out")

// do carries out one step.
func (r *run) do(ctx context.Context, st scenario.Step) error {
	leader := r.cfg.Shard == 0
	api := func(f func(context.Context) error) error {
		if !leader {
			return nil // shard 0 drives the emulator; the others mark the step
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := f(actx); err != nil {
			return fmt.Errorf("%w: %v", ErrEmulator, err)
		}
		return nil
	}
	a := r.cfg.Admin
	switch st.Action {
	case scenario.CrashFE, scenario.StopFE, scenario.StartFE:
		action := strings.TrimSuffix(st.Action, "_fe")
		return api(func(ctx context.Context) error { _, err := a.FrontEndAction(ctx, st.Target, action); return err })
	case scenario.CrashPool, scenario.StopPool, scenario.StartPool:
		action := strings.TrimSuffix(st.Action, "_pool")
		return api(func(ctx context.Context) error { _, err := a.PoolAction(ctx, st.Target, action); return err })
	case scenario.BackEndDown, scenario.BackEndUp, scenario.Partition, scenario.Heal:
		action := strings.ReplaceAll(st.Action, "_", "-")
		return api(func(ctx context.Context) error { _, err := a.PoolAction(ctx, st.Target, action); return err })
	case scenario.FailOver:
		return api(func(ctx context.Context) error {
			_, err := a.FailOver(ctx, st.Pool, admin.FailOverRequest{DisasterMode: st.DisasterMode, Force: st.Force, SkipDataVerification: st.SkipDataVerification, WaitTime: st.WaitTime})
			return err
		})
	case scenario.FailBack:
		return api(func(ctx context.Context) error {
			_, err := a.FailBack(ctx, st.Pool, admin.FailBackRequest{WaitTime: st.WaitTime})
			return err
		})
	case scenario.Wait:
		return r.wait(ctx, st)
	case scenario.Hold:
		_ = sleepUntil(ctx, time.Now().Add(st.For))
		return nil
	case scenario.Contacts:
		r.contacts(ctx, st)
		return nil
	case scenario.End:
		return nil
	}
	return fmt.Errorf("unknown action %q", st.Action)
}

// wait polls the live counts until the condition holds or the timeout.
func (r *run) wait(ctx context.Context, st scenario.Step) error {
	deadline := time.Now().Add(st.Timeout)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		ok, have, want := r.rec.satisfied(st.Until, st.Pool)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			where := ""
			if st.Pool != "" {
				where = " at " + st.Pool
			}
			return fmt.Errorf("%w after %s: %d of %d clients %s%s", errWaitTimedOut, st.Timeout, have, want, strings.ReplaceAll(st.Until, "all_", ""), where)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// contacts has the first registered clients each add contacts (a persistent change), and
// records each answer.
func (r *run) contacts(ctx context.Context, st scenario.Step) {
	var picked []*member
	for _, m := range r.members {
		if len(picked) >= st.ContactClients {
			break
		}
		if m.c != nil && m.c.Status().State == client.Registered {
			picked = append(picked, m)
		}
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, 32)
	for _, m := range picked {
		for k := range st.ContactAdds {
			wg.Add(1)
			slots <- struct{}{}
			go func() {
				defer func() { <-slots; wg.Done() }()
				_, host, _ := strings.Cut(m.user.AOR, "@")
				uri := fmt.Sprintf("sip:contact%d-%d-%d@%s", st.Index, m.index, k, host)
				cctx, cancel := context.WithTimeout(ctx, r.sc.Client.RequestTimeout*2)
				err := m.c.AddContact(cctx, client.Contact{URI: uri, DisplayName: "load " + st.Name})
				cancel()
				code := 200
				var se *client.ServiceError
				switch {
				case errors.As(err, &se):
					code = se.Code
				case err != nil:
					code = 0
				}
				r.rec.contact(m.index, code)
			}()
		}
	}
	wg.Wait()
}

// RaiseFileLimit raises the open-file soft limit to the hard limit and returns both.
func RaiseFileLimit() (soft, hard uint64, err error) {
	return raiseFileLimit()
}

// ErrRealtimeRefused is SetRealtime's error when the kernel does not let the process take a
// real-time policy: it needs CAP_SYS_NICE (root has it) or an RLIMIT_RTPRIO of at least 1.
var ErrRealtimeRefused = errors.New("the kernel refused real-time scheduling (operation not permitted)")

// SetRealtime puts every thread of the process, and so every thread started later, under the
// real-time policy SCHED_RR at its lowest priority (1). A load process that shares its CPUs with
// the emulator otherwise waits behind the emulator's threads whenever both are busy: during a
// failover storm a datagram waited milliseconds on its socket before the load could read it
// (the own delay every summary reports). Under SCHED_RR the load runs as soon as something wakes
// it, ahead of every normal thread; the cost is the emulator's: it gets the CPU only when the
// load leaves it. The caller should leave the other processes a CPU (GOMAXPROCS below the CPU
// count): by default Linux keeps only 5% of each second for them otherwise. Linux only.
func SetRealtime() error { return setRealtime() }

// Hostname is the machine's name for the results header.
func Hostname() string {
	h, _ := os.Hostname()
	return h
}
