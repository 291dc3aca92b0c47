package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/bundle"
)

type bundleFetchOptions struct {
	trustDomain string
	url         string
	caFile      string
	endpointID  string
	bundleFile  string
	timeout     time.Duration
}

func newBundleFetchCommand() *cobra.Command {
	o := &bundleFetchOptions{}
	cmd := &cobra.Command{
		Use:   "fetch --trust-domain TD --url URL",
		Short: "Fetch a trust domain's bundle from its bundle endpoint and print it (SPIFFE bundle JSON)",
		Long: `Fetch a foreign trust domain's bundle from its SPIFFE bundle endpoint and print it
as SPIFFE bundle JSON, e.g. to write the bundle_file that bootstraps federation:
  sworn bundle fetch --trust-domain other.org --url https://bundle.other.org --ca-file web-ca.pem > other.org.json
With --endpoint-spiffe-id and --bundle-file the endpoint is authenticated with
https_spiffe against a bundle you already have (SPIFFE bundle JSON or PEM; an
empty, garbled or truncated file is refused); otherwise with https_web
(--ca-file, or the system roots).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			td, err := spiffeid.TrustDomainFromString(o.trustDomain)
			if err != nil {
				return fmt.Errorf("--trust-domain: %w", err)
			}
			var tlsCfg *tls.Config
			switch {
			case o.endpointID != "":
				id, err := spiffeid.FromString(o.endpointID)
				if err != nil {
					return fmt.Errorf("--endpoint-spiffe-id: %w", err)
				}
				if o.bundleFile == "" {
					return errors.New("--endpoint-spiffe-id needs --bundle-file to authenticate the endpoint")
				}
				// Read as strictly as `sworn bundle set` reads a file:
				// go-spiffe's x509bundle.Load would take a truncated file
				// for a smaller bundle.
				b, err := bundle.Load(td, o.bundleFile)
				if err != nil {
					return fmt.Errorf("--bundle-file: %w", err)
				}
				tlsCfg = tlsconfig.TLSClientConfig(b.X509Bundle(), tlsconfig.AuthorizeID(id))
			default:
				var pool *x509.CertPool
				if o.caFile != "" {
					pem, err := os.ReadFile(o.caFile)
					if err != nil {
						return fmt.Errorf("--ca-file: %w", err)
					}
					pool = x509.NewCertPool()
					pool.AppendCertsFromPEM(pem)
				}
				tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			// The agent's own fetcher, with its limits on what the
			// endpoint may send.
			b, err := bundle.Fetch(ctx, bundle.NewClient(tlsCfg, o.timeout), td, o.url)
			if err != nil {
				return fmt.Errorf("bundle fetch: %w", err)
			}
			data, err := b.Marshal()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", data)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.trustDomain, "trust-domain", "", "the foreign trust domain (required)")
	f.StringVar(&o.url, "url", "", "its bundle endpoint URL (required)")
	f.StringVar(&o.caFile, "ca-file", "", "https_web: CA that verifies the endpoint")
	f.StringVar(&o.endpointID, "endpoint-spiffe-id", "", "https_spiffe: the endpoint's SPIFFE ID")
	f.StringVar(&o.bundleFile, "bundle-file", "", "https_spiffe: a bundle of the trust domain you already trust (SPIFFE bundle JSON or PEM)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait")
	_ = cmd.MarkFlagRequired("trust-domain")
	_ = cmd.MarkFlagRequired("url")
	return cmd
}

func newBundleSetCommand() *cobra.Command {
	o := &adminFlags{}
	var td, file string
	cmd := &cobra.Command{
		Use:   "set --trust-domain TD --file F",
		Short: "Give the agent a federated trust domain's bundle (SPIFFE JSON or PEM), kept across restarts",
		Long: `Give the agent a federated trust domain's bundle: SPIFFE bundle JSON (as
sworn bundle fetch prints it) or PEM CA certificates. Workloads get it at once and
it is kept across restarts, ahead of bundle_file. A file that is empty, garbled,
truncated or holds no CA certificate is refused, here and by the agent, and the
bundle in use is kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := spiffeid.TrustDomainFromString(td)
			if err != nil {
				return fmt.Errorf("--trust-domain: %w", err)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("bundle set: %w", err)
			}
			// Checked here too, so the error names the file and an older
			// agent that would take it never sees it.
			if _, err := bundle.Decode(id, data); err != nil {
				return fmt.Errorf("bundle set: %s: %w", file, err)
			}
			return o.call(cmd, func(ctx context.Context, client adminpb.AdminClient) error {
				resp, err := client.SetFederatedBundle(ctx, &adminpb.SetFederatedBundleRequest{TrustDomain: td, Bundle: data})
				if err != nil {
					return fmt.Errorf("bundle set: %s: %w", file, err)
				}
				if !bundle.StatesJWT(data) {
					fmt.Fprintf(cmd.OutOrStdout(), "bundle of %s set: %d X.509 authorities (JWT keys unchanged: PEM cannot carry them)\n", td, resp.GetX509Authorities())
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "bundle of %s set: %d X.509 authorities, %d JWT keys\n", td, resp.GetX509Authorities(), resp.GetJwtAuthorities())
				return nil
			})
		},
	}
	o.add(cmd)
	cmd.Flags().StringVar(&td, "trust-domain", "", "the federated trust domain (required)")
	cmd.Flags().StringVar(&file, "file", "", "the bundle file (required)")
	_ = cmd.MarkFlagRequired("trust-domain")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}
