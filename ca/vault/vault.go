package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/notify"
)

// CA is the Vault backend. It implements ca.Authority.
type CA struct {
	cfg Config
	c   *client

	mu      sync.RWMutex
	issuers []Issuer
	auths   ca.Authorities
	changed notify.Notifier // Notify under mu, after the state changes
	health  error
	inter   *intermediate // intermediate mode only
	// lastTTL is the lifetime of the last SVID asked for, in nanoseconds:
	// a refresh checks the CA can still cover it, so that Health keeps
	// reporting a CA too short to sign (ca.ErrExpired) until it is fixed.
	lastTTL atomic.Int64
	transit transitKey // JWT-SVIDs, when configured
}

// intermediate is a CA certificate Vault signed for this agent; its key
// exists only in memory.
type intermediate struct {
	cert  *x509.Certificate
	key   crypto.Signer
	chain []*x509.Certificate // cert and any Vault intermediates above it, without the anchor
}

var _ ca.Authority = (*CA)(nil)

// New connects to Vault, logs in and reads the issuers. If Vault cannot be
// reached (ca.ErrUnavailable) or turns the agent away (ca.ErrRefused) it
// still returns a CA, which keeps trying in Run and reports why in Health;
// a request that can never succeed (ca.ErrInvalidRequest, such as a mount
// without an issuer) is an error.
func New(ctx context.Context, cfg Config) (*CA, error) {
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("vault ca: trust domain is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vault ca: %w", err)
	}
	cfg.setDefaults()
	c, err := newClient(&cfg)
	if err != nil {
		return nil, err
	}
	v := &CA{cfg: cfg, c: c}
	err = c.login(ctx)
	if err == nil {
		err = v.refresh(ctx)
	}
	switch {
	case err == nil:
	case errors.Is(err, ca.ErrUnavailable):
		cfg.Logger.Error("Vault unreachable at start; retrying in the background", "address", c.api.Address(), "error", err)
		v.setHealth(err)
	case errors.Is(err, ca.ErrRefused):
		// Start anyway, as for an outage: an operator may fix the role or
		// policy in Vault, and the next call logs in again without a
		// restart. Health reports the refusal until then.
		cfg.Logger.Error("Vault refused the agent at start; fix the credentials or the policy, retrying in the background", "address", c.api.Address(), "error", err)
		v.setHealth(err)
	default:
		return nil, err
	}
	return v, nil
}

// Logins counts the logins to Vault so far.
func (v *CA) Logins() int { return v.c.Logins() }

// Run keeps the token alive, refreshes the issuers and (in intermediate
// mode) renews the intermediate until ctx ends.
func (v *CA) Run(ctx context.Context) error {
	go v.keepToken(ctx)
	tick := v.cfg.Clock.NewTimer(ca.RefreshWait(v.cfg.BundleRefresh, v.cfg.Rand(), true))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
		}
		if err := v.refresh(ctx); err != nil && ctx.Err() == nil {
			v.cfg.Logger.Warn("could not refresh CA state from Vault; keeping the last known bundle", "error", err)
		}
		tick.Reset(ca.RefreshWait(v.cfg.BundleRefresh, v.cfg.Rand(), false))
	}
}

// keepToken renews a renewable token with a LifetimeWatcher and logs in
// again when renewal ends (max TTL reached, token revoked) or fails.
func (v *CA) keepToken(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		secret, relogged := v.c.current()
		if secret == nil || secret.Auth == nil || !secret.Auth.Renewable {
			// Nothing to renew: a 403 on a call triggers the next login.
			select {
			case <-ctx.Done():
			case <-relogged:
			}
			continue
		}
		w, err := v.c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
		if err != nil {
			v.cfg.Logger.Error("cannot watch the Vault token", "error", err)
			return
		}
		go w.Start()
		var done error
		ended := false
		for !ended {
			select {
			case <-ctx.Done():
				ended = true
			case <-relogged:
				ended = true // someone else logged in; watch the new token
			case done = <-w.DoneCh():
				ended = true
				if err := v.c.login(ctx); err != nil {
					v.cfg.Logger.Error("Vault login failed; retrying", "error", err, "after", backoff, "watcher", done)
					select {
					case <-ctx.Done():
					case <-v.cfg.Clock.After(backoff):
					}
					backoff = min(backoff*2, time.Minute)
				} else {
					backoff = time.Second
				}
			case r := <-w.RenewCh():
				v.cfg.Logger.Debug("renewed Vault token", "at", r.RenewedAt)
			}
		}
		w.Stop()
	}
}

