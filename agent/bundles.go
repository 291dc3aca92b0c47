package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/internal/atomicfile"
)

// bootstrapBundle puts the CA's authorities in the bundle store and returns
// the X.509 ones. When the CA gave none at start (unreachable, or it
// refused the agent) it serves the bundle the CA last gave instead, kept in
// the data dir, so persisted SVIDs can be restored and verified by
// workloads. A last bundle that cannot be read is logged as an error naming
// the file and what is wrong with it, never silently dropped.
func (a *Agent) bootstrapBundle() []*x509.Certificate {
	td := a.cfg.TrustDomainID()
	trusted := a.auth.Authorities().X509
	if len(trusted) > 0 {
		a.saveBundle(trusted)
	} else {
		trusted = a.lastBundle()
	}
	if len(trusted) > 0 {
		a.bundles.SetX509Authorities(td, trusted)
	}
	if keys := a.auth.Authorities().JWT; len(keys) > 0 {
		a.bundles.SetJWTAuthorities(td, keys)
	}
	return trusted
}

// lastBundle reads the bundle the CA last gave, logging why it cannot.
func (a *Agent) lastBundle() []*x509.Certificate {
	why := "CA unreachable at start"
	if caState(a.caState.Load()) == caRefused {
		why = "CA refused the agent at start"
	}
	path := a.bundlePath()
	// bundle.Load, not x509bundle.Load: go-spiffe's stops at the first
	// block it cannot read, so a truncated file would be a smaller bundle.
	b, err := bundle.Load(a.cfg.TrustDomainID(), path)
	if err == nil && len(b.X509Authorities()) == 0 {
		err = errors.New("it holds no CA certificate")
	}
	switch {
	case err == nil:
		a.log.Warn(why+"; serving the last known trust bundle", "file", path, "authorities", len(b.X509Authorities()))
		return b.X509Authorities()
	case errors.Is(err, fs.ErrNotExist):
		a.log.Warn(why+"; no last known trust bundle yet", "file", path)
	default:
		a.log.Error(fmt.Sprintf("%s, and the last known trust bundle %s cannot be used: %v; persisted SVIDs are served only with the trust anchors kept in their own files until the CA answers (which rewrites %s); replace the file or bring the CA back", why, path, err, path),
			"file", path, "error", err)
	}
	return nil
}

// restoreSVIDs serves the persisted SVIDs. Without a trusted bundle (the CA
// gave none and the last one is missing or unreadable), the cache restores
// those that verify against the trust anchors kept in their own files, and
// those anchors are served as the bundle until the CA answers.
//
// Why that may be trusted: bundle.pem and the SVID files lie in the same
// data dir, which only root or the agent's uid can write (New refuses to
// start otherwise, see agent/secpath), so an anchor read from an SVID file
// is exactly as trustworthy as one read from bundle.pem; a corrupt
// bundle.pem says nothing against the other files. What it can be is
// older than bundle.pem (a root retired since), so every SVID restored this
// way is renewed as soon as the CA answers.
func (a *Agent) restoreSVIDs(trusted []*x509.Certificate) {
	n, anchors := a.cache.Restore(trusted)
	if len(trusted) == 0 && len(anchors) > 0 {
		a.bundles.SetX509Authorities(a.cfg.TrustDomainID(), anchors)
		a.log.Warn("no trusted bundle: serving the trust anchors kept with the persisted SVIDs until the CA answers", "svids", n, "authorities", len(anchors))
	}
}

// bundlePath is where the last bundle the CA gave is kept.
func (a *Agent) bundlePath() string { return filepath.Join(a.cfg.DataDir, "bundle.pem") }

func (a *Agent) saveBundle(certs []*x509.Certificate) {
	data, err := x509bundle.FromX509Authorities(a.cfg.TrustDomainID(), certs).Marshal()
	if err == nil {
		err = os.MkdirAll(a.cfg.DataDir, 0o700)
	}
	if err == nil {
		// The temp file stays in the data dir, where New removes it if a
		// crash interrupts the write.
		err = atomicfile.Write(a.bundlePath(), data, 0o644)
	}
	if err != nil {
		a.log.Warn("could not save the trust bundle", "error", err)
	}
}

// syncBundles publishes every change of the CA's authorities and re-issues
// all SVIDs when the signing CA changes, or differs at start from the one
// they were last re-issued under (see reissue.go).
func (a *Agent) syncBundles(ctx context.Context) {
	td := a.cfg.TrustDomainID()
	recorded := a.readSigningRecord()
	signing := ""
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
		case signing == "" && (recorded == "" || recorded == auths.Signing):
			// First contact (at start, or with a CA that was down then)
			// with the CA the SVIDs were issued under, or a first start.
			signing = auths.Signing
			if recorded == "" {
				a.writeSigningRecord(signing)
			}
		case signing == "":
			signing = auths.Signing
			a.log.Warn("the signing CA changed since every SVID was last re-issued (while the agent was down, or a re-issue was cut short); re-issuing every SVID", "was", recorded, "ca", signing, "svids", a.cache.Len())
			a.requestReissue(signing)
		default:
			signing = auths.Signing
			a.log.Info("signing CA changed; re-issuing every SVID", "ca", signing, "svids", a.cache.Len())
			a.requestReissue(signing)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
