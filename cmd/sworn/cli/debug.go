package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sworn-id/sworn/agent/admin/adminpb"
)

func newDebugCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "debug", Short: "Diagnose why a workload gets (or does not get) an identity"}
	o := &adminFlags{}
	var pid int32
	var output outputFormat
	attestCmd := &cobra.Command{
		Use:   "attest --pid N",
		Short: "Show the selectors a process attests to and the SPIFFE IDs the rules give it",
		Long: `Attest a running process as the agent would if it called the Workload API, and
print its selectors and the identities the rules in force give it. Nothing is
issued. The first thing to run on "no identity issued".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(cmd, func(ctx context.Context, client adminpb.AdminClient) error {
				resp, err := client.Attest(ctx, &adminpb.AttestRequest{Pid: pid})
				if err != nil {
					return fmt.Errorf("debug attest: %w", err)
				}
				w := cmd.OutOrStdout()
				if output == jsonOutput {
					data, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(w, string(data))
					return err
				}
				fmt.Fprintf(w, "pid %d (uid %d, gid %d)\nselectors:\n", resp.GetPid(), resp.GetUid(), resp.GetGid())
				for _, s := range resp.GetSelectors() {
					fmt.Fprintln(w, "  ", s)
				}
				fmt.Fprintln(w, "identities:")
				if len(resp.GetSpiffeIds()) == 0 {
					fmt.Fprintln(w, "   (none: the Workload API answers PermissionDenied \"no identity issued\")")
				}
				for _, id := range resp.GetSpiffeIds() {
					fmt.Fprintln(w, "  ", id)
				}
				for _, e := range resp.GetErrors() {
					fmt.Fprintln(w, "error:", e)
				}
				return nil
			})
		},
	}
	o.add(attestCmd)
	attestCmd.Flags().Int32Var(&pid, "pid", 0, "process to attest")
	_ = attestCmd.MarkFlagRequired("pid")
	addOutputFlag(attestCmd, &output)
	cmd.AddCommand(attestCmd)
	return cmd
}