// refresh re-reads the issuers, renews the intermediate when due or when
// the default issuer changed, and publishes any change.
func (v *CA) refresh(ctx context.Context) error {
	iss, err := issuers(ctx, v.c, v.cfg.PKIMount)
	if err != nil {
		v.setHealth(err)
		return fmt.Errorf("vault ca: %w", err)
	}
	if len(iss) == 0 {
		v.setHealth(nil) // Vault answered; the mount is wrong
		return fmt.Errorf("vault ca: %w: mount %q has no issuer; run `sworn vault setup`", ca.ErrInvalidRequest, v.cfg.PKIMount)
	}
	next := ca.Authorities{X509: anchors(iss)}
	for _, i := range iss {
		if i.Default {
			next.Signing = i.ID
		}
	}
	var transit map[int]transitVersion
	if v.cfg.JWT.Key != "" {
		if transit, err = v.readTransitKey(ctx); err != nil {
			v.setHealth(err)
			return fmt.Errorf("vault ca: %w", err)
		}
	}
	v.mu.RLock()
	prev := v.auths
	inter := v.inter
	v.mu.RUnlock()

	var health error // of the intermediate's renewal
	if v.cfg.Mode == ModeIntermediate && v.intermediateDue(inter, prev.Signing != next.Signing) {
		fresh, err := v.obtainIntermediate(ctx, next.X509)
		health = err
		if err != nil {
			// Keep the current intermediate while it lasts, and do not
			// announce a new signer we could not get a certificate from.
			next.Signing = prev.Signing
			v.cfg.Logger.Error("could not renew the intermediate; signing with the current one", "error", err)
		} else {
			inter = fresh
		}
	}

	v.mu.Lock()
	v.issuers, v.inter = iss, inter
	if transit != nil {
		next.JWT = v.updateTransit(transit)
	}
	changed := prev.Signing != next.Signing || !ca.SameCertificates(prev.X509, next.X509) || !sameKeys(prev.JWT, next.JWT)
	if changed {
		v.auths = next
		v.changed.Notify()
	}
	v.mu.Unlock()
	if changed {
		v.cfg.Logger.Info("Vault CA state changed", "issuers", len(iss), "anchors", len(next.X509), "default_issuer", next.Signing)
	}
	if !healthClass(health) {
		// Vault answered: report whether its issuer (and intermediate)
		// can still cover an SVID, so Health does not read "fine" between
		// refused signing calls while the issuer is too short.
		health = v.coverage()
	}
	v.setHealth(health)
	return nil
}

// intermediateDue says whether to obtain a new intermediate: there is none,
// the default issuer changed, it is past half its life, or it can no longer
// cover the last SVID lifetime asked for.
func (v *CA) intermediateDue(inter *intermediate, signerChanged bool) bool {
	if inter == nil || signerChanged {
		return true
	}
	now := v.cfg.Clock.Now()
	half := inter.cert.NotBefore.Add(inter.cert.NotAfter.Sub(inter.cert.NotBefore) / 2)
	return !now.Before(half) || ca.IssuerCover(inter.cert.NotBefore, inter.cert.NotAfter, now, time.Duration(v.lastTTL.Load())) != ca.CoverOK
}

// healthClass reports whether err says something about the CA's health
// (an outage, a refusal, a CA that cannot cover an SVID) rather than about
// one request.
func healthClass(err error) bool {
	return err != nil && (errors.Is(err, ca.ErrUnavailable) || errors.Is(err, ca.ErrRefused) || errors.Is(err, ca.ErrExpired))
}

// setHealth records whether Vault can serve the agent: nil, an outage
// (ca.ErrUnavailable), a refusal (ca.ErrRefused) or an issuer that cannot
// cover an SVID (ca.ErrExpired). An invalid request says nothing about
// Vault, so it changes nothing.
func (v *CA) setHealth(err error) {
	if err != nil && !healthClass(err) {
		return
	}
	v.mu.Lock()
	v.health = err
	v.mu.Unlock()
	if v.cfg.OnHealth != nil {
		v.cfg.OnHealth(err)
	}
}

// Health returns nil when the last exchange with Vault succeeded, else its
// error: ca.ErrUnavailable for an outage, ca.ErrRefused when Vault turned
// the agent away, ca.ErrExpired when Vault's issuer (or the intermediate)
// has expired or cannot cover the last SVID lifetime asked for.
func (v *CA) Health() error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.health
}

// Authorities implements ca.Authority.
func (v *CA) Authorities() ca.Authorities {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.auths
}

// Changed implements ca.Authority.
func (v *CA) Changed() <-chan struct{} {
	return v.changed.Changed()
}

