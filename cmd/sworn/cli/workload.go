package cli

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sworn-id/sworn/trust"
)

type svidOptions struct {
	workloadFlags
	write  string
	output string
}

func newSVIDCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "svid", Short: "Fetch this process's X.509-SVIDs from the Workload API"}

	fo := &svidOptions{}
	fetch := &cobra.Command{
		Use:   "fetch",
		Short: "Fetch the X.509-SVIDs of the calling process once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), fo.timeout)
			defer cancel()
			x509ctx, err := workloadapi.FetchX509Context(ctx, fo.clientOption())
			if err != nil {
				return fmt.Errorf("svid fetch from %s: %w", fo.address(), err)
			}
			return fo.emit(cmd.OutOrStdout(), x509ctx)
		},
	}
	fo.add(fetch)
	fetch.Flags().StringVar(&fo.write, "write", "", "also write svid.pem, svid_key.pem (0600) and bundle.pem into this directory")
	fetch.Flags().StringVarP(&fo.output, "output", "o", "text", "text or json (never includes the private key)")

	wo := &svidOptions{}
	watch := &cobra.Command{
		Use:   "watch",
		Short: "Print the X.509-SVIDs every time the agent pushes new ones, until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := &svidWatcher{opts: wo, out: cmd.OutOrStdout(), errs: make(chan error, 1)}
			err := workloadapi.WatchX509Context(cmd.Context(), w, wo.clientOption())
			if cmd.Context().Err() != nil {
				// SIGINT or SIGTERM: go-spiffe reports the cancelled stream
				// as a gRPC Canceled status, which is a clean stop here.
				return nil
			}
			return err
		},
	}
	wo.add(watch)
	watch.Flags().StringVar(&wo.write, "write", "", "also write svid.pem, svid_key.pem (0600) and bundle.pem into this directory on every update")
	watch.Flags().StringVarP(&wo.output, "output", "o", "text", "text or json (never includes the private key)")

	cmd.AddCommand(fetch, watch, newSVIDWriteCommand())
	return cmd
}

type svidWatcher struct {
	opts *svidOptions
	out  io.Writer
	errs chan error
}

func (w *svidWatcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	if err := w.opts.emit(w.out, c); err != nil {
		fmt.Fprintln(w.out, "error:", err)
	}
}

func (w *svidWatcher) OnX509ContextWatchError(err error) {
	fmt.Fprintln(w.out, "watch error (retrying):", err)
}

// svidView is what is printed of an SVID; it has no key material.
type svidView struct {
	SPIFFEID  string    `json:"spiffe_id"`
	Hint      string    `json:"hint,omitempty"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	DNSNames  []string  `json:"dns_names,omitempty"`
	Issuer    string    `json:"issuer"`
}

func (o *svidOptions) emit(w io.Writer, c *workloadapi.X509Context) error {
	if len(c.SVIDs) == 0 {
		return errors.New("the agent returned no SVID")
	}
	if o.write != "" {
		svid := c.DefaultSVID()
		bundle, err := c.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
		if err != nil {
			return err
		}
		if err := trust.WriteSVIDFiles(o.write, svid, bundle); err != nil {
			return err
		}
	}
	views := make([]svidView, len(c.SVIDs))
	for i, s := range c.SVIDs {
		leaf := s.Certificates[0]
		views[i] = svidView{
			SPIFFEID: s.ID.String(), Hint: s.Hint, Serial: leaf.SerialNumber.Text(16),
			NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, DNSNames: leaf.DNSNames, Issuer: leaf.Issuer.String(),
		}
	}
	if o.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	for _, v := range views {
		fmt.Fprintf(w, "SPIFFE ID:  %s\n", v.SPIFFEID)
		if v.Hint != "" {
			fmt.Fprintf(w, "Hint:       %s\n", v.Hint)
		}
		fmt.Fprintf(w, "Serial:     %s\n", v.Serial)
		fmt.Fprintf(w, "Valid:      %s to %s\n", v.NotBefore.Format(time.RFC3339), v.NotAfter.Format(time.RFC3339))
		fmt.Fprintf(w, "Issuer:     %s\n", v.Issuer)
		if len(v.DNSNames) > 0 {
			fmt.Fprintf(w, "DNS names:  %v\n", v.DNSNames)
		}
		fmt.Fprintln(w)
	}
	if o.write != "" {
		fmt.Fprintf(w, "wrote %s, %s and %s to %s\n", trust.SVIDFile, trust.KeyFile, trust.BundleFile, o.write)
	}
	return nil
}

type bundleOptions struct {
	workloadFlags
	format    string
	jwt       bool
	federated bool
}

func newBundleCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "bundle", Short: "Show the trust bundles the agent serves"}
	o := &bundleOptions{}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the X.509 trust bundles (PEM, or SPIFFE bundle JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.format != "pem" && o.format != "spiffe" {
				return fmt.Errorf("--format %q: want pem or spiffe", o.format)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			if o.jwt {
				set, err := workloadapi.FetchJWTBundles(ctx, o.clientOption())
				if err != nil {
					return fmt.Errorf("bundle show from %s: %w", o.address(), err)
				}
				for _, b := range set.Bundles() {
					data, err := b.Marshal()
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "# %s\n%s\n", b.TrustDomain().IDString(), data)
				}
				return nil
			}
			if o.federated {
				// The X509-SVID response says which bundles are foreign.
				x, err := workloadapi.FetchX509Context(ctx, o.clientOption())
				if err != nil {
					return fmt.Errorf("bundle show from %s: %w", o.address(), err)
				}
				own := x.DefaultSVID().ID.TrustDomain()
				foreign := x509bundle.NewSet()
				for _, b := range x.Bundles.Bundles() {
					if b.TrustDomain() != own {
						foreign.Add(b)
					}
				}
				return printBundles(cmd.OutOrStdout(), foreign, o.format)
			}
			set, err := workloadapi.FetchX509Bundles(ctx, o.clientOption())
			if err != nil {
				return fmt.Errorf("bundle show from %s: %w", o.address(), err)
			}
			return printBundles(cmd.OutOrStdout(), set, o.format)
		},
	}
	o.add(show)
	show.Flags().StringVar(&o.format, "format", "pem", "pem or spiffe")
	show.Flags().BoolVar(&o.jwt, "jwt", false, "show the JWT bundles (JWKS) instead")
	show.Flags().BoolVar(&o.federated, "federated", false, "show only federated (foreign) trust domains' bundles")
	cmd.AddCommand(show, newBundleFetchCommand(), newBundleSetCommand())
	return cmd
}

func printBundles(w io.Writer, set *x509bundle.Set, format string) error {
	for _, b := range set.Bundles() {
		if format == "spiffe" {
			data, err := spiffebundle.FromX509Bundle(b).Marshal()
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s\n", data)
			continue
		}
		fmt.Fprintf(w, "# %s\n", b.TrustDomain().IDString())
		for _, c := range b.X509Authorities() {
			if err := pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
				return err
			}
		}
	}
	return nil
}

func newHealthcheckCommand() *cobra.Command {
	o := &workloadFlags{}
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the agent answers gRPC health checks on its Workload API socket",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := grpc.NewClient(o.address(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return fmt.Errorf("healthcheck %s: %w", o.address(), err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("healthcheck %s: agent is %s", o.address(), resp.GetStatus())
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "agent is healthy")
			return err
		},
	}
	o.add(cmd)
	return cmd
}
