package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/internal/atomicfile"
)

// federatedPath is where `sworn bundle set` keeps a federated bundle.
func (a *Agent) federatedPath(td spiffeid.TrustDomain) string {
	return filepath.Join(a.cfg.DataDir, "federation", td.Name()+".bundle")
}

// setFederatedBundle stores a bundle given by an operator and keeps it for
// restarts. SPIFFE bundle JSON replaces the domain's X.509 and JWT
// authorities; PEM replaces the X.509 ones and keeps the JWT keys. A
// bundle Decode refuses (bundle.ErrInvalid) changes nothing: neither the
// stored copy nor what workloads are served. The copy is written
// (atomically) before the store changes, so a restart loads the X.509
// authorities workloads saw; the JWT keys kept across a PEM set are not in
// the stored copy and come back with the endpoint's next answer.
func (a *Agent) setFederatedBundle(td spiffeid.TrustDomain, data []byte) (int, int, error) {
	known := false
	for _, f := range a.cfg.Federation.TrustDomains {
		known = known || f.TrustDomain == td.Name()
	}
	if !known {
		return 0, 0, fmt.Errorf("agent: %w: %s is not in federation.trust_domains; add it to the agent's config first", bundle.ErrNotFederated, td)
	}
	b, err := bundle.Decode(td, data)
	if err != nil {
		return 0, 0, fmt.Errorf("agent: %w", err)
	}
	path := a.federatedPath(td)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, 0, fmt.Errorf("agent: storing the bundle of %s: %w", td, err)
	}
	// Staged beside the file, never in $TMPDIR, so an interrupted write
	// leaves its temp file in the data dir, where the start-up sweep
	// removes it.
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return 0, 0, fmt.Errorf("agent: storing the bundle of %s: %w", td, err)
	}
	a.bundles.SetX509Authorities(td, b.X509Authorities())
	if !bundle.StatesJWT(data) {
		// PEM cannot carry JWT keys: the domain's stay as they are.
		return len(b.X509Authorities()), 0, nil
	}
	a.bundles.SetJWTAuthorities(td, b.JWTAuthorities())
	return len(b.X509Authorities()), len(b.JWTAuthorities()), nil
}

// bootstrapFederation loads the bootstrap bundles (an operator's `sworn
// bundle set` first, else bundle_file), so that workloads trust federated
// domains (and https_spiffe endpoints can be authenticated) before the
// first fetch.
func (a *Agent) bootstrapFederation() error {
	for _, f := range a.cfg.Federation.TrustDomains {
		td, _ := spiffeid.TrustDomainFromString(f.TrustDomain)
		b, err := a.bootstrapBundleOf(td, f.BundleFile)
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		a.bundles.SetX509Authorities(td, b.X509Authorities())
		if keys := b.JWTAuthorities(); len(keys) > 0 {
			a.bundles.SetJWTAuthorities(td, keys)
		}
	}
	return nil
}

// bootstrapBundleOf is td's stored bundle, else bundleFile's, else nil.
//
// A stored bundle that does not load (a disk fault, a hand edit; `sworn
// bundle set` never stores one) is logged by name and passed over for
// bundle_file and the endpoint: refusing to start would take every
// workload's SVIDs away for one federated domain. It is left in place for
// the operator to look at, and replaced by the next `sworn bundle set`.
// bundle_file is the operator's config: one that does not load stops the
// agent with an error naming it, as any config error does.
func (a *Agent) bootstrapBundleOf(td spiffeid.TrustDomain, bundleFile string) (*spiffebundle.Bundle, error) {
	stored := a.federatedPath(td)
	b, err := bundle.Load(td, stored)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		a.log.Error("the federated bundle `sworn bundle set` stored cannot be used; using bundle_file and the bundle endpoint instead: run `sworn bundle set` again",
			"trust_domain", td.Name(), "file", stored, "bundle_file", bundleFile, "error", err)
	}
	if bundleFile == "" {
		return nil, nil
	}
	b, err = bundle.Load(td, bundleFile)
	if err != nil {
		return nil, fmt.Errorf("agent: federation %s: bundle_file: %w", td, err)
	}
	return b, nil
}