// DescribeCAs lists the issuers of the mount (ca.Describer).
func (v *CA) DescribeCAs(context.Context) ([]ca.Info, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []ca.Info
	signing, _ := Signing(v.issuers)
	for _, i := range v.issuers {
		state := ca.StatePrepared
		switch {
		case i.Default:
			state = ca.StateActive
		case i.Old(signing):
			// Not by NotBefore alone: two roots minted in one second
			// have the same.
			state = ca.StateOld
		}
		out = append(out, ca.Info{ID: i.ID, State: state, Certificate: i.Certificate})
	}
	if v.inter != nil {
		out = append(out, ca.Info{ID: "intermediate", State: ca.StateActive, Certificate: v.inter.cert})
	}
	return out, nil
}

// SignX509SVID implements ca.Authority.
func (v *CA) SignX509SVID(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	if req.ID.IsZero() || req.ID.TrustDomain() != v.cfg.TrustDomain {
		return nil, fmt.Errorf("vault ca: %w: %q is not in trust domain %q", ca.ErrInvalidRequest, req.ID, v.cfg.TrustDomain)
	}
	if req.TTL <= 0 || req.Key == nil {
		return nil, fmt.Errorf("vault ca: %w: a key and a positive ttl are required", ca.ErrInvalidRequest)
	}
	v.lastTTL.Store(int64(req.TTL))
	if v.cfg.Mode == ModeIntermediate {
		return v.signLocally(req)
	}
	if err := v.issuerCovers(v.cfg.Clock.Now(), req.TTL); err != nil {
		v.setHealth(err)
		return nil, err
	}
	chain, err := v.signWithVault(ctx, req)
	v.setHealth(err)
	if err != nil {
		return nil, err
	}
	err = ca.CheckX509SVID(chain, req.ID, v.Authorities().X509, v.cfg.Clock.Now())
	if err != nil {
		// The issuer may be newer than our last refresh: look again once,
		// since a certificate that chains to an issuer of the mount is
		// trusted the moment the bundle (sent with it) has that issuer.
		if rerr := v.refresh(ctx); rerr == nil {
			err = ca.CheckX509SVID(chain, req.ID, v.Authorities().X509, v.cfg.Clock.Now())
		}
	}
	if err != nil {
		v.cfg.Logger.Error("Vault returned a certificate that breaks the X.509-SVID profile; check the role with `sworn vault setup`",
			"role", v.cfg.Role, "spiffe_id", req.ID.String(), "error", err)
		return nil, fmt.Errorf("vault ca: %w", err)
	}
	return chain, nil
}

func (v *CA) signWithVault(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{req.ID.URL()}, DNSNames: req.DNSNames,
	}, req.Key)
	if err != nil {
		return nil, fmt.Errorf("vault ca: csr: %w", err)
	}
	data := map[string]any{
		"csr":                  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		"uri_sans":             req.ID.String(),
		"ttl":                  fmt.Sprintf("%ds", int64(req.TTL.Seconds())),
		"format":               "pem",
		"exclude_cn_from_sans": true,
	}
	if len(req.DNSNames) > 0 {
		data["alt_names"] = strings.Join(req.DNSNames, ",")
	}
	s, err := v.c.write(ctx, v.cfg.PKIMount+"/sign/"+v.cfg.Role, data)
	if err != nil {
		return nil, fmt.Errorf("vault ca: sign %s: %w", req.ID, err)
	}
	leaf, chain, err := certificateAndChain(s)
	if err != nil {
		return nil, fmt.Errorf("vault ca: sign %s: %w", req.ID, err)
	}
	if !ca.SamePublicKey(leaf.PublicKey, req.Key.Public()) {
		return nil, fmt.Errorf("vault ca: %w: Vault signed a different public key than the CSR's", ca.ErrBadCertificate)
	}
	return append([]*x509.Certificate{leaf}, chain...), nil
}

// certificateAndChain reads a Vault signing response: the certificate and
// the CA chain above it, without self-signed roots (workloads have those in
// their bundle).
func certificateAndChain(s *api.Secret) (*x509.Certificate, []*x509.Certificate, error) {
	if s == nil {
		return nil, nil, errors.New("empty response")
	}
	certPEM, _ := s.Data["certificate"].(string)
	certs, err := parsePEM(certPEM)
	if err != nil || len(certs) == 0 {
		return nil, nil, fmt.Errorf("%w: no certificate in the response", ca.ErrBadCertificate)
	}
	var chain []*x509.Certificate
	raw, _ := s.Data["ca_chain"].([]any)
	for _, p := range raw {
		str, _ := p.(string)
		cs, err := parsePEM(str)
		if err != nil {
			return nil, nil, fmt.Errorf("ca_chain: %w", err)
		}
		for _, c := range cs {
			// Some endpoints repeat the certificate itself in ca_chain.
			if !selfIssued(c) && !c.Equal(certs[0]) {
				chain = append(chain, c)
			}
		}
	}
	return certs[0], chain, nil
}

