package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/fepool/fepool/registrar"
	"github.com/fepool/fepool/registrar/frontend"
	"github.com/fepool/fepool/registrar/topology"
)

type logFlags struct {
	level, format string
}

func (l *logFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	c.Flags().StringVar(&l.format, "log-format", "json", "log format: json (one zerolog JSON event per line) or console")
}

func (l *logFlags) logger(w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(l.level)
	if err != nil || l.level == "" {
		return zerolog.Nop(), withCode(exitUsage, fmt.Errorf("--log-level %q: use debug, info, warn or error", l.level))
	}
	switch l.format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), withCode(exitUsage, fmt.Errorf("--log-format %q: use json or console", l.format))
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func serveCmd(e env) *cobra.Command {
	var (
		config, adminListen, adminToken, stateFile string
		check, trace                               bool
		logs                                       logFlags
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the emulator: every Front End, front door and the admin API",
		Long: `Run every pool of the topology: each Front End is a SIP registrar (UDP, TCP, TLS) on its own
loopback address, each pool's front door redirects or proxies to the user's registrar, and the
admin API answers the cmdlets. Without --config the embedded default topology runs: pool-a
(Front Ends 127.0.1.1-3) and pool-b (127.0.2.1-3), paired, front doors 127.0.1.100 and
127.0.2.100 on port 5060 (proxy mode), users user00000..user19999@contoso.com, password secret,
admin API on 127.0.0.1:8060.

The admin token comes from --admin-token, FEPOOL_ADMIN_TOKEN, the topology, or is generated; it
is printed at start and written with the API address to a state file that 'fepool ctl' reads.
Stop with Ctrl-C (SIGINT) or SIGTERM.`,
		Example: `  fepool serve
  fepool serve --config configs/default.yaml --log-format console
  fepool serve --config my.yaml --check`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			top, err := topology.Load(config)
			if err != nil {
				return withCode(exitConfig, err)
			}
			if check {
				printTopology(e.stdout, top)
				return nil
			}
			log, err := logs.logger(e.stderr)
			if err != nil {
				return err
			}
			if trace {
				sip.SIPDebug = true
			}
			frontend.SetSipgoDefaultLogger(log, trace)
			if adminToken == "" {
				adminToken = e.getenv("FEPOOL_ADMIN_TOKEN")
			}
			r, err := registrar.New(registrar.Config{Topology: top, AdminListen: adminListen, AdminToken: adminToken, Trace: trace}, registrar.WithLogger(log))
			if err != nil {
				return err
			}
			if err := r.Start(); err != nil {
				return err
			}
			url := "http://" + r.AdminAddr().String()
			if stateFile == "" {
				stateFile = defaultStateFile(r.AdminAddr().String())
			}
			if err := writeState(stateFile, adminState{URL: url, Token: r.Token(), PID: os.Getpid()}); err != nil {
				log.Warn().Err(err).Msg("cannot write the admin state file; pass --admin and --token to fepool ctl")
			} else {
				defer os.Remove(stateFile)
			}
			log.Info().Str("url", url).Str("token", r.Token()).Str("stateFile", stateFile).Msg("admin API listening")
			<-cmd.Context().Done()
			log.Info().Msg("signal received, shutting down")
			r.Close()
			return nil
		},
	}
	c.Flags().StringVarP(&config, "config", "c", "", "topology file (default: the embedded default topology)")
	c.Flags().BoolVar(&check, "check", false, "validate the topology, print it resolved, and exit")
	c.Flags().StringVar(&adminListen, "admin-listen", "", "admin API address, overriding the topology (loopback; port 0 picks one)")
	c.Flags().StringVar(&adminToken, "admin-token", "", "admin API bearer token (default: FEPOOL_ADMIN_TOKEN, the topology's, or generated)")
	c.Flags().StringVar(&stateFile, "state-file", "", "where to write the admin URL and token for fepool ctl (default: in the temp dir, per admin address)")
	c.Flags().BoolVar(&trace, "sip-trace", false, "log every SIP message sent and received (at debug level)")
	logs.add(c)
	return c
}

// adminState is what serve leaves for ctl.
type adminState struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
}

