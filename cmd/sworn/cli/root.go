// Package cli holds sworn's cobra commands: one file per command group, each
// with an options struct whose flags are declared next to it. Output goes to
// the command's writers so tests can run commands in-process.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	setVersionFlag(root)
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
		newOIDCCommand(),
		newVersionCommand(),
	)
	addHints(root)
	return root
}

// newLogger logs to w (the command's stderr, so in-process runs can read
// it) at level in format text or json.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
