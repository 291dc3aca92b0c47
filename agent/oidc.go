package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sworn-id/sworn/agent/oidc"
	"github.com/sworn-id/sworn/ca"
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
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	var l net.Listener
	if o.Socket != "" {
		l, err = listenPlainUnix(o.Socket)
	} else {
		l, err = a.listenOIDCTLS(o.Listen, o.CertFile, o.KeyFile)
	}
	if err != nil {
		return err
	}
	run("oidc discovery", func() error {
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
		err := srv.Serve(l)
		if o.Socket != "" {
			_ = os.Remove(o.Socket)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	a.log.Info("serving OIDC discovery", "issuer", o.Issuer, "addr", l.Addr().String())
	return nil
}

// listenOIDCTLS listens for HTTPS with the certificate files, which must
// load now and are re-read when they change.
func (a *Agent) listenOIDCTLS(addr, certFile, keyFile string) (net.Listener, error) {
	certs := &certFiles{cert: certFile, key: keyFile, log: a.log.With("component", "oidc")}
	if _, err := certs.get(); err != nil {
		return nil, fmt.Errorf("agent: oidc: %w", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agent: oidc: %w", err)
	}
	return tls.NewListener(l, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() },
	}), nil
}

// listenPlainUnix listens on a Unix socket any local user may reach: the
// documents are public.
func listenPlainUnix(path string) (net.Listener, error) {
	pl, err := listenUnix(path, 0o666, nil)
	if err != nil {
		return nil, fmt.Errorf("agent: oidc: %w", err)
	}
	// The peer checks are for workloads; a proxy fetching public keys
	// needs none.
	return pl.UnixListener, nil
}

// certFiles is a certificate pair read from disk, re-read when either
// file's size or modification time changes, so that a renewed
// certificate is served without a restart. A pair that fails to load
// after a change is logged and the last good one kept.
type certFiles struct {
	cert, key string
	log       *slog.Logger

	mu     sync.Mutex
	loaded *tls.Certificate
	stamp  [2]fileStamp
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), mod: fi.ModTime()}, nil
}

func (c *certFiles) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	certStamp, err1 := stampOf(c.cert)
	keyStamp, err2 := stampOf(c.key)
	stamp := [2]fileStamp{certStamp, keyStamp}
	if c.loaded != nil && (stamp == c.stamp || err1 != nil || err2 != nil) {
		return c.loaded, nil
	}
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		if c.loaded == nil {
			return nil, err
		}
		c.log.Error("certificate files changed but do not load; serving the previous certificate", "cert_file", c.cert, "key_file", c.key, "error", err)
		c.stamp = stamp // not again until they change again
		return c.loaded, nil
	}
	if c.loaded != nil {
		c.log.Info("certificate files re-read", "cert_file", c.cert)
	}
	c.loaded, c.stamp = &pair, stamp
	return c.loaded, nil
}
