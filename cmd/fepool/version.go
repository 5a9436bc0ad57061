package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3").
var version = "dev"

func versionCmd(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print fepool's version, its Go version and the sipgo it was built with",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			sipgo := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					if d.Path == "github.com/emiago/sipgo" {
						sipgo = d.Version
					}
				}
			}
			_, err := fmt.Fprintf(e.stdout, "fepool %s (%s, sipgo %s, %s/%s)\n", version, runtime.Version(), sipgo, runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