func defaultStateFile(adminAddr string) string {
	name := "admin-" + strings.NewReplacer(":", "-", "[", "", "]", "").Replace(adminAddr) + ".json"
	return filepath.Join(os.TempDir(), fmt.Sprintf("fepool-%d", os.Getuid()), name)
}

func writeState(path string, s adminState) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readState(path string) (adminState, error) {
	var s adminState
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	if s.Token == "" {
		return s, errors.New(path + ": no token")
	}
	return s, nil
}

// printTopology prints a resolved topology for --check.
func printTopology(w io.Writer, t *topology.Topology) {
	fmt.Fprintf(w, "Topology %s: valid\n", t.Source)
	fmt.Fprintf(w, "Domain %s, digest realm %q (%s), %d users\n\n", t.Domain, t.Realm, strings.Join(t.SIP.DigestAlgorithms, ", "), t.Users.Count())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tEDITION\tBACKUP\tRESILIENCY TIMER\tBACK END\tROUTING GROUPS\tUSERS")
	for _, p := range t.Pools {
		timer := "-"
		if p.Backup != "" {
			timer = p.ResiliencyTimer.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", p.FQDN, p.Edition, orDash(p.Backup), timer, p.BackEndPath, p.RoutingGroups, t.Users.CountIn(p.FQDN))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTENER\tROLE\tADDRESS\tUDP\tTCP\tTLS")
	for _, p := range t.Pools {
		for _, fe := range p.FrontEnds {
			fmt.Fprintf(tw, "%s\tFront End %d of %s\t%s\t%s\t%s\t%s\n", fe.FQDN, fe.Index+1, p.FQDN, fe.Address, port(fe.Ports.UDP), port(fe.Ports.TCP), port(fe.Ports.TLS))
		}
		if fd := p.FrontDoor; fd != nil {
			fmt.Fprintf(tw, "%s\tfront door (%s)\t%s\t%s\t%s\t%s\n", fd.FQDN, fd.Mode, fd.Address, port(fd.Ports.UDP), port(fd.Ports.TCP), port(fd.Ports.TLS))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Registration expiry %s..%s (default %s), at most %d endpoints per user\n", t.SIP.ExpiresMin, t.SIP.ExpiresMax, t.SIP.ExpiresDefault, t.SIP.MaxEndpoints)
	fmt.Fprintf(w, "Timers: failure detection %s, quorum-loss shutdown %s, nonce lifetime %s, TCP idle %s, Retry-After %s\n",
		t.Fabric.FailureDetection, t.Fabric.QuorumLossShutdown, t.SIP.NonceLifetime, t.SIP.TCPIdleTimeout, t.SIP.RetryAfter)
	l := t.SIP.Limits
	limit := func(n int, unit string) string {
		if n == 0 {
			return "unlimited " + unit
		}
		return fmt.Sprintf("%d %s", n, unit)
	}
	fmt.Fprintf(w, "Limits: %s in flight per listener, %s, %s, a TCP/TLS message within %s, %d header fields of up to %d bytes, URIs of up to %d bytes, bodies of up to %d bytes\n",
		limit(l.MaxInFlight, "requests"), limit(l.PerSourceRate, "UDP messages/s per source IP"), limit(l.MaxConnsPerIP, "TCP/TLS connections per IP"),
		l.MessageTimeout, l.MaxHeaders, l.MaxHeaderBytes, l.MaxURIBytes, l.MaxBodyBytes)
	if t.SIP.RevealUnknownUsers {
		fmt.Fprintln(w, "Unknown users: answered 404 with ms-diagnostics 1003 (reveals which users exist)")
	} else {
		fmt.Fprintln(w, "Unknown users: answered as a wrong password (a fresh 401)")
	}
	pr := t.Pairing
	fmt.Fprintf(w, "Pairing: heartbeat %s, before the resiliency timer answer %s, failover wait %s, failback wait %s, failback pace %d users per %s, survivable mode after a Back End outage of %s\n",
		pr.Heartbeat, pr.BeforeTimer, pr.FailoverWait, pr.FailbackWait, pr.FailbackUsers, pr.FailbackPer, pr.SurvivableAfter)
	fmt.Fprintf(w, "Admin API %s\n", t.Admin.Listen)
}

func port(p int) string {
	switch p {
	case 0:
		return "-"
	case topology.PortEphemeral:
		return "any"
	}
	return fmt.Sprint(p)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
