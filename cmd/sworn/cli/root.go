// Package cli holds sworn's cobra commands: one file per command group, each
// with an options struct whose flags are declared next to it. Output goes to
// the command's writers so tests can run commands in-process.
package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// NewCommand returns the root command.
func NewCommand(ctx context.Context) *cobra.Command {
	root := &cobra.Command{
		Use:           "sworn",
		Short:         "sworn is a SPIFFE workload identity agent",
		Long:          "sworn attests local processes, issues them short-lived X.509-SVIDs from its CA,\nrotates them, and serves them over the SPIFFE Workload API on a Unix socket.",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.SetContext(ctx)
	root.AddCommand(
		newAgentCommand(),
		newStatusCommand(),
		newRotateCommand(),
		newSVIDCommand(),
		newBundleCommand(),
		newHealthcheckCommand(),
		newVaultCommand(),
		newCACommand(),
		newProxyCommand(),
		newDebugCommand(),
		newJWTCommand(),
	)
	return root
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
