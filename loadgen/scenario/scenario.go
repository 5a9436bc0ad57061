// Package scenario is a load run's plan as data: the population (how many clients, whose users,
// how they sign in), the ramp, a timeline of steps (faults, cmdlets, waits, persistent changes)
// and the thresholds that judge the run. It loads strict YAML: unknown fields, unknown steps,
// bad durations and pools or Front Ends the topology lacks are errors naming the file and line,
// all reported before anything starts.
package scenario

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/fepool/fepool/loadgen/threshold"
	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/topology"
)

// Actions a step can take.
const (
	CrashFE     = "crash_fe"
	StopFE      = "stop_fe"
	StartFE     = "start_fe"
	CrashPool   = "crash_pool"
	StopPool    = "stop_pool"
	StartPool   = "start_pool"
	BackEndDown = "backend_down"
	BackEndUp   = "backend_up"
	Partition   = "partition"
	Heal        = "heal"
	FailOver    = "failover"
	FailBack    = "failback"
	Wait        = "wait"
	Contacts    = "contacts"
	Hold        = "hold"
	End         = "end"
)

// Conditions a wait step waits for.
const (
	UntilSignedIn = "all_signed_in" // every client registered (any mode)
	UntilRegular  = "all_regular"   // every client registered in regular mode
)

// Ways clients sign in.
const (
	ViaFrontEnds = "front_ends" // the home pool's Front Ends then its backup's, as DNS lists them
	ViaFrontDoor = "front_door" // the home pool's front door (a Director or a load balancer)
)

// Scenario is a validated plan.
type Scenario struct {
	Name        string
	Description string
	Source      string
	// Topology is the topology the scenario was validated against (the one it names, relative
	// to its file, or the embedded default, unless the caller gave one).
	Topology *topology.Topology
	// Clients is the population (0: every user of Pools); Pools selects whose users (empty:
	// every pool).
	Clients int
	Pools   []string
	// Ramp: clients start at Rate per second (RampDuration / Clients when set instead).
	Rate         float64
	RampDuration time.Duration
	Client       Client
	Steps        []Step
	Thresholds   []threshold.Threshold
	// MaxDuration bounds the whole run.
	MaxDuration time.Duration
}

// Client is how every simulated client behaves.
type Client struct {
	Transport      string // udp, tcp, tls
	Via            string // ViaFrontEnds or ViaFrontDoor
	Expires        time.Duration
	KeepAlive      time.Duration
	RequestTimeout time.Duration
	BackoffMin     time.Duration
	BackoffMax     time.Duration
	// Sockets: 0 gives each client its own socket (the realistic case); N shares N sockets.
	Sockets int
}

// Step is one point of the timeline.
type Step struct {
	Index  int    // 1-based
	Line   int    // in the scenario file
	Name   string // given, or "<index> <action> <target>"
	Action string
	// At is an absolute time since the run's start; After a delay since the previous step
	// ended (when neither is set: at once).
	At, After time.Duration
	HasAt     bool
	// Target is the Front End or pool of the simple actions.
	Target string
	// FailOver / FailBack parameters.
	Pool                 string
	DisasterMode, Force  bool
	SkipDataVerification bool
	WaitTime             string
	// Wait: Until a condition (registered with a Front End of Pool, when set), at most
	// Timeout; Hold: For.
	Until   string
	Timeout time.Duration
	For     time.Duration
	// Contacts: ContactClients clients each add ContactAdds contacts.
	ContactClients, ContactAdds int
}

// Disruptive reports whether the step opens a measurement window (it changes what the
// emulator does; waits, holds and contact changes do not).
func (s Step) Disruptive() bool {
	switch s.Action {
	case Wait, Hold, Contacts, End:
		return false
	}
	return true
}

// Defaults.
const (
	DefaultRate        = 1000
	DefaultMaxDuration = 2 * time.Hour
	DefaultWaitTimeout = 10 * time.Minute
)

