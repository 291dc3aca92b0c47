// Package stepca is sworn's backend for smallstep's step-ca, reached with
// a small client of its own (client.go, provisioner.go) that speaks
// step-ca's HTTP API as the one in github.com/smallstep/certificates/ca
// does, without the step-ca server packages that one imports.
//
// The agent makes each SVID's key pair and sends a CSR (URI SAN = the
// SPIFFE ID, plus any DNS names) to step-ca's sign API with a one-time token
// from a JWK provisioner, whose encrypted key is fetched from the CA and
// decrypted with the provisioner password (re-read from its file at every
// (re)load). step-ca's certificate template decides the extensions, so
// every leaf is checked against the X.509-SVID profile and the bundle
// before it is served; deploy/stepca/spiffe-leaf.tpl is a template that
// passes. The trust bundle is step-ca's roots (and federated roots),
// refreshed on an interval and pushed on change; every connection is
// pinned to one root: the root file's, or the root step-ca serves under
// the configured SHA-256 fingerprint (fetched, and checked against it, at
// the first exchange, so a step-ca down at start is an outage like any
// other, and the first sign after it answers loads the roots; a root that
// does not match is an invalid request). Unreachable
// step-ca wraps ca.ErrUnavailable: cached SVIDs stay served and renewals
// back off, as with Vault. A 401 or 403 (step-ca refused the token, e.g. one signed
// with a provisioner key it no longer holds) wraps ca.ErrRefused, and the
// next sign loads the provisioner and its password file again. Every
// exchange reports its class (outage, refusal or nil) to OnHealth, a
// bundle refresh included (bounded by bundle_refresh, at most 10s, so a paused
// step-ca is an outage, not a refresh that never returns).
//
// Config is also the agent's ca.stepca section: its YAML keys, its default
// (ApplyDefaults) and its one Validate (the https URL, exactly one root
// pin, the provisioner), which New calls too, live here and nowhere else.
package stepca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/notify"
)

// CA is the step-ca backend; it implements ca.Authority.
type CA struct {
	cfg    Config
	client *client

	mu      sync.RWMutex
	prov    *provisioner
	auths   ca.Authorities
	changed notify.Notifier // Notify under mu, after the state changes
}

var _ ca.Authority = (*CA)(nil)

// New connects to step-ca. If it cannot be reached, New still returns a CA
// that keeps trying in Run.
func New(ctx context.Context, cfg Config) (*CA, error) {
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("stepca: trust domain is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stepca: %w", err)
	}
	cfg.setDefaults()
	client, err := newClient(cfg.URL, cfg.RootFile, cfg.RootFingerprint)
	if err != nil {
		return nil, fmt.Errorf("stepca: %w", err)
	}
	c := &CA{cfg: cfg, client: client}
	if err := c.refresh(ctx); err != nil {
		if !errors.Is(err, ca.ErrUnavailable) {
			return nil, err
		}
		cfg.Logger.Error("step-ca unreachable at start; retrying in the background", "url", cfg.URL, "error", err)
	}
	return c, nil
}

// Run refreshes the roots until ctx ends.
func (c *CA) Run(ctx context.Context) error {
	t := c.cfg.Clock.NewTimer(ca.RefreshWait(c.cfg.BundleRefresh, c.cfg.Rand(), true))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		// A paused step-ca answers no request: bound each refresh, so an
		// outage is reported rather than waited on forever.
		rctx, cancel := context.WithTimeout(ctx, min(c.cfg.BundleRefresh, refreshTimeout))
		err := c.refresh(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.cfg.Logger.Warn("could not refresh step-ca roots; keeping the last bundle", "error", err)
		}
		t.Reset(ca.RefreshWait(c.cfg.BundleRefresh, c.cfg.Rand(), false))
	}
}

// refreshTimeout bounds one refresh (as step's client bounds a TLS
// handshake).
const refreshTimeout = 10 * time.Second

