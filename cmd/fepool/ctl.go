package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fepool/fepool/registrar/admin"
	"github.com/fepool/fepool/registrar/eventlog"
)

type ctlOpts struct {
	url, token string
	json       bool
}

func ctlCmd(e env) *cobra.Command {
	o := &ctlOpts{}
	c := &cobra.Command{
		Use:   "ctl CMDLET [-Parameter value ...]",
		Short: "Call the emulator's admin API with Lync cmdlet names",
		Long: `ctl calls a running 'fepool serve' through its admin API. Commands carry the Lync cmdlet
names and parameters, written as in PowerShell or as ordinary flags, in any letter case:

  fepool ctl Get-CsUserPoolInfo -Identity sip:user00042@contoso.com
  fepool ctl get-cspoolfabricstate --poolfqdn pool-a.contoso.com -Verbose
  fepool ctl Reset-CsPoolRegistrarState -PoolFqdn pool-a.contoso.com -ResetType QuorumLossRecovery

Short aliases exist for each (userinfo, fabric, reset, frontends, pools, start, stop, crash,
regs, events, failover, failback, backup, readiness, contacts); whole pools fail with
pool-crash, pool-stop, pool-start, backend-down, backend-up, partition and heal. Output is a
Lync-like property list, or JSON with --json.

The API address and token come from --admin/--token, FEPOOL_ADMIN/FEPOOL_ADMIN_TOKEN, or the state
file 'fepool serve' writes for its admin address.`,
	}
	c.PersistentFlags().StringVar(&o.url, "admin", "", "admin API URL (default: FEPOOL_ADMIN or http://127.0.0.1:8060)")
	c.PersistentFlags().StringVar(&o.token, "token", "", "admin API bearer token (default: FEPOOL_ADMIN_TOKEN or the serve state file)")
	c.PersistentFlags().BoolVar(&o.json, "json", false, "print the API's JSON instead of a property list")

	add := func(sub *cobra.Command) {
		sub.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
			return pflag.NormalizedName(strings.ToLower(name))
		})
		c.AddCommand(sub)
	}
	client := func() (*admin.Client, error) { return o.client(e) }

	var identity string
	userInfo := &cobra.Command{
		Use: "Get-CsUserPoolInfo -Identity SIP-URI", Aliases: []string{"userinfo", "poolinfo"},
		Short: "Show a user's home pool, backup pool and registrars in preferred order",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := required("Identity", identity, args)
			if err != nil {
				return err
			}
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.UserPoolInfo(cmd.Context(), id)
			return o.print(e.stdout, v, err, func(w io.Writer) {
				props(w,
					"Identity", v.Identity,
					"PrimaryPoolFqdn", v.PrimaryPoolFqdn,
					"BackupPoolFqdn", v.BackupPoolFqdn,
					"UserServicesPoolFqdn", v.UserServicesPoolFqdn,
					"PrimaryPoolPrimaryRegistrar", v.PrimaryPoolPrimaryRegistrar,
					"PrimaryPoolBackupRegistrars", list(v.PrimaryPoolBackupRegistrars),
					"PrimaryPoolMachinesInPreferredOrder", list(v.PrimaryPoolMachinesInPreferredOrder),
					"BackupPoolPrimaryRegistrar", v.BackupPoolPrimaryRegistrar,
					"BackupPoolBackupRegistrars", list(v.BackupPoolBackupRegistrars),
					"BackupPoolMachinesInPreferredOrder", list(v.BackupPoolMachinesInPreferredOrder),
					"RoutingGroup", fmt.Sprint(v.RoutingGroup),
					"RoutingGroupId", v.RoutingGroupId,
					"RegisteredAtPoolFqdn", v.RegisteredAtPoolFqdn,
					"Mode", v.Mode,
					"DisasterRecoveryState", v.DisasterRecoveryState,
				)
			})
		},
	}
	userInfo.Flags().StringVar(&identity, "Identity", "", "the user's SIP address, such as sip:user00042@contoso.com")
	add(userInfo)

	var fabricPool string
	var verbose bool
	fabricCmd := &cobra.Command{
		Use: "Get-CsPoolFabricState -PoolFqdn POOL [-Verbose]", Aliases: []string{"fabric"},
		Short: "Show every routing group of a pool with its primary and secondaries",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := required("PoolFqdn", fabricPool, args)
			if err != nil {
				return err
			}
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.FabricState(cmd.Context(), p, verbose)
			return o.print(e.stdout, v, err, func(w io.Writer) {
				props(w, "PoolFqdn", v.PoolFqdn, "State", v.State, "RoutingGroups", fmt.Sprint(len(v.RoutingGroups)), "WantedReplicas", fmt.Sprint(v.WantedReplicas))
				fmt.Fprintln(w)
				rgTable(w, v.RoutingGroups)
				if verbose {
					fmt.Fprintf(w, "\nRouting groups with missing replicas: %d\n", len(v.MissingReplicas))
					if len(v.MissingReplicas) > 0 {
						rgTable(w, v.MissingReplicas)
					}
				}
			})
		},
	}
	fabricCmd.Flags().StringVar(&fabricPool, "PoolFqdn", "", "the pool's FQDN")
	fabricCmd.Flags().BoolVar(&verbose, "Verbose", false, "also list routing groups with missing replicas")
	add(fabricCmd)

	var resetPool, resetType, machine string
	resetCmd := &cobra.Command{
		Use: "Reset-CsPoolRegistrarState -PoolFqdn POOL [-ResetType TYPE] [-MachineFqdn FE]", Aliases: []string{"reset"},
		Short: "Reset a pool's registrar state (ServiceReset, QuorumLossRecovery, FullReset, MachineStateRemoved)",
		Long: `Reset-CsPoolRegistrarState, as in Lync:
  ServiceReset (default)  place routing groups again evenly over the running Front Ends,
                          registrations kept (on a stopped pool: forget the placement)
  QuorumLossRecovery      start a pool stuck in Starting (pool-level quorum must hold), or
                          re-place routing groups that lost every replica (their registrations
                          are lost)
  FullReset               ServiceReset that also discards every registration
  MachineStateRemoved     drop -MachineFqdn (which must not run) from the fabric state`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := required("PoolFqdn", resetPool, args)
			if err != nil {
				return err
			}
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.ResetRegistrarState(cmd.Context(), p, admin.ResetRequest{ResetType: resetType, MachineFqdn: machine})
			return o.print(e.stdout, v, err, func(w io.Writer) {
				props(w, "PoolFqdn", v.PoolFqdn, "ResetType", v.ResetType, "Result", v.Message)
			})
		},
	}
	resetCmd.Flags().StringVar(&resetPool, "PoolFqdn", "", "the pool's FQDN")
	resetCmd.Flags().StringVar(&resetType, "ResetType", "ServiceReset", "ServiceReset, QuorumLossRecovery, FullReset or MachineStateRemoved")
	resetCmd.Flags().StringVar(&machine, "MachineFqdn", "", "the Front End to drop, with MachineStateRemoved")
	add(resetCmd)

	var poolIdentity string
	poolsCmd := &cobra.Command{
		Use: "Get-CsPool [-Identity POOL]", Aliases: []string{"pools"},
		Short: "Show pools: fabric state, quorum, Front Ends, registered users",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				poolIdentity = args[0]
			}
			cl, err := client()
			if err != nil {
				return err
			}
			pools, err := cl.Pools(cmd.Context())
			if err == nil && poolIdentity != "" {
				var keep []admin.Pool
				for _, p := range pools {
					if strings.EqualFold(p.FQDN, poolIdentity) {
						keep = append(keep, p)
					}
				}
				if keep == nil {
					err = &admin.APIError{Status: 404, Message: fmt.Sprintf("no pool %q in the topology", poolIdentity)}
				}
				pools = keep
			}
			return o.print(e.stdout, pools, err, func(w io.Writer) {
				for i, p := range pools {
					if i > 0 {
						fmt.Fprintln(w)
					}
					poolProps(w, p)
				}
			})
		},
	}
	poolsCmd.Flags().StringVar(&poolIdentity, "Identity", "", "only this pool")
	add(poolsCmd)

	var computerPool string
	fesCmd := &cobra.Command{
		Use: "Get-CsComputer [-Pool POOL]", Aliases: []string{"frontends", "fe"},
		Short: "List Front Ends in topology order (the first servers first) with state and addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			fes, err := cl.FrontEnds(cmd.Context())
			if computerPool != "" {
				var keep []admin.FrontEnd
				for _, f := range fes {
					if strings.EqualFold(f.Pool, computerPool) {
						keep = append(keep, f)
					}
				}
				fes = keep
			}
			return o.print(e.stdout, fes, err, func(w io.Writer) { feTable(w, fes) })
		},
	}
	fesCmd.Flags().StringVar(&computerPool, "Pool", "", "only this pool's Front Ends")
	add(fesCmd)

	for _, a := range []struct{ name, alias, short string }{
		{"Start-CsWindowsService", "start", "Start a Front End's services (it rejoins its pool's fabric)"},
		{"Stop-CsWindowsService", "stop", "Stop a Front End gracefully (its routing groups are handed over first)"},
		{"Invoke-CsFrontEndCrash", "crash", "Crash a Front End: connections reset, memory lost, the fabric notices after its detection delay"},
	} {
		var computer string
		action := a.alias
		cmd := &cobra.Command{
			Use: a.name + " -ComputerName FE", Aliases: []string{a.alias},
			Short: a.short,
			Args:  cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				name, err := required("ComputerName", computer, args)
				if err != nil {
					return err
				}
				cl, err := client()
				if err != nil {
					return err
				}
				v, err := cl.FrontEndAction(cmd.Context(), name, action)
				return o.print(e.stdout, v, err, func(w io.Writer) { feTable(w, []admin.FrontEnd{v}) })
			},
		}
		cmd.Flags().StringVar(&computer, "ComputerName", "", "the Front End's FQDN, such as fe01.pool-a.contoso.com")
		add(cmd)
	}

	var regIdentity string
	regsCmd := &cobra.Command{
		Use: "Get-CsUserRegistrations -Identity SIP-URI", Aliases: []string{"regs", "registrations"},
		Short: "Show a user's registered endpoints as held by their registrar",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := required("Identity", regIdentity, args)
			if err != nil {
				return err
			}
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.Registrations(cmd.Context(), id)
			return o.print(e.stdout, v, err, func(w io.Writer) {
				props(w, "Identity", v.Identity, "Pool", v.Pool, "RoutingGroup", fmt.Sprint(v.RoutingGroup), "Registrar", v.Registrar, "Endpoints", fmt.Sprint(len(v.Bindings)))
				for _, b := range v.Bindings {
					fmt.Fprintln(w)
					props(w, "Contact", b.Contact, "Instance", b.Instance, "ExpiresIn", fmt.Sprintf("%ds", b.ExpiresIn),
						"Flow", b.Transport+" from "+b.Source, "CallId", b.CallID, "CSeq", fmt.Sprint(b.CSeq),
						"UserAgent", b.UserAgent, "Path", list(b.Path), "Registered", b.Registered.Format(time.RFC3339))
				}
			})
		},
	}
	regsCmd.Flags().StringVar(&regIdentity, "Identity", "", "the user's SIP address")
	add(regsCmd)

	add(&cobra.Command{
		Use: "topology", Short: "Show the running topology with bound addresses", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.Topology(cmd.Context())
			return o.print(e.stdout, v, err, func(w io.Writer) {
				props(w, "Source", v.Source, "Domain", v.Domain, "Realm", v.Realm, "Users", fmt.Sprint(v.Users), "AdminAPI", v.Admin)
				fmt.Fprintln(w)
				feTable(w, v.FrontEnds)
			})
		},
	})

	var follow bool
	var since uint64
	eventsCmd := &cobra.Command{
		Use: "events [--follow] [--since N]", Aliases: []string{"Get-CsEvents"},
		Short: "Show the event log (Lync event IDs); --follow streams new events until Ctrl-C",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			show := func(ev eventlog.Event) error {
				if o.json {
					b, _ := json.Marshal(ev)
					_, err := fmt.Fprintln(e.stdout, string(b))
					return err
				}
				_, err := fmt.Fprintln(e.stdout, eventLine(ev))
				return err
			}
			if follow {
				return apiErr(cl.FollowEvents(cmd.Context(), since, show))
			}
			evs, err := cl.Events(cmd.Context(), since)
			if err != nil {
				return apiErr(err)
			}
			for _, ev := range evs {
				if err := show(ev); err != nil {
					return err
				}
			}
			return nil
		},
	}
	eventsCmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream new events until interrupted")
	eventsCmd.Flags().Uint64Var(&since, "since", 0, "only events after this sequence number")
	add(eventsCmd)

	add(&cobra.Command{
		Use: "health", Short: "Call /healthz: exit 0 when every pool is started", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			h, err := cl.Health(cmd.Context())
			if err := o.print(e.stdout, h, err, func(w io.Writer) { props(w, "Healthy", fmt.Sprint(h.OK), "Status", h.Status) }); err != nil {
				return err
			}
			if !h.OK {
				return withCode(exitError, errors.New("not healthy: "+h.Status))
			}
			return nil
		},
	})
	drCommands(o, e, add, client)
	return c
}