// The file's shape.
type file struct {
	Name        string     `yaml:"name"`
	Topology    string     `yaml:"topology"`
	Description string     `yaml:"description"`
	Clients     *int       `yaml:"clients"`
	Users       fileUsers  `yaml:"users"`
	Ramp        fileRamp   `yaml:"ramp"`
	Client      fileClient `yaml:"client"`
	MaxDuration duration   `yaml:"max_duration"`
	Steps       []fileStep `yaml:"steps"`
	Thresholds  []string   `yaml:"thresholds"`
}

type fileUsers struct {
	Pools []string `yaml:"pools"`
}

type fileRamp struct {
	Rate     *float64 `yaml:"rate"`
	Duration duration `yaml:"duration"`
}

type fileClient struct {
	Transport      string      `yaml:"transport"`
	Via            string      `yaml:"via"`
	Expires        duration    `yaml:"expires"`
	KeepAlive      duration    `yaml:"keepalive"`
	RequestTimeout duration    `yaml:"request_timeout"`
	Backoff        fileBackoff `yaml:"backoff"`
	Sockets        *int        `yaml:"sockets"`
}

type fileBackoff struct {
	Min duration `yaml:"min"`
	Max duration `yaml:"max"`
}

type fileStep struct {
	Name        string        `yaml:"name"`
	At          duration      `yaml:"at"`
	After       duration      `yaml:"after"`
	CrashFE     string        `yaml:"crash_fe"`
	StopFE      string        `yaml:"stop_fe"`
	StartFE     string        `yaml:"start_fe"`
	CrashPool   string        `yaml:"crash_pool"`
	StopPool    string        `yaml:"stop_pool"`
	StartPool   string        `yaml:"start_pool"`
	BackEndDown string        `yaml:"backend_down"`
	BackEndUp   string        `yaml:"backend_up"`
	Partition   string        `yaml:"partition"`
	Heal        string        `yaml:"heal"`
	FailOver    *fileFailOver `yaml:"failover"`
	FailBack    *fileFailBack `yaml:"failback"`
	Wait        *fileWait     `yaml:"wait"`
	Contacts    *fileContacts `yaml:"contacts"`
	Hold        duration      `yaml:"hold"`
	End         *bool         `yaml:"end"`
}

type fileFailOver struct {
	Pool                 string `yaml:"pool"`
	DisasterMode         bool   `yaml:"disaster_mode"`
	Force                bool   `yaml:"force"`
	SkipDataVerification bool   `yaml:"skip_data_verification"`
	WaitTime             string `yaml:"wait_time"`
}

type fileFailBack struct {
	Pool     string `yaml:"pool"`
	WaitTime string `yaml:"wait_time"`
}

type fileWait struct {
	Until   string   `yaml:"until"`
	Pool    string   `yaml:"pool"`
	Timeout duration `yaml:"timeout"`
}

type fileContacts struct {
	Clients *int `yaml:"clients"`
	Add     *int `yaml:"add"`
}

// duration is a YAML duration kept raw, so a bad one is reported with its line.
type duration struct {
	raw string
	set bool
}

func (d *duration) UnmarshalYAML(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return err
	}
	d.raw, d.set = strings.TrimSpace(s), true
	return nil
}

// Load reads and validates a scenario file against a topology (nil: the one the scenario
// names, else the embedded default). A file beyond topology.MaxFileBytes is refused unread.
func Load(path string, top *topology.Topology) (*Scenario, error) {
	data, err := topology.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return Parse(path, data, top)
}

// Parse decodes and validates a scenario; name labels errors and anchors the topology path.
// Data beyond the bounds topology.ParseYAML checks is refused before it is decoded.
func Parse(name string, data []byte, top *topology.Topology) (*Scenario, error) {
	tree, err := topology.ParseYAML(name, data)
	if err != nil {
		return nil, err
	}
	var f file
	if err := topology.Decode(name, tree, &f); err != nil {
		return nil, err
	}
	if top == nil {
		if top, err = topologyOf(name, f.Topology); err != nil {
			return nil, err
		}
	}
	v := &validator{name: name, ast: tree, top: top}
	s := v.resolve(&f)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	s.Source, s.Topology = name, top
	return s, nil
}

