package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"github.com/sworn-id/sworn/agent/oidc"
	"github.com/sworn-id/sworn/internal/field"
	"github.com/sworn-id/sworn/internal/unixsock"
)

type oidcOptions struct {
	workloadFlags
	issuer      string
	trustDomain string
	listen      string
	certFile    string
	keyFile     string
	listenSock  string
	logLevel    string
	logFormat   string
}

func newOIDCCommand() *cobra.Command {
	o := &oidcOptions{}
	cmd := &cobra.Command{
		Use:   "oidc",
		Short: "Serve OIDC discovery of the trust domain's JWT bundle, read from the Workload API",
		Long: `Serve /.well-known/openid-configuration and /keys for JWT-SVID verifiers that
only speak OIDC discovery (Vault's JWT auth, AWS STS, GCP workload identity
federation), as SPIRE's oidc-discovery-provider does.

The keys come from the Workload API, so this command runs as a workload: a rule
must give it an identity. It keeps serving the last keys it received while the
agent is away, and answers 503 until the first ones arrive. The agent can serve
the same documents itself (the oidc: section of its configuration); this
command is for running them elsewhere, e.g. on a host that faces the internet.

  sworn oidc --issuer https://oidc.example.org --trust-domain example.org \
    --listen :8443 --cert-file tls.crt --key-file tls.key
  sworn oidc --issuer https://example.org/oidc --trust-domain example.org \
    --listen-socket /run/sworn-oidc/oidc.sock    # plain HTTP behind a TLS proxy

Set the agent's oidc.jwt_issuer_claim (or give JWT-SVIDs an iss another way)
when the verifier requires iss to equal the issuer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.add(cmd)
	f := cmd.Flags()
	f.StringVar(&o.issuer, "issuer", "", "the https URL verifiers are configured with (required)")
	f.StringVar(&o.trustDomain, "trust-domain", "", "the trust domain whose JWT bundle is served (required)")
	f.StringVar(&o.listen, "listen", "", "serve HTTPS at host:port with --cert-file and --key-file (re-read when they change)")
	f.StringVar(&o.certFile, "cert-file", "", "PEM certificate chain for --listen")
	f.StringVar(&o.keyFile, "key-file", "", "PEM private key for --listen")
	f.StringVar(&o.listenSock, "listen-socket", "", "serve plain HTTP on this Unix socket instead, for a fronting proxy")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "text or json")
	return cmd
}

// validate checks the flags as the agent's oidc: section is checked.
func (o *oidcOptions) validate() (spiffeid.TrustDomain, error) {
	if o.trustDomain == "" {
		return spiffeid.TrustDomain{}, errors.New("--trust-domain is required: the trust domain whose JWT bundle is served")
	}
	td, err := spiffeid.TrustDomainFromString(o.trustDomain)
	if err != nil {
		return td, fmt.Errorf("--trust-domain %q: %w", o.trustDomain, err)
	}
	if u, err := url.Parse(o.issuer); o.issuer == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		return td, fmt.Errorf("--issuer %q: want the https URL verifiers are configured with, e.g. https://oidc.example.org", o.issuer)
	}
	switch {
	case o.listen == "" && o.listenSock == "":
		return td, errors.New("set --listen (HTTPS, with --cert-file and --key-file) or --listen-socket (plain HTTP behind a proxy)")
	case o.listen != "" && o.listenSock != "":
		return td, errors.New("--listen and --listen-socket exclude each other")
	case o.listen != "" && (o.certFile == "" || o.keyFile == ""):
		return td, errors.New("--listen serves HTTPS: --cert-file and --key-file are required")
	case o.listenSock != "" && (o.certFile != "" || o.keyFile != ""):
		return td, errors.New("--listen-socket serves plain HTTP: drop --cert-file and --key-file, the proxy in front terminates TLS")
	}
	if o.listen != "" {
		if err := field.HostPort(o.listen); err != nil {
			return td, fmt.Errorf("--listen: %w", err)
		}
	}
	return td, nil
}

func (o *oidcOptions) run(cmd *cobra.Command) error {
	td, err := o.validate()
	if err != nil {
		return err
	}
	log, err := newLogger(cmd.ErrOrStderr(), o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	src := oidc.NewWatched(log)
	handler, err := oidc.New(oidc.Config{Issuer: o.issuer, TrustDomain: td, Bundles: src})
	if err != nil {
		return err
	}
	var l net.Listener
	if o.listenSock != "" {
		l, err = unixsock.Listen(o.listenSock, 0o666, nil)
	} else {
		l, err = oidc.ListenHTTPS(o.listen, o.certFile, o.keyFile, log)
	}
	if err != nil {
		return err
	}
	if o.listenSock != "" {
		defer os.Remove(o.listenSock)
	}
	log.Info("serving OIDC discovery", "issuer", o.issuer, "trust_domain", td.String(), "addr", l.Addr().String(), "workload_api", o.address())
	g, ctx := errgroup.WithContext(cmd.Context())
	g.Go(func() error { return src.Watch(ctx, o.address()) })
	g.Go(func() error { return oidc.Serve(ctx, l, handler, log) })
	return g.Wait()
}