// client resolves the API address and token: flags, then environment, then serve's state file.
func (o *ctlOpts) client(e env) (*admin.Client, error) {
	url, token := o.url, o.token
	if url == "" {
		url = e.getenv("FEPOOL_ADMIN")
	}
	if url == "" {
		url = "http://127.0.0.1:8060"
	}
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	if token == "" {
		token = e.getenv("FEPOOL_ADMIN_TOKEN")
	}
	if token == "" {
		addr := strings.TrimSuffix(strings.SplitN(url, "://", 2)[1], "/")
		s, err := readState(defaultStateFile(addr))
		if err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("no admin token: pass --token or set FEPOOL_ADMIN_TOKEN (fepool serve prints it at start); no state file for %s (%v)", addr, err))
		}
		token = s.Token
	}
	return admin.NewClient(url, token), nil
}

func required(name, flag string, args []string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if len(args) == 1 {
		return args[0], nil
	}
	return "", withCode(exitUsage, fmt.Errorf("-%s is required", name))
}

// print writes v as JSON (--json) or with human, or returns the API error with its exit code.
func (o *ctlOpts) print(w io.Writer, v any, err error, human func(io.Writer)) error {
	if err != nil {
		return apiErr(err)
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(w)
	return nil
}

func apiErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *admin.APIError
	if errors.As(err, &ae) {
		return withCode(exitAPIError, err)
	}
	if errors.Is(err, admin.ErrUnreachable) {
		return withCode(exitError, fmt.Errorf("%w (is 'fepool serve' running?)", err))
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// props prints name/value pairs as PowerShell's Format-List does.
func props(w io.Writer, kv ...string) {
	width := 0
	for i := 0; i < len(kv); i += 2 {
		width = max(width, len(kv[i]))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(w, "%-*s : %s\n", width, kv[i], kv[i+1])
	}
}

// list formats a list as PowerShell shows one: {a, b}.
func list(items []string) string { return "{" + strings.Join(items, ", ") + "}" }

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func rgTable(w io.Writer, rgs []admin.RoutingGroup) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RG\tROUTING GROUP ID\tPRIMARY\tSECONDARIES\tREGISTERED")
	for _, g := range rgs {
		primary := g.Primary
		if primary == "" {
			primary = "(none: users get 503)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\n", g.Index, g.ID, primary, list(g.Secondaries), g.Users)
	}
	tw.Flush()
}

func feTable(w io.Writer, fes []admin.FrontEnd) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FRONT END\tPOOL\tSTATE\tSINCE\tUDP\tTCP\tTLS\tPRIMARY RGS\tREPLICAS\tTCP CONNS")
	for _, f := range fes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", f.FQDN, f.Pool, f.State, f.Since.Format(time.TimeOnly),
			orDash(f.UDP), orDash(f.TCP), orDash(f.TLS), f.Primaries, f.Replicas, f.Connections)
	}
	tw.Flush()
}

func eventLine(ev eventlog.Event) string {
	id := "     "
	if ev.EventID != 0 {
		id = fmt.Sprint(ev.EventID)
	}
	where := ev.Pool
	if ev.FrontEnd != "" {
		where = ev.FrontEnd
	}
	if ev.RoutingGroup != nil {
		where += fmt.Sprintf(" rg %d", *ev.RoutingGroup)
	}
	return fmt.Sprintf("%5d %s %s %-28s %-34s %s", ev.Seq, ev.Time.Format("15:04:05.000"), id, ev.Kind, where, ev.Message)
}
