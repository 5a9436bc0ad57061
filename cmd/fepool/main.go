// Command fepool emulates Lync Server 2013 / Skype for Business Front End pools as real SIP
// registrars on loopback, and drives and inspects them.
//
//	fepool serve            run the emulator (the embedded default topology, or --config FILE)
//	fepool ctl CMDLET ...   call the admin API with Lync cmdlet names
//	fepool version          print the version
//
// Only this package touches flags, environment, standard streams, signals and exit codes, so a
// whole CLI run can be tested in-process through run.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/emiago/sipgo/sip"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1 // the command failed
	exitUsage    = 2 // bad flags or arguments
	exitConfig   = 3 // the topology is invalid
	exitAPIError = 4 // the admin API refused the request
)

// exitError carries an exit code through cobra.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codeError{code: code, err: err}
}

// env is what a run may touch of the outside world.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// raiseFileLimit raises the open-file soft limit to the hard one and returns both (nil:
	// loadgen.RaiseFileLimit); tests give a low one.
	raiseFileLimit func() (soft, hard uint64, err error)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "load" {
		// Only clients run in this process: the read buffers of their TCP and TLS flows (read
		// by sipgo; UDP is read by the client's own pollers) can be small: sipgo's process-wide
		// default of 32 KiB per connection would cost 640 MB for 20,000 clients. Set before
		// anything runs: sipgo reads it from its transports' goroutines.
		sip.TransportBufferReadSize = 4096
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // the first signal asks for a clean shutdown; a second one ends the process at once
	}()
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

func init() {
	cobra.EnableCaseInsensitive = true // cmdlet names, as in PowerShell
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	root := &cobra.Command{
		Use:   "fepool",
		Short: "Lync Server 2013 / Skype for Business Front End pool emulator",
		Long: `fepool runs Front End pools as real SIP registrars on loopback: routing groups with
primary and backup registrars, pool quorum, 301 redirects to the home server, digest auth,
paired pools (resiliency timer, resiliency mode, failover, failback), and the admin cmdlets
(Get-CsUserPoolInfo, Get-CsPoolFabricState, Reset-CsPoolRegistrarState, Invoke-CsPoolFailOver,
Invoke-CsPoolFailBack, ...).

Start the emulator with the embedded default topology (two paired pools, 20,000 users):
  fepool serve
then, from another terminal:
  fepool ctl Get-CsUserPoolInfo -Identity sip:user00042@contoso.com
  fepool ctl crash fe01.pool-a.contoso.com
  fepool ctl pool-crash pool-a.contoso.com
  fepool ctl Invoke-CsPoolFailOver -PoolFqdn pool-a.contoso.com -DisasterMode -Force`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.AddCommand(serveCmd(e), ctlCmd(e), phoneCmd(e), loadCmd(e), reportCmd(e), demoCmd(e), versionCmd(e))
	root.SetArgs(powershellArgs(args))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return withCode(exitUsage, fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath()))
	})
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(e.stderr, "fepool:", err)
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	if isUsageError(err) {
		return exitUsage
	}
	return exitError
}

// isUsageError recognises cobra's own argument errors.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// powershellArgs lets cmdlet parameters be written as in PowerShell: -Identity X becomes
// --Identity X and -Verbose:$true becomes --Verbose=true.
func powershellArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a == "--" {
			out = append(out, args[len(out):]...)
			break
		}
		if len(a) >= 3 && a[0] == '-' && a[1] != '-' && isLetter(a[1]) {
			name, val, hasVal := strings.Cut(a[1:], ":")
			a = "--" + name
			if hasVal {
				a += "=" + strings.TrimPrefix(strings.ToLower(val), "$")
			}
		}
		out = append(out, a)
	}
	return out
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