func (c *CA) refresh(ctx context.Context) error {
	certs, err := c.client.roots(ctx, "/roots")
	if err != nil {
		err = fmt.Errorf("stepca: roots: %w", classify(err))
	}
	c.health(err)
	if err != nil {
		return err
	}
	if fed, err := c.client.roots(ctx, "/federation"); err == nil {
		for _, r := range fed {
			if !containsCert(certs, r) {
				certs = append(certs, r)
			}
		}
	}
	if len(certs) == 0 {
		return fmt.Errorf("stepca: %w: step-ca returned no root", ca.ErrInvalidRequest)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ca.SameCertificates(c.auths.X509, certs) {
		c.auths = ca.Authorities{X509: certs}
		c.changed.Notify()
		c.cfg.Logger.Info("step-ca roots changed", "roots", len(certs))
	}
	return nil
}

// provisioner returns the JWK provisioner, loading it (and the password)
// when first needed or after a failure.
func (c *CA) provisioner(ctx context.Context) (*provisioner, error) {
	c.mu.RLock()
	p := c.prov
	c.mu.RUnlock()
	if p != nil {
		return p, nil
	}
	password, err := os.ReadFile(c.cfg.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("stepca: %w: password_file: %w", ca.ErrInvalidRequest, err)
	}
	p, err = c.client.loadProvisioner(ctx, c.cfg.Provisioner, []byte(strings.TrimSpace(string(password))))
	if err != nil {
		return nil, fmt.Errorf("stepca: provisioner %s: %w", c.cfg.Provisioner, classify(err))
	}
	c.mu.Lock()
	c.prov = p
	c.mu.Unlock()
	return p, nil
}

// SignX509SVID implements ca.Authority.
func (c *CA) SignX509SVID(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	if req.ID.IsZero() || req.ID.TrustDomain() != c.cfg.TrustDomain || req.TTL <= 0 || req.Key == nil {
		return nil, fmt.Errorf("stepca: %w: a key, a positive ttl and an ID of %s are required", ca.ErrInvalidRequest, c.cfg.TrustDomain)
	}
	if len(c.Authorities().X509) == 0 {
		// step-ca was down when New ran: without its roots no leaf could
		// be checked, so load them now rather than at the next refresh.
		if err := c.refresh(ctx); err != nil {
			return nil, err
		}
	}
	chain, err := c.sign(ctx, req)
	c.health(err)
	if err != nil {
		return nil, err
	}
	if err := ca.CheckX509SVID(chain, req.ID, c.Authorities().X509, c.cfg.Clock.Now()); err != nil {
		c.cfg.Logger.Error("step-ca returned a certificate that breaks the X.509-SVID profile; check the provisioner's template (deploy/stepca/spiffe-leaf.tpl)",
			"provisioner", c.cfg.Provisioner, "spiffe_id", req.ID.String(), "error", err)
		return nil, fmt.Errorf("stepca: %w", err)
	}
	return chain, nil
}

func (c *CA) sign(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	p, err := c.provisioner(ctx)
	if err != nil {
		return nil, err
	}
	sans := append([]string{req.ID.String()}, req.DNSNames...)
	token, err := p.token(req.ID.String(), sans, time.Now())
	if err != nil {
		return nil, fmt.Errorf("stepca: token: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{req.ID.URL()}, DNSNames: req.DNSNames}, req.Key)
	if err != nil {
		return nil, fmt.Errorf("stepca: csr: %w", err)
	}
	leaf, sent, err := c.client.sign(ctx, der, token, req.TTL.String())
	if err != nil {
		err = classify(err)
		if errors.Is(err, ca.ErrUnavailable) || errors.Is(err, ca.ErrRefused) {
			// A new connection, or a token refused after the provisioner's
			// key was rotated, needs the provisioner (and its password
			// file) loaded again.
			c.mu.Lock()
			c.prov = nil
			c.mu.Unlock()
		}
		return nil, fmt.Errorf("stepca: sign %s: %w", req.ID, err)
	}
	chain := []*x509.Certificate{leaf}
	for _, crt := range sent {
		if !crt.Equal(leaf) && string(crt.RawIssuer) != string(crt.RawSubject) {
			chain = append(chain, crt)
		}
	}
	if !ca.SamePublicKey(chain[0].PublicKey, req.Key.Public()) {
		return nil, fmt.Errorf("stepca: %w: step-ca signed a different public key", ca.ErrBadCertificate)
	}
	return chain, nil
}

// Authorities implements ca.Authority.
func (c *CA) Authorities() ca.Authorities {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.auths
}

// Changed implements ca.Authority.
func (c *CA) Changed() <-chan struct{} {
	return c.changed.Changed()
}

// health tells OnHealth about an exchange with step-ca: nil, an outage
// (ca.ErrUnavailable) or a refusal (ca.ErrRefused), as the Vault backend
// does. err must already be classified, so that the agent sees the class
// and not a bare client error it would take for an answer. Other errors
// say nothing about step-ca and are not reported.
func (c *CA) health(err error) {
	if c.cfg.OnHealth == nil {
		return
	}
	if err != nil && !errors.Is(err, ca.ErrUnavailable) && !errors.Is(err, ca.ErrRefused) {
		return
	}
	c.cfg.OnHealth(err)
}

// classify wraps err with the ca error class: no answer or a 5xx is an
// outage; 401 and 403 are step-ca turning the agent's token (its
// provisioner, key or password) away, which waiting does not fix; any
// other answer is a bad request.
func classify(err error) error {
	if err == nil || errors.Is(err, ca.ErrUnavailable) || errors.Is(err, ca.ErrRefused) ||
		errors.Is(err, ca.ErrInvalidRequest) || errors.Is(err, ca.ErrBadCertificate) {
		return err
	}
	var ne net.Error
	var ue *url.Error
	var sc interface{ StatusCode() int }
	switch {
	case errors.As(err, &sc) && (sc.StatusCode() == http.StatusUnauthorized || sc.StatusCode() == http.StatusForbidden):
		return fmt.Errorf("%w: step-ca turned the agent's token away (check the provisioner and its key): %w", ca.ErrRefused, err)
	case errors.As(err, &sc) && sc.StatusCode() < 500:
		return fmt.Errorf("%w: %w", ca.ErrInvalidRequest, err)
	case errors.As(err, &ne), errors.As(err, &ue), errors.As(err, &sc),
		// The client unwraps a *url.Error down to its cause (as step's
		// does), so a connection that dies mid-request (a stopped step-ca)
		// arrives as a bare EOF.
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", ca.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", ca.ErrInvalidRequest, err)
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}