// runFederation starts, as tasks, a watch of every federated bundle and
// the bundle endpoint, until ctx ends. What cannot start (a bad CA file, a
// taken address) is returned, and Run stops before serving.
func (a *Agent) runFederation(ctx context.Context, run func(string, func() error)) error {
	for _, f := range a.cfg.Federation.TrustDomains {
		fed, err := a.federation(f)
		if err != nil {
			return err
		}
		run("federation "+f.TrustDomain, func() error { return fed.Watch(ctx, a.bundles) })
	}
	if a.cfg.Federation.BundleEndpoint.Listen == "" {
		return nil
	}
	return a.runBundleEndpoint(ctx, run)
}

// runBundleEndpoint serves this trust domain's bundle, as a SPIFFE bundle
// endpoint, until ctx ends.
func (a *Agent) runBundleEndpoint(ctx context.Context, run func(string, func() error)) error {
	ep := a.cfg.Federation.BundleEndpoint
	handler, err := bundle.EndpointHandler(a.cfg.TrustDomainID(), a.bundles, ep.RefreshHint)
	if err != nil {
		return err
	}
	tlsCfg, err := a.endpointTLS(ctx, ep)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", ep.Listen)
	if err != nil {
		return fmt.Errorf("agent: bundle endpoint: %w", err)
	}
	// Failed handshakes (scanners, peers with the wrong roots) go to the
	// structured log at debug, not to the standard logger's stderr.
	srv := &http.Server{Handler: handler, TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.With("component", "bundle-endpoint").Handler(), slog.LevelDebug)}
	run("bundle endpoint", func() error {
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
		if err := srv.ServeTLS(l, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	a.log.Info("serving the trust bundle", "addr", l.Addr().String(), "profile", ep.Profile)
	return nil
}

func (a *Agent) federation(f config.FederatedTD) (*bundle.Federation, error) {
	td, _ := spiffeid.TrustDomainFromString(f.TrustDomain)
	fed := &bundle.Federation{
		TrustDomain: td, URL: f.URL, Profile: f.Profile,
		OnUpdate: func(b *spiffebundle.Bundle) {
			a.log.Info("federated bundle updated", "trust_domain", td.Name(), "authorities", len(b.X509Authorities()))
		},
		OnError: func(err error) {
			a.metrics.FederationFetchFailures.WithLabelValues(td.Name()).Inc()
			a.log.Warn("federated bundle fetch failed; keeping the last one", "trust_domain", td.Name(), "error", err)
		},
	}
	if f.Profile == bundle.ProfileHTTPSSPIFFE {
		fed.EndpointID, _ = spiffeid.FromString(f.EndpointSPIFFEID)
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("agent: federation %s: ca_file: %w", td, err)
		}
		fed.WebRoots = x509.NewCertPool()
		if !fed.WebRoots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agent: federation %s: ca_file has no certificate", td)
		}
	}
	return fed, nil
}

// endpointTLS is the bundle endpoint's TLS: with https_spiffe, an SVID of
// spiffe://<td>/sworn/bundle-endpoint from the agent's own CA, rotated like
// any other; with https_web, the configured certificate.
func (a *Agent) endpointTLS(ctx context.Context, ep config.BundleEndpoint) (*tls.Config, error) {
	if ep.Profile == bundle.ProfileHTTPSWeb {
		cert, err := tls.LoadX509KeyPair(ep.CertFile, ep.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("agent: bundle endpoint: %w", err)
		}
		return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
	}
	id, err := spiffeid.FromPath(a.cfg.TrustDomainID(), config.EndpointPath)
	if err != nil {
		return nil, err
	}
	sub, err := a.cache.Subscribe(ctx, []registry.Entry{{ID: id, TTL: a.cfg.SVID.TTL}}, cache.Requester{})
	if err != nil {
		return nil, fmt.Errorf("agent: bundle endpoint SVID: %w", err)
	}
	go func() {
		<-ctx.Done()
		sub.Close()
	}()
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		svids := sub.SVIDs()
		if len(svids) == 0 {
			return nil, errors.New("no bundle endpoint SVID")
		}
		// Parsed per handshake: the cache keeps only encodings, and a peer
		// fetches the bundle every few minutes at most.
		chain, err := svids[0].Certificates()
		if err != nil {
			return nil, err
		}
		key, err := svids[0].PrivateKey()
		if err != nil {
			return nil, err
		}
		cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, c := range chain {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
		return cert, nil
	}}, nil
}
