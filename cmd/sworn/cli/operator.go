package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sworn-id/sworn/agent/admin/adminpb"
)

type statusOptions struct {
	adminFlags
	output outputFormat
}

func newStatusCommand() *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the agent's trust domain, CAs and cached identities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(cmd, func(ctx context.Context, client adminpb.AdminClient) error {
				st, err := client.GetStatus(ctx, &adminpb.GetStatusRequest{})
				if err != nil {
					return fmt.Errorf("status: %w", err)
				}
				if o.output == jsonOutput {
					data, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(st)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(cmd.OutOrStdout(), string(data))
					return err
				}
				return printStatus(cmd.OutOrStdout(), st, time.Now())
			})
		},
	}
	o.add(cmd)
	addOutputFlag(cmd, &o.output)
	return cmd
}

func printStatus(w io.Writer, st *adminpb.GetStatusResponse, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Trust domain:\t%s\n", st.GetTrustDomain())
	fmt.Fprintf(tw, "CA:\t%s\n", st.GetCaType())
	fmt.Fprintf(tw, "Rules:\t%d\n", st.GetRules())
	fmt.Fprintf(tw, "Up since:\t%s\n\n", st.GetStarted().AsTime().Format(time.RFC3339))
	fmt.Fprintln(tw, "CA ID\tSTATE\tNOT BEFORE\tNOT AFTER\tSUBJECT")
	for _, c := range st.GetCas() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", short(c.GetId()), c.GetState(), ts(c.GetNotBefore()), ts(c.GetNotAfter()), c.GetSubject())
	}
	fmt.Fprintln(tw, "\nSPIFFE ID\tSERIAL\tEXPIRES\tNEXT RENEWAL\tHOLDERS")
	for _, id := range st.GetIdentities() {
		fmt.Fprintf(tw, "%s\t%s\t%s (in %s)\t%s\t%d\n", id.GetSpiffeId(), short(id.GetSerial()), ts(id.GetNotAfter()),
			id.GetNotAfter().AsTime().Sub(now).Round(time.Second), ts(id.GetNextRenewal()), id.GetHolders())
	}
	if len(st.GetIdentities()) == 0 {
		fmt.Fprintln(tw, "(none cached)")
	}
	return tw.Flush()
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().Local().Format(time.RFC3339)
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

type rotateSVIDsOptions struct {
	adminFlags
	ids    []string
	all    bool
	output outputFormat
}

type rotateCAOptions struct {
	adminFlags
	activate bool
	output   outputFormat
}

func newRotateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "rotate", Short: "Rotate SVIDs or the CA now"}

	so := &rotateSVIDsOptions{}
	svids := &cobra.Command{
		Use:   "svids",
		Short: "Re-issue cached SVIDs now; open Workload API streams receive them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if so.all == (len(so.ids) > 0) {
				return errors.New("give --spiffe-id (repeatable) or --all")
			}
			return so.call(cmd, func(ctx context.Context, client adminpb.AdminClient) error {
				resp, err := client.RotateSVIDs(ctx, &adminpb.RotateSVIDsRequest{SpiffeIds: so.ids, All: so.all})
				if err != nil {
					return fmt.Errorf("rotate svids: %w", err)
				}
				if so.output == jsonOutput {
					return writeJSON(cmd.OutOrStdout(), struct {
						Scheduled int32 `json:"scheduled"`
					}{resp.GetScheduled()})
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "re-issuing %d SVID(s)\n", resp.GetScheduled())
				return err
			})
		},
	}
	so.add(svids)
	svids.Flags().StringArrayVar(&so.ids, "spiffe-id", nil, "SPIFFE ID whose SVIDs to re-issue (repeatable)")
	svids.Flags().BoolVar(&so.all, "all", false, "re-issue every cached SVID")
	addOutputFlag(svids, &so.output)

	co := &rotateCAOptions{}
	caCmd := &cobra.Command{
		Use:   "ca",
		Short: "Publish a new CA now (trusted, not yet signing); --activate makes it sign",
		Long: `Start a rotation of the agent's embedded CA now: the same as sworn ca rotate
(and with --activate, sworn ca activate) with --backend local. The new CA is
published in every bundle at once but signs nothing until it is activated:
automatically at five sixths of the current CA's life, or now with --activate.
Activation re-issues every SVID; the previous CA stays trusted (old) until it
expires.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return co.call(cmd, func(ctx context.Context, client adminpb.AdminClient) error {
				r, err := localRotate(ctx, client, co.activate)
				if err != nil {
					return err
				}
				r.Backend = backendLocal
				return r.print(cmd.OutOrStdout(), co.output)
			})
		},
	}
	co.add(caCmd)
	caCmd.Flags().BoolVar(&co.activate, "activate", false, "make the already published CA the signing one")
	addOutputFlag(caCmd, &co.output)

	cmd.AddCommand(svids, caCmd)
	return cmd
}