// selfIssued marks a root candidate. Its signature is not checked here:
// whether it is trusted is decided by verifying the chain against the
// bundle, and a self-signature check per response would only add cost.
func selfIssued(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject)
}

func sameKeys(a, b map[string]crypto.PublicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for kid := range a {
		if _, ok := b[kid]; !ok {
			return false
		}
	}
	return true
}

// obtainIntermediate has Vault sign a short-lived intermediate CA for this
// agent.
func (v *CA) obtainIntermediate(ctx context.Context, roots []*x509.Certificate) (*intermediate, error) {
	key, err := v.cfg.KeyType.Generate()
	if err != nil {
		return nil, err
	}
	td := v.cfg.TrustDomain
	host, _ := os.Hostname()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{Organization: []string{"sworn"}, CommonName: "sworn agent " + host},
		URIs:    []*url.URL{td.ID().URL()},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("vault ca: intermediate csr: %w", err)
	}
	s, err := v.c.write(ctx, v.cfg.PKIMount+"/root/sign-intermediate", map[string]any{
		"csr":                   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		"common_name":           "sworn agent " + host,
		"uri_sans":              td.IDString(),
		"permitted_uri_domains": td.Name(),
		"max_path_length":       0,
		"ttl":                   fmt.Sprintf("%ds", int64(v.cfg.IntermediateTTL.Seconds())),
		"use_csr_values":        false,
		"exclude_cn_from_sans":  true,
		"format":                "pem",
	})
	if err != nil {
		return nil, fmt.Errorf("vault ca: sign intermediate: %w", err)
	}
	cert, above, err := certificateAndChain(s)
	if err != nil {
		return nil, fmt.Errorf("vault ca: sign intermediate: %w", err)
	}
	if err := checkIntermediate(cert, key, v.cfg, roots, above); err != nil {
		return nil, fmt.Errorf("vault ca: %w: intermediate: %w", ca.ErrBadCertificate, err)
	}
	if len(cert.PermittedURIDomains) == 0 {
		v.cfg.Logger.Warn("this Vault did not add a URI name constraint to the intermediate; verifiers will not confine it to the trust domain")
	}
	v.cfg.Logger.Info("obtained intermediate CA from Vault", "not_after", cert.NotAfter, "serial", cert.SerialNumber.Text(16))
	return &intermediate{cert: cert, key: key, chain: append([]*x509.Certificate{cert}, above...)}, nil
}

func checkIntermediate(cert *x509.Certificate, key crypto.Signer, cfg Config, roots, above []*x509.Certificate) error {
	switch {
	case !ca.SamePublicKey(cert.PublicKey, key.Public()):
		return errors.New("the intermediate has a different public key than the CSR")
	case !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return errors.New("not a CA certificate with keyCertSign")
	case cert.MaxPathLen != 0 || !cert.MaxPathLenZero:
		return errors.New("path length is not constrained to 0")
	case len(cert.URIs) != 1 || cert.URIs[0].String() != cfg.TrustDomain.IDString():
		return fmt.Errorf("URI SANs %v, want only %s", cert.URIs, cfg.TrustDomain.IDString())
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range above {
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: cfg.Clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("does not chain to the mount's issuers: %w", err)
	}
	return nil
}

// signLocally signs with the intermediate; Vault is not called.
func (v *CA) signLocally(req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	v.mu.RLock()
	inter := v.inter
	v.mu.RUnlock()
	now := v.cfg.Clock.Now()
	if inter == nil {
		return nil, fmt.Errorf("vault ca: %w: no valid intermediate yet (Vault unreachable?)", ca.ErrUnavailable)
	}
	if err := v.intermediateCovers(inter, now, req.TTL, v.Health()); err != nil {
		if errors.Is(err, ca.ErrExpired) {
			v.setHealth(err)
		}
		return nil, err
	}
	leaf, err := ca.SignLeaf(inter.cert, inter.key, req, now)
	if err != nil {
		return nil, fmt.Errorf("vault ca: %w", err)
	}
	return append([]*x509.Certificate{leaf}, inter.chain...), nil
}

func parsePublicKeyPEM(s string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("no PEM public key")
	}
	return x509.ParsePKIXPublicKey(block.Bytes)
}
