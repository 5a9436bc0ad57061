package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fepool/fepool/registrar/admin"
)

// drCommands adds the pairing and disaster-recovery cmdlets and the pool-level failures.
func drCommands(o *ctlOpts, e env, add func(*cobra.Command), client func() (*admin.Client, error)) {
	var fo admin.FailOverRequest
	var foPool string
	var foConfirm, foWait bool
	failover := &cobra.Command{
		Use:     "Invoke-CsPoolFailOver -PoolFqdn POOL [-DisasterMode] [-WaitTime T] [-Force] [-SkipDataVerification] [-FlushStorageService] [-WhatIf] [-Confirm]",
		Aliases: []string{"failover"},
		Short:   "Fail a pool's users over to its backup pool",
		Long: `Invoke-CsPoolFailOver, as in Lync: the pool's users get full service (regular mode) from its
backup pool. Users are never rehomed: Get-CsUserPoolInfo keeps their home pool.

Without -DisasterMode the failover is planned: the pool must be reachable, its Back End data is
synced to the backup pool, users still signed in at home are signed out (registration-notify) and
sign in at the backup in resiliency mode until the failover completes after -WaitTime (default
from the topology, 15s). With -DisasterMode nothing is synced and it completes at once.

  -WaitTime      a duration (90s), a TimeSpan (00:01:30) or seconds (90)
  -WhatIf        say what would happen, change nothing
  -Confirm       ask before doing it (-Force never asks)
  --wait         follow the pool's state until the failover completes`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := required("PoolFqdn", foPool, args)
			if err != nil {
				return err
			}
			if fo.WaitTime != "" {
				if _, err := admin.ParseWaitTime(fo.WaitTime); err != nil {
					return withCode(exitUsage, fmt.Errorf("-WaitTime: %w", err))
				}
			}
			if foConfirm && !fo.Force && !fo.WhatIf {
				if ok, err := confirm(e, fmt.Sprintf("Fail over the users of %s to its backup pool?", pool)); err != nil || !ok {
					return err
				}
			}
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.FailOver(cmd.Context(), pool, fo)
			if err := o.print(e.stdout, v, err, func(w io.Writer) { drResult(w, v) }); err != nil {
				return err
			}
			if foWait && !v.WhatIf {
				return followDR(cmd.Context(), e, cl, pool, "FailedOver")
			}
			return nil
		},
	}
	f := failover.Flags()
	f.StringVar(&foPool, "PoolFqdn", "", "the pool whose users fail over")
	f.BoolVar(&fo.DisasterMode, "DisasterMode", false, "the pool is down: no data sync, complete at once")
	f.StringVar(&fo.WaitTime, "WaitTime", "", "how long a planned failover's data sync takes (default: the topology's pairing.failover_wait)")
	f.BoolVar(&fo.Force, "Force", false, "never ask for confirmation")
	f.BoolVar(&fo.SkipDataVerification, "SkipDataVerification", false, "do not wait for the data sync to be verified")
	f.BoolVar(&fo.FlushStorageService, "FlushStorageService", false, "flush the Front Ends' storage service first")
	f.BoolVar(&fo.WhatIf, "WhatIf", false, "say what would happen, change nothing")
	f.BoolVar(&foConfirm, "Confirm", false, "ask before failing over")
	f.BoolVar(&foWait, "wait", false, "follow the pool's state until the failover completes")
	add(failover)

	var fb admin.FailBackRequest
	var fbPool string
	var fbConfirm, fbForce, fbWait bool
	failback := &cobra.Command{
		Use:     "Invoke-CsPoolFailBack -PoolFqdn POOL [-WaitTime T] [-WhatIf] [-Confirm] [-Force]",
		Aliases: []string{"failback"},
		Short:   "Move a failed-over pool's users home",
		Long: `Invoke-CsPoolFailBack, as in Lync: the pool must be failed over and serving again. Its users'
data is synced back (-WaitTime, default 15s), then users signed in at the backup pool move home at
the topology's pace (pairing.failback_pace, default 20,000 users per 60 minutes): each is signed
out once with a registration-notify naming its home registrar and signs in there in resiliency
mode until the failback completes; new sign-ins go home in resiliency mode.

  --wait    follow the progress (users moved, percent) until the failback completes`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := required("PoolFqdn", fbPool, args)
			if err != nil {
				return err
			}
			if fb.WaitTime != "" {
				if _, err := admin.ParseWaitTime(fb.WaitTime); err != nil {
					return withCode(exitUsage, fmt.Errorf("-WaitTime: %w", err))
				}
			}
			if fbConfirm && !fbForce && !fb.WhatIf {
				if ok, err := confirm(e, fmt.Sprintf("Fail back the users of %s from its backup pool?", pool)); err != nil || !ok {
					return err
				}
			}
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.FailBack(cmd.Context(), pool, fb)
			if err := o.print(e.stdout, v, err, func(w io.Writer) { drResult(w, v) }); err != nil {
				return err
			}
			if fbWait && !v.WhatIf {
				return followDR(cmd.Context(), e, cl, pool, "Active")
			}
			return nil
		},
	}
	f = failback.Flags()
	f.StringVar(&fbPool, "PoolFqdn", "", "the pool whose users move home")
	f.StringVar(&fb.WaitTime, "WaitTime", "", "how long the data sync back takes (default: the topology's pairing.failback_wait, 15s)")
	f.BoolVar(&fb.WhatIf, "WhatIf", false, "say what would happen, change nothing")
	f.BoolVar(&fbConfirm, "Confirm", false, "ask before failing back")
	f.BoolVar(&fbForce, "Force", false, "never ask for confirmation")
	f.BoolVar(&fbWait, "wait", false, "follow the progress until the failback completes")
	add(failback)

	var relPool string
	rel := &cobra.Command{
		Use: "Get-CsPoolBackupRelationship -PoolFqdn POOL", Aliases: []string{"backup", "relationship"},
		Short: "Show a pool's backup pool, both pairing states and the heartbeat",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := required("PoolFqdn", relPool, args)
			if err != nil {
				return err
			}
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.BackupRelationship(cmd.Context(), pool)
			return o.print(e.stdout, v, err, func(w io.Writer) {
				props(w, "PoolFqdn", v.PoolFqdn, "BackupPoolFqdn", v.BackupPoolFqdn, "BackupModules", list(v.BackupModules),
					"State", v.State, "BackupPoolState", v.BackupPoolState, "Heartbeat", v.Heartbeat)
			})
		},
	}
	rel.Flags().StringVar(&relPool, "PoolFqdn", "", "the pool's FQDN")
	add(rel)

	var readyPool string
	ready := &cobra.Command{
		Use: "Get-CsPoolUpgradeReadinessState [-PoolFqdn POOL]", Aliases: []string{"readiness"},
		Short: "Say whether a pool can lose an upgrade domain without users losing service",
		Long: `Get-CsPoolUpgradeReadinessState: Ready when the pool is started, every Front End runs and every
routing group has a primary and at least one secondary. Front Ends are spread over upgrade domains
(one per Front End, at most 8: our choice). Without -PoolFqdn every pool is shown. Exit code 1
when one is not ready.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				readyPool = args[0]
			}
			cl, err := client()
			if err != nil {
				return err
			}
			pools := []string{readyPool}
			if readyPool == "" {
				all, err := cl.Pools(cmd.Context())
				if err != nil {
					return apiErr(err)
				}
				pools = pools[:0]
				for _, p := range all {
					pools = append(pools, p.FQDN)
				}
			}
			var out []admin.UpgradeReadiness
			for _, p := range pools {
				v, err := cl.UpgradeReadiness(cmd.Context(), p)
				if err != nil {
					return apiErr(err)
				}
				out = append(out, v)
			}
			err = o.print(e.stdout, out, nil, func(w io.Writer) {
				for i, v := range out {
					if i > 0 {
						fmt.Fprintln(w)
					}
					var uds []string
					for _, d := range v.UpgradeDomains {
						uds = append(uds, fmt.Sprintf("%s: %d of %d active", d.Name, d.Active, len(d.FrontEnds)))
					}
					props(w, "PoolFqdn", v.PoolFqdn, "TotalFrontEnds", fmt.Sprint(v.TotalFrontEnds), "TotalActiveFrontEnds", fmt.Sprint(v.ActiveFrontEnds),
						"IsReadyForUpgrade", fmt.Sprint(v.IsReadyForUpgrade), "ReadinessState", v.State, "Reason", v.Reason, "UpgradeDomains", list(uds))
				}
			})
			if err != nil {
				return err
			}
			for _, v := range out {
				if !v.IsReadyForUpgrade {
					return withCode(exitError, fmt.Errorf("%s is not ready for upgrade: %s", v.PoolFqdn, v.Reason))
				}
			}
			return nil
		},
	}
	ready.Flags().StringVar(&readyPool, "PoolFqdn", "", "only this pool")
	add(ready)

	for _, a := range []struct{ action, short string }{
		{"crash", "Crash every Front End of a pool at once (connections reset, registrations lost)"},
		{"stop", "Stop every Front End of a pool"},
		{"start", "Start every Front End of a pool that does not run"},
		{"backend-down", "Take a pool's Back End down: registration works, persistent changes fail; survivable mode after back_end.survivable_after"},
		{"backend-up", "Bring a pool's Back End back"},
		{"partition", "Cut the heartbeat link between a pool and its backup pool (both keep running)"},
		{"heal", "Restore the heartbeat link between a pool and its backup pool"},
	} {
		var pool string
		action := a.action
		name := action
		if !strings.HasPrefix(name, "backend") && name != "partition" && name != "heal" {
			name = "pool-" + name
		}
		cmd := &cobra.Command{
			Use: name + " -PoolFqdn POOL", Short: a.short, Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				p, err := required("PoolFqdn", pool, args)
				if err != nil {
					return err
				}
				cl, err := client()
				if err != nil {
					return err
				}
				v, err := cl.PoolAction(cmd.Context(), p, action)
				return o.print(e.stdout, v, err, func(w io.Writer) { poolProps(w, v) })
			},
		}
		cmd.Flags().StringVar(&pool, "PoolFqdn", "", "the pool's FQDN")
		add(cmd)
	}

	var contactsID string
	contacts := &cobra.Command{
		Use: "Get-CsUserContacts -Identity SIP-URI", Aliases: []string{"contacts"},
		Short: "Show a user's contact list as the Back End serving the user holds it (fepool's own cmdlet)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := required("Identity", contactsID, args)
			if err != nil {
				return err
			}
			cl, err := client()
			if err != nil {
				return err
			}
			v, err := cl.Contacts(cmd.Context(), id)
			return o.print(e.stdout, v, err, func(w io.Writer) {
				props(w, "Identity", v.Identity, "BackEndPool", v.BackEnd, "Contacts", fmt.Sprint(len(v.Contacts)))
				for _, c := range v.Contacts {
					fmt.Fprintf(w, "  %s %s\n", c.URI, c.DisplayName)
				}
			})
		},
	}
	contacts.Flags().StringVar(&contactsID, "Identity", "", "the user's SIP address")
	add(contacts)
}

func drResult(w io.Writer, v admin.DRResult) {
	props(w, "PoolFqdn", v.PoolFqdn, "BackupPoolFqdn", v.BackupPoolFqdn, "State", v.State, "Result", v.Message)
}

// confirm asks a yes/no question on the terminal, as PowerShell's -Confirm does.
func confirm(e env, question string) (bool, error) {
	fmt.Fprintf(e.stdout, "Confirm\n%s\n[Y] Yes  [N] No  (default is \"N\"): ", question)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	fmt.Fprintln(e.stdout, "Cancelled: nothing changed.")
	return false, nil
}

// followDR prints a pool's pairing state each second until it reaches want.
func followDR(ctx context.Context, e env, cl *admin.Client, pool, want string) error {
	last := ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		pools, err := cl.Pools(ctx)
		if err != nil {
			return apiErr(err)
		}
		for _, p := range pools {
			if !strings.EqualFold(p.FQDN, pool) || p.DisasterRecovery == nil {
				continue
			}
			dr := p.DisasterRecovery
			line := dr.State
			if dr.UsersMoved > 0 || dr.UsersToMove > 0 {
				line += fmt.Sprintf(": %d users moved, %d to move (%.0f%%)", dr.UsersMoved, dr.UsersToMove, dr.PercentComplete)
			}
			if line != last {
				fmt.Fprintf(e.stdout, "%s %s\n", time.Now().Format(time.TimeOnly), line)
				last = line
			}
			if dr.State == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// poolProps prints one pool as Get-CsPool does.
func poolProps(w io.Writer, p admin.Pool) {
	shutdown := ""
	if p.ShutdownAt != nil {
		shutdown = p.ShutdownAt.Format(time.RFC3339)
	}
	fd := ""
	if p.FrontDoor != nil {
		fd = fmt.Sprintf("%s (%s) %s", p.FrontDoor.FQDN, p.FrontDoor.Mode, strings.Join(nonEmpty(p.FrontDoor.UDP, p.FrontDoor.TCP, p.FrontDoor.TLS), " "))
	}
	be := "up"
	if !p.BackEnd.Up {
		be = "DOWN"
		if p.BackEnd.DownSince != nil {
			be += " since " + p.BackEnd.DownSince.Format(time.TimeOnly)
		}
		if p.BackEnd.Survivable {
			be += " (survivable mode: users in resiliency mode)"
		}
	}
	kv := []string{
		"Identity", p.FQDN, "Edition", p.Edition, "BackupPool", p.BackupPool,
		"FabricState", p.FabricState,
		"FrontEnds", fmt.Sprintf("%d of %d running %s", p.RunningFrontEnds, len(p.FrontEnds), list(p.FrontEnds)),
		"PoolQuorum", p.QuorumRule, "ColdStartNeeds", fmt.Sprint(p.ColdStartNeed),
		"ShutdownAt", shutdown,
		"RoutingGroups", fmt.Sprintf("%d (%d missing replicas)", p.RoutingGroups, p.MissingReplicas),
		"Users", fmt.Sprintf("%d homed, %d registered here with %d endpoints", p.Users, p.RegisteredUsers, p.Endpoints),
		"FrontDoor", fd,
		"BackEnd", be + " " + p.BackEnd.Path,
	}
	if dr := p.DisasterRecovery; dr != nil {
		served := dr.UsersServedBy
		if served == "" {
			served = "nobody"
		}
		hb := "heard"
		switch {
		case dr.Partitioned:
			hb = "partitioned"
		case !dr.Heard:
			hb = "not heard since " + dr.LastHeard.Format(time.TimeOnly)
		}
		timer := dr.ResiliencyTimer
		switch {
		case dr.TimerExpired:
			timer += " (expired)"
		case dr.TimerLeft > 0:
			timer += fmt.Sprintf(" (%.0fs left)", dr.TimerLeft)
		}
		kv = append(kv, "PoolState", dr.State+" since "+dr.Since.Format(time.RFC3339),
			"UsersServedBy", served+" ("+dr.Mode+")", "Heartbeat", hb, "ResiliencyTimer", timer)
		if dr.UsersMoved > 0 || dr.UsersToMove > 0 {
			kv = append(kv, "FailbackProgress", fmt.Sprintf("%d users moved, %d to move (%.0f%%)", dr.UsersMoved, dr.UsersToMove, dr.PercentComplete))
		}
		if dr.UnsyncedSince != nil {
			kv = append(kv, "BackupService", "changes pending since "+dr.UnsyncedSince.Format(time.TimeOnly))
		}
	}
	props(w, kv...)
}
