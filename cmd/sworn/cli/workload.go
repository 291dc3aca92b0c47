package cli

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/trust"
)

type svidOptions struct {
	workloadFlags
	write  string
	output outputFormat
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
	addOutputFlag(fetch, &fo.output) // json never includes the private key

	wo := &svidOptions{}
	watch := &cobra.Command{
		Use:   "watch",
		Short: "Print the X.509-SVIDs every time the agent pushes new ones, until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := &svidWatcher{ctx: cmd.Context(), opts: wo, out: cmd.OutOrStdout(), errs: make(chan error, 1)}
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
	addOutputFlag(watch, &wo.output)

	cmd.AddCommand(fetch, watch, newSVIDWriteCommand())
	return cmd
}

type svidWatcher struct {
	ctx  context.Context // the command's: once done, a stream error is our own cancel
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
	if w.ctx.Err() != nil {
		// SIGINT or SIGTERM: go-spiffe reports the stream it cancelled
		// here before WatchX509Context returns; nothing is retried.
		return
	}
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
	if o.output == jsonOutput {
		return writeJSON(w, views)
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
	adminSocket string
	format      string
	jwt         bool
	federated   bool
	output      outputFormat
}

func newBundleCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "bundle", Short: "Show the trust bundles the agent serves"}
	o := &bundleOptions{}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the trust bundles (PEM, SPIFFE bundle JSON, or -o json)",
		Long: `Print the trust bundles the agent serves: its own trust domain's and the
federated ones' (only those with --federated).

  --format pem (default)  the X.509 authorities as PEM, each trust domain under
                          a "# spiffe://<trust domain>" line; from the Workload
                          API (--socket), as a workload sees them.
  --jwt                   the JWT authorities (JWKS) instead; Workload API.
  --format spiffe         one SPIFFE bundle JSON document per line per trust
                          domain (sorted by name): X.509 and JWT authorities,
                          spiffe_sequence and spiffe_refresh_hint, the document
                          the agent's bundle endpoint serves (a federated
                          domain's carries this agent's sequence and hint,
                          not its own endpoint's). The Workload API
                          carries no sequence, so this reads the admin socket
                          (--admin-socket) and needs root, the agent's uid or
                          admin_uid.
  -o json                 for scripts, from the Workload API: a JSON array,
                          one object per trust domain, sorted by name:
    [{"trust_domain": "example.org",
      "x509_authorities": ["-----BEGIN CERTIFICATE-----\n..."],
      "jwt_authorities": [{"kid": "...", "jwk": {"kty": "EC", "use": "jwt-svid", ...}}]}]
                          jwt_authorities is sorted by kid and is [] when the
                          trust domain has none; fields are only ever added.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			switch {
			case o.format == "spiffe":
				return o.showSPIFFE(cmd)
			case o.output == jsonOutput:
				return o.showJSON(ctx, cmd.OutOrStdout())
			case o.jwt:
				return o.showJWKS(ctx, cmd.OutOrStdout())
			}
			set, err := o.x509Bundles(ctx)
			if err != nil {
				return err
			}
			return printBundles(cmd.OutOrStdout(), set)
		},
	}
	o.add(show)
	show.Flags().StringVar(&o.format, "format", "pem", "pem or spiffe (spiffe reads the admin socket)")
	show.Flags().StringVar(&o.adminSocket, "admin-socket", config.DefaultAdminSocketPath, "the agent's admin socket, for --format spiffe")
	show.Flags().BoolVar(&o.jwt, "jwt", false, "show the JWT bundles (JWKS) instead")
	show.Flags().BoolVar(&o.federated, "federated", false, "show only federated (foreign) trust domains' bundles")
	addOutputFlag(show, &o.output)
	cmd.AddCommand(show, newBundleFetchCommand(), newBundleSetCommand())
	return cmd
}

// validate refuses combinations that would silently drop a flag.
func (o *bundleOptions) validate() error {
	switch {
	case o.format != "pem" && o.format != "spiffe":
		return fmt.Errorf("--format %q: want pem or spiffe", o.format)
	case o.format == "spiffe" && o.jwt:
		return errors.New("--format spiffe already holds the JWT authorities; drop --jwt")
	case o.format == "spiffe" && o.output == jsonOutput:
		return errors.New("--format spiffe is already JSON; give --format spiffe or -o json, not both")
	case o.jwt && o.output == jsonOutput:
		return errors.New("-o json already holds the JWT authorities; drop --jwt")
	}
	return nil
}

// showSPIFFE prints each trust domain's SPIFFE bundle as the agent's bundle
// endpoint serves it, from the admin API: only it knows the sequence number
// and refresh hint.
func (o *bundleOptions) showSPIFFE(cmd *cobra.Command) error {
	a := adminFlags{socket: o.adminSocket, timeout: o.timeout}
	return a.call(cmd, func(ctx context.Context, c adminpb.AdminClient) error {
		resp, err := c.GetBundles(ctx, &adminpb.GetBundlesRequest{})
		if err != nil {
			return fmt.Errorf("bundle show from %s: %w", o.adminSocket, err)
		}
		for _, b := range resp.GetBundles() {
			if o.federated && b.GetTrustDomain() == resp.GetTrustDomain() {
				continue
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b.GetSpiffeBundle())
		}
		return nil
	})
}

func (o *bundleOptions) showJWKS(ctx context.Context, w io.Writer) error {
	set, err := o.jwtBundles(ctx)
	if err != nil {
		return err
	}
	for _, b := range set.Bundles() {
		data, err := b.Marshal()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "# %s\n%s\n", b.TrustDomain().IDString(), data)
	}
	return nil
}

// x509Bundles fetches the X.509 bundles, only the foreign ones with
// --federated.
func (o *bundleOptions) x509Bundles(ctx context.Context) (*x509bundle.Set, error) {
	if !o.federated {
		set, err := workloadapi.FetchX509Bundles(ctx, o.clientOption())
		if err != nil {
			return nil, fmt.Errorf("bundle show from %s: %w", o.address(), err)
		}
		return set, nil
	}
	// The X509-SVID response says which bundles are foreign.
	x, err := workloadapi.FetchX509Context(ctx, o.clientOption())
	if err != nil {
		return nil, fmt.Errorf("bundle show from %s: %w", o.address(), err)
	}
	own := x.DefaultSVID().ID.TrustDomain()
	foreign := x509bundle.NewSet()
	for _, b := range x.Bundles.Bundles() {
		if b.TrustDomain() != own {
			foreign.Add(b)
		}
	}
	return foreign, nil
}

func (o *bundleOptions) jwtBundles(ctx context.Context) (*jwtbundle.Set, error) {
	set, err := workloadapi.FetchJWTBundles(ctx, o.clientOption())
	if err != nil {
		return nil, fmt.Errorf("bundle show from %s: %w", o.address(), err)
	}
	return set, nil
}

// bundleView is one trust domain in `bundle show -o json`; the shape is
// documented in the command's help.
type bundleView struct {
	TrustDomain     string         `json:"trust_domain"`
	X509Authorities []string       `json:"x509_authorities"`
	JWTAuthorities  []jwtAuthority `json:"jwt_authorities"`
}

type jwtAuthority struct {
	KeyID string          `json:"kid"`
	JWK   jose.JSONWebKey `json:"jwk"`
}

// showJSON prints every X.509 bundle with the JWT keys of its trust
// domain. A trust domain with JWT keys but no X.509 bundle is not shown:
// a workload could not authenticate it over mTLS either.
func (o *bundleOptions) showJSON(ctx context.Context, w io.Writer) error {
	x, err := o.x509Bundles(ctx)
	if err != nil {
		return err
	}
	j, err := o.jwtBundles(ctx)
	if err != nil {
		return err
	}
	views := []bundleView{}
	for _, b := range x.Bundles() {
		v := bundleView{TrustDomain: b.TrustDomain().Name(), X509Authorities: []string{}, JWTAuthorities: []jwtAuthority{}}
		for _, c := range b.X509Authorities() {
			v.X509Authorities = append(v.X509Authorities, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
		}
		if jb, ok := j.Get(b.TrustDomain()); ok {
			keys := jb.JWTAuthorities()
			for _, kid := range slices.Sorted(maps.Keys(keys)) {
				v.JWTAuthorities = append(v.JWTAuthorities, jwtAuthority{KeyID: kid, JWK: jose.JSONWebKey{Key: keys[kid], KeyID: kid, Use: "jwt-svid"}})
			}
		}
		views = append(views, v)
	}
	slices.SortFunc(views, func(a, b bundleView) int { return strings.Compare(a.TrustDomain, b.TrustDomain) })
	return writeJSON(w, views)
}

// printBundles prints each bundle's X.509 authorities as PEM under a
// "# spiffe://<trust domain>" line.
func printBundles(w io.Writer, set *x509bundle.Set) error {
	for _, b := range set.Bundles() {
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
