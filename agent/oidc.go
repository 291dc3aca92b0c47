package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/sworn-id/sworn/agent/oidc"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/unixsock"
)

// issuerSigner puts the OIDC issuer into every JWT-SVID it signs.
type issuerSigner struct {
	ca.JWTSigner
	issuer string
}

func (s issuerSigner) SignJWTSVID(ctx context.Context, req ca.JWTSVIDRequest) (string, time.Time, error) {
	req.Issuer = s.issuer
	return s.JWTSigner.SignJWTSVID(ctx, req)
}

// jwtSigner is signer, adding iss when oidc.jwt_issuer_claim is on.
func (a *Agent) jwtSigner(signer ca.JWTSigner) ca.JWTSigner {
	if o := a.cfg.OIDC; o.Enabled && o.JWTIssuerClaim {
		return issuerSigner{JWTSigner: signer, issuer: o.Issuer}
	}
	return signer
}

// runOIDC serves OIDC discovery of the trust domain's JWT bundle until ctx
// ends, over HTTPS or, for a fronting proxy, plain HTTP on a Unix socket.
// What cannot start (a certificate that does not load, a taken address) is
// returned, and Run stops before serving.
func (a *Agent) runOIDC(ctx context.Context, run func(string, func() error)) error {
	o := a.cfg.OIDC
	if !o.Enabled {
		return nil
	}
	handler, err := oidc.New(oidc.Config{Issuer: o.Issuer, TrustDomain: a.cfg.TrustDomainID(), Bundles: a.bundles})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	log := a.log.With("component", "oidc")
	var l net.Listener
	if o.Socket != "" {
		// The documents are public: any local user (a fronting proxy)
		// may read them, and no peer check applies.
		l, err = unixsock.Listen(o.Socket, 0o666, nil)
	} else {
		l, err = oidc.ListenHTTPS(o.Listen, o.CertFile, o.KeyFile, log)
	}
	if err != nil {
		return fmt.Errorf("agent: oidc: %w", err)
	}
	run("oidc discovery", func() error {
		err := oidc.Serve(ctx, l, handler, log)
		if o.Socket != "" {
			_ = os.Remove(o.Socket)
		}
		return err
	})
	a.log.Info("serving OIDC discovery", "issuer", o.Issuer, "addr", l.Addr().String())
	return nil
}