// TopologyRef returns the topology a scenario names ("" when none, or when it does not parse).
func TopologyRef(data []byte) string {
	var f struct {
		Topology string `yaml:"topology"`
	}
	if _, err := topology.ParseYAML("", data); err != nil {
		return ""
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return ""
	}
	return strings.TrimSpace(f.Topology)
}

// topologyOf loads the topology a scenario names: a path relative to the scenario's file, or
// the embedded default when it names none.
func topologyOf(scenarioPath, ref string) (*topology.Topology, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" || ref == "default" {
		return topology.Default(), nil
	}
	if !filepath.IsAbs(ref) {
		ref = filepath.Join(filepath.Dir(scenarioPath), ref)
	}
	top, err := topology.Load(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: topology: %w", scenarioPath, err)
	}
	return top, nil
}

type validator struct {
	name string
	ast  *ast.File
	top  *topology.Topology
	errs []error
}

func (v *validator) fail(path string, format string, args ...any) {
	e := &topology.Error{File: v.name, Field: path, Msg: fmt.Sprintf(format, args...)}
	e.Line, e.Column = topology.Locate(v.ast, path)
	v.errs = append(v.errs, e)
}

func (v *validator) duration(path string, d duration, def, lo, hi time.Duration) time.Duration {
	if !d.set {
		return def
	}
	x, err := time.ParseDuration(d.raw)
	if err != nil {
		v.fail(path, "%q is not a duration (such as 30s, 5m)", d.raw)
		return def
	}
	if x < lo || x > hi {
		v.fail(path, "%s is out of range [%s, %s]", x, lo, hi)
		return def
	}
	return x
}

func (v *validator) pool(path, fqdn string) string {
	fqdn = strings.ToLower(strings.TrimSpace(fqdn))
	if v.top.Pool(fqdn) == nil {
		var names []string
		for _, p := range v.top.Pools {
			names = append(names, p.FQDN)
		}
		v.fail(path, "%q is not a pool of the topology (%s)", fqdn, strings.Join(names, ", "))
	}
	return fqdn
}

