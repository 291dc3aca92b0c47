package oidc

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
)

// ListenHTTPS listens for HTTPS at addr with the certificate files, which
// must load now and are re-read when they change.
func ListenHTTPS(addr, certFile, keyFile string, log *slog.Logger) (net.Listener, error) {
	certs := &certFiles{cert: certFile, key: keyFile, log: log}
	if _, err := certs.get(); err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	return tls.NewListener(l, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() },
	}), nil
}

// Serve serves h on l until ctx ends; a clean stop returns nil. Errors of
// single connections (a failed TLS handshake, a client that hangs up) go
// to log, not to the standard logger.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("oidc: %w", err)
	}
	return nil
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
