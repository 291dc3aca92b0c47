package agent

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
)

// bootstrapBundle puts the CA's authorities in the bundle store and returns
// the X.509 ones. When the CA gave none at start (unreachable, or it
// refused the agent) it serves the bundle the CA last gave instead, kept in the data dir, so persisted SVIDs can be
// restored and verified by workloads.
func (a *Agent) bootstrapBundle() []*x509.Certificate {
	td := a.cfg.TrustDomainID()
	trusted := a.auth.Authorities().X509
	if len(trusted) > 0 {
		a.saveBundle(trusted)
	} else if b, err := x509bundle.Load(td, a.bundlePath()); err == nil {
		trusted = b.X509Authorities()
		why := "CA unreachable at start"
		if caState(a.caState.Load()) == caRefused {
			why = "CA refused the agent at start"
		}
		a.log.Warn(why+"; serving the last known trust bundle", "authorities", len(trusted))
	}
	if len(trusted) > 0 {
		a.bundles.SetX509Authorities(td, trusted)
	}
	if keys := a.auth.Authorities().JWT; len(keys) > 0 {
		a.bundles.SetJWTAuthorities(td, keys)
	}
	return trusted
}

// bundlePath is where the last bundle the CA gave is kept.
func (a *Agent) bundlePath() string { return filepath.Join(a.cfg.DataDir, "bundle.pem") }

func (a *Agent) saveBundle(certs []*x509.Certificate) {
	data, err := x509bundle.FromX509Authorities(a.cfg.TrustDomainID(), certs).Marshal()
	if err == nil {
		err = os.MkdirAll(a.cfg.DataDir, 0o700)
	}
	if err == nil {
		err = renameio.WriteFile(a.bundlePath(), data, 0o644)
	}
	if err != nil {
		a.log.Warn("could not save the trust bundle", "error", err)
	}
}

// syncBundles publishes every change of the CA's authorities and re-issues
// all SVIDs when the signing CA changes.
func (a *Agent) syncBundles(ctx context.Context) {
	td := a.cfg.TrustDomainID()
	signing := a.auth.Authorities().Signing
	for {
		changed := a.auth.Changed()
		auths := a.auth.Authorities()
		// An empty set means the CA has not answered yet, never that
		// nothing is trusted: keep what is served.
		if len(auths.X509) > 0 && a.bundles.SetX509Authorities(td, auths.X509) {
			a.log.Info("trust bundle updated", "authorities", len(auths.X509))
			a.saveBundle(auths.X509)
		}
		if len(auths.JWT) > 0 && a.bundles.SetJWTAuthorities(td, auths.JWT) {
			a.log.Info("JWT bundle updated", "keys", len(auths.JWT))
		}
		switch {
		case auths.Signing == signing || auths.Signing == "":
		case signing == "":
			// First contact with a CA that was down at start: not a change.
			signing = auths.Signing
		default:
			signing = auths.Signing
			n := a.cache.Rotate()
			a.log.Info("signing CA changed; re-issuing every SVID", "ca", signing, "svids", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