func (v *validator) resolve(f *file) *Scenario {
	s := &Scenario{Name: strings.TrimSpace(f.Name), Description: strings.TrimSpace(f.Description)}
	if s.Name == "" {
		v.fail("name", "is required")
	}
	if f.Clients != nil {
		if *f.Clients < 1 || *f.Clients > 1_000_000 {
			v.fail("clients", "%d is out of range [1, 1000000]", *f.Clients)
		}
		s.Clients = *f.Clients
	}
	for i, p := range f.Users.Pools {
		s.Pools = append(s.Pools, v.pool(fmt.Sprintf("users.pools[%d]", i), p))
	}
	s.Rate = DefaultRate
	if f.Ramp.Rate != nil {
		if *f.Ramp.Rate <= 0 || *f.Ramp.Rate > 1e6 {
			v.fail("ramp.rate", "%g is out of range (0, 1000000] clients per second", *f.Ramp.Rate)
		}
		s.Rate = *f.Ramp.Rate
	}
	s.RampDuration = v.duration("ramp.duration", f.Ramp.Duration, 0, 0, 24*time.Hour)
	if f.Ramp.Rate != nil && f.Ramp.Duration.set {
		v.fail("ramp", "give a rate or a duration, not both")
	}
	s.MaxDuration = v.duration("max_duration", f.MaxDuration, DefaultMaxDuration, time.Second, 30*24*time.Hour)

	c := &s.Client
	c.Transport = strings.ToLower(strings.TrimSpace(f.Client.Transport))
	switch c.Transport {
	case "":
		c.Transport = topology.UDP
	case topology.UDP, topology.TCP, topology.TLS:
	default:
		v.fail("client.transport", "%q is not udp, tcp or tls", f.Client.Transport)
	}
	c.Via = strings.ToLower(strings.TrimSpace(f.Client.Via))
	switch c.Via {
	case "":
		c.Via = ViaFrontEnds
	case ViaFrontEnds, ViaFrontDoor:
	default:
		v.fail("client.via", "%q is not front_ends or front_door", f.Client.Via)
	}
	c.Expires = v.duration("client.expires", f.Client.Expires, 600*time.Second, time.Second, 24*time.Hour)
	c.KeepAlive = v.duration("client.keepalive", f.Client.KeepAlive, 30*time.Second, 0, time.Hour)
	c.RequestTimeout = v.duration("client.request_timeout", f.Client.RequestTimeout, 8*time.Second, 100*time.Millisecond, 5*time.Minute)
	c.BackoffMin = v.duration("client.backoff.min", f.Client.Backoff.Min, time.Second, time.Millisecond, time.Hour)
	c.BackoffMax = v.duration("client.backoff.max", f.Client.Backoff.Max, 60*time.Second, time.Millisecond, 24*time.Hour)
	if c.BackoffMin > c.BackoffMax {
		v.fail("client.backoff", "min %s is above max %s", c.BackoffMin, c.BackoffMax)
	}
	if f.Client.Sockets != nil {
		if *f.Client.Sockets < 0 || *f.Client.Sockets > 65536 {
			v.fail("client.sockets", "%d is out of range [0, 65536]", *f.Client.Sockets)
		}
		c.Sockets = *f.Client.Sockets
	}

	var at time.Duration
	for i, fs := range f.Steps {
		st := v.step(i, fs)
		if st.HasAt {
			if st.At < at {
				v.fail(fmt.Sprintf("steps[%d].at", i), "%s is before the previous timed step (%s): steps run in order", st.At, at)
			}
			at = st.At
		}
		s.Steps = append(s.Steps, st)
	}
	ts, err := threshold.ParseAll(f.Thresholds)
	if err != nil {
		for i, src := range f.Thresholds {
			if _, err := threshold.Parse(src); err != nil {
				v.fail(fmt.Sprintf("thresholds[%d]", i), "%v", err)
			}
		}
	}
	s.Thresholds = ts
	for i, t := range ts {
		if t.Step == "" {
			continue
		}
		path := fmt.Sprintf("thresholds[%d]", i)
		var named *Step
		for k := range s.Steps {
			if st := &s.Steps[k]; st.Name == t.Step || fmt.Sprint(st.Index) == t.Step {
				named = st
				break
			}
		}
		// A threshold on a step that measures nothing would pass on nothing (a wait opens no
		// measurement window: never_recovered[signed in] is always 0).
		switch {
		case named == nil:
			v.fail(path, "no step named %q", t.Step)
		case t.ContactStep() && named.Action != Contacts:
			v.fail(path, "%s counts the changes of a contacts step; step %q is a %s step", t.Metric, t.Step, named.Action)
		case !t.ContactStep() && !named.Disruptive():
			v.fail(path, "%s[%s] would measure nothing: step %q is a %s step, which opens no measurement window (name a step that changes the emulator: crash_fe, stop_fe, start_fe, crash_pool, stop_pool, start_pool, backend_down, backend_up, partition, heal, failover, failback)", t.Metric, t.Step, t.Step, named.Action)
		}
	}
	return s
}

