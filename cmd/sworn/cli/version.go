package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sworn-id/sworn/internal/version"
)

type versionOptions struct {
	output outputFormat
}

// newVersionCommand prints the build facts internal/version holds; the
// agent's start log line and sworn_build_info report the same ones.
func newVersionCommand() *cobra.Command {
	o := &versionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print sworn's version, commit and Go version",
		Long: "Print the version, commit and Go version this binary was built with.\n" +
			"-o json prints {\"version\",\"commit\",\"modified\",\"go_version\",\"platform\"}; fields are only ever added.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd.OutOrStdout(), o.output, version.Get())
		},
	}
	addOutputFlag(cmd, &o.output)
	return cmd
}

func printVersion(w io.Writer, output outputFormat, info version.Info) error {
	if output == jsonOutput {
		return writeJSON(w, info)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Version:\t%s\n", info.Version)
	fmt.Fprintf(tw, "Commit:\t%s\n", info.Commit)
	fmt.Fprintf(tw, "Modified:\t%t\n", info.Modified)
	fmt.Fprintf(tw, "Go version:\t%s\n", info.GoVersion)
	fmt.Fprintf(tw, "Platform:\t%s\n", info.Platform)
	return tw.Flush()
}

// setVersionFlag gives the root command --version, printing the one-line
// form: "sworn v0.3.0 (commit 0123abcd, go1.26.8, linux/amd64)".
func setVersionFlag(root *cobra.Command) {
	root.Version = version.Get().String()
	root.SetVersionTemplate("sworn {{.Version}}\n")
}