func (v *validator) step(i int, fs fileStep) Step {
	path := fmt.Sprintf("steps[%d]", i)
	st := Step{Index: i + 1, Name: strings.TrimSpace(fs.Name)}
	st.Line, _ = topology.Locate(v.ast, path)
	if fs.At.set && fs.After.set {
		v.fail(path, "give at or after, not both")
	}
	st.At, st.HasAt = v.duration(path+".at", fs.At, 0, 0, 30*24*time.Hour), fs.At.set
	st.After = v.duration(path+".after", fs.After, 0, 0, 30*24*time.Hour)
	var actions []string
	simple := func(action, target string) {
		if target == "" {
			return
		}
		actions = append(actions, action)
		st.Action, st.Target = action, strings.ToLower(strings.TrimSpace(target))
		key := path + "." + action
		switch action {
		case CrashFE, StopFE, StartFE:
			if v.top.FrontEnd(st.Target) == nil {
				v.fail(key, "%q is not a Front End of the topology", st.Target)
			}
		default:
			v.pool(key, st.Target)
		}
	}
	simple(CrashFE, fs.CrashFE)
	simple(StopFE, fs.StopFE)
	simple(StartFE, fs.StartFE)
	simple(CrashPool, fs.CrashPool)
	simple(StopPool, fs.StopPool)
	simple(StartPool, fs.StartPool)
	simple(BackEndDown, fs.BackEndDown)
	simple(BackEndUp, fs.BackEndUp)
	simple(Partition, fs.Partition)
	simple(Heal, fs.Heal)
	if fo := fs.FailOver; fo != nil {
		actions = append(actions, FailOver)
		st.Action, st.Pool = FailOver, v.pool(path+".failover.pool", fo.Pool)
		st.DisasterMode, st.Force, st.SkipDataVerification, st.WaitTime = fo.DisasterMode, fo.Force, fo.SkipDataVerification, strings.TrimSpace(fo.WaitTime)
		v.waitTime(path+".failover.wait_time", st.WaitTime)
		if st.Pool != "" && v.top.BackupOf(v.top.Pool(st.Pool)) == nil && v.top.Pool(st.Pool) != nil {
			v.fail(path+".failover.pool", "%s has no backup pool: it cannot fail over", st.Pool)
		}
	}
	if fb := fs.FailBack; fb != nil {
		actions = append(actions, FailBack)
		st.Action, st.Pool, st.WaitTime = FailBack, v.pool(path+".failback.pool", fb.Pool), strings.TrimSpace(fb.WaitTime)
		v.waitTime(path+".failback.wait_time", st.WaitTime)
	}
	if w := fs.Wait; w != nil {
		actions = append(actions, Wait)
		st.Action = Wait
		st.Until = strings.ToLower(strings.TrimSpace(w.Until))
		if st.Until != UntilSignedIn && st.Until != UntilRegular {
			v.fail(path+".wait.until", "%q is not all_signed_in or all_regular", w.Until)
		}
		st.Timeout = v.duration(path+".wait.timeout", w.Timeout, DefaultWaitTimeout, time.Second, 24*time.Hour)
		if strings.TrimSpace(w.Pool) != "" {
			st.Pool = v.pool(path+".wait.pool", w.Pool)
		}
	}
	if c := fs.Contacts; c != nil {
		actions = append(actions, Contacts)
		st.Action, st.ContactClients, st.ContactAdds = Contacts, 100, 1
		if c.Clients != nil {
			st.ContactClients = *c.Clients
		}
		if c.Add != nil {
			st.ContactAdds = *c.Add
		}
		if st.ContactClients < 1 || st.ContactAdds < 1 || st.ContactAdds > 100 {
			v.fail(path+".contacts", "clients must be at least 1 and add between 1 and 100")
		}
	}
	if fs.Hold.set {
		actions = append(actions, Hold)
		st.Action, st.For = Hold, v.duration(path+".hold", fs.Hold, 0, 0, 30*24*time.Hour)
	}
	if fs.End != nil {
		actions = append(actions, End)
		st.Action = End
	}
	switch len(actions) {
	case 0:
		v.fail(path, "says when but not what: give one action (crash_fe, stop_fe, start_fe, crash_pool, stop_pool, start_pool, backend_down, backend_up, partition, heal, failover, failback, wait, contacts, hold, end)")
	case 1:
	default:
		v.fail(path, "has %d actions (%s): one per step", len(actions), strings.Join(actions, ", "))
	}
	if st.Name == "" {
		st.Name = fmt.Sprintf("%d %s", st.Index, st.Action)
		if t := st.Target + st.Pool; t != "" {
			st.Name += " " + t
		}
	}
	return st
}

func (v *validator) waitTime(path, s string) {
	if s == "" {
		return
	}
	if _, err := admin.ParseWaitTime(s); err != nil {
		v.fail(path, "%v", err)
	}
}
