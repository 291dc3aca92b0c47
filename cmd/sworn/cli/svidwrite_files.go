package cli

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/internal/atomicfile"
)

// writePlan is what `svid write` writes and how: names, modes and what
// goes into the bundle. An empty svidName turns the X.509 files off.
type writePlan struct {
	dir                           string
	svidName, keyName, bundleName string
	federatedName                 string // federated bundles in their own file ("" for none)
	includeFederated              bool   // federated bundles appended to bundleName (spiffe-helper)
	addIntermediates              bool   // the chain's intermediates go to the bundle, the leaf alone to svidName
	hint                          string
	certMode, keyMode             fs.FileMode
	jwtSVIDMode, jwtBundleMode    fs.FileMode
	jwtSVIDs                      []jwtTarget
	jwtBundleName                 string
}

// jwtTarget is a JWT-SVID kept in a file for an audience.
type jwtTarget struct {
	audience string
	extra    []string
	file     string
}

func (p *writePlan) x509() bool { return p.svidName != "" }

// secretModes are the files that hold credentials: the SVID key and the
// JWT-SVIDs (bearer tokens).
func (p *writePlan) checkModes(unsafe bool) error {
	for _, m := range []struct {
		what string
		mode fs.FileMode
		on   bool
	}{{"key file mode", p.keyMode, p.x509()}, {"JWT-SVID file mode", p.jwtSVIDMode, len(p.jwtSVIDs) > 0}} {
		if m.on && m.mode&0o077 != 0 && !unsafe {
			return fmt.Errorf("svid write: %s %#o lets group or others read a credential; use 0600 or stricter, or --unsafe-key-mode to allow it", m.what, m.mode)
		}
	}
	// The bundles are trust anchors: whoever can write one between
	// rotations chooses which CA (or JWT keys) the workload trusts.
	for _, m := range []struct {
		what string
		mode fs.FileMode
		on   bool
	}{{"cert file mode", p.certMode, p.x509()}, {"JWT bundle file mode", p.jwtBundleMode, p.jwtBundleName != ""}} {
		if m.on && m.mode&0o022 != 0 && !unsafe {
			return fmt.Errorf("svid write: %s %#o lets group or others write a bundle, and so choose what the workload trusts; use 0644 or stricter, or --unsafe-key-mode to allow it", m.what, m.mode)
		}
	}
	return nil
}

// prepareDir creates dir if need be and refuses one others can write: they
// could swap a file between our rename and the reader's open, or (in a
// sticky directory) squat our names.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("svid write: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("svid write: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("svid write: %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("svid write: directory %s is writable by group or others (mode %#o); use one only its owner can write, e.g. a subdirectory sworn creates (%s)",
			dir, perm, filepath.Join(dir, "svid"))
	}
	// Its owner may write it whatever the mode: a directory someone else
	// made first (a cert_dir in /tmp) lets them swap the bundle for theirs.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("svid write: directory %s is owned by uid %d, who could replace what is written there; use one owned by uid %d or root", dir, st.Uid, os.Geteuid())
	}
	return nil
}

// writeFile replaces dir/name by atomic rename with exactly mode (no umask:
// the mode is what was asked for, and it was checked), staged in dir.
func writeFile(dir, name string, data []byte, mode fs.FileMode) error {
	err := atomicfile.Write(filepath.Join(dir, name), data, mode)
	if err != nil {
		return fmt.Errorf("svid write: write %s: %w", name, err)
	}
	return nil
}

func pemCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// pickSVID returns the SVID named by hint, else the default one.
func pickSVID(c *workloadapi.X509Context, hint string) (*x509svid.SVID, error) {
	if len(c.SVIDs) == 0 {
		return nil, errors.New("svid write: the agent returned no SVID")
	}
	if hint == "" {
		return c.DefaultSVID(), nil
	}
	for _, s := range c.SVIDs {
		if s.Hint == hint {
			return s, nil
		}
	}
	return nil, fmt.Errorf("svid write: no SVID with hint %q", hint)
}

// writeX509 writes the key first, so a new certificate never sits beside
// an old key.
func (p *writePlan) writeX509(c *workloadapi.X509Context) (*x509svid.SVID, error) {
	svid, err := pickSVID(c, p.hint)
	if err != nil {
		return nil, err
	}
	own, err := c.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		return nil, fmt.Errorf("svid write: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("svid write: %w", err)
	}
	chain, bundle := svid.Certificates, own.X509Authorities()
	if p.addIntermediates {
		chain, bundle = chain[:1], append(append([]*x509.Certificate{}, bundle...), chain[1:]...)
	}
	var federated []*x509.Certificate
	for _, b := range c.Bundles.Bundles() {
		if b.TrustDomain() != svid.ID.TrustDomain() {
			federated = append(federated, b.X509Authorities()...)
		}
	}
	if p.includeFederated {
		bundle = append(bundle, federated...)
	}
	if err := writeFile(p.dir, p.keyName, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), p.keyMode); err != nil {
		return nil, err
	}
	if err := writeFile(p.dir, p.svidName, pemCerts(chain), p.certMode); err != nil {
		return nil, err
	}
	if err := writeFile(p.dir, p.bundleName, pemCerts(bundle), p.certMode); err != nil {
		return nil, err
	}
	return svid, p.writeFederated(federated)
}

// writeFederated keeps federated_bundle.pem (sworn's own layout) or
// removes it when there are no federated trust domains.
func (p *writePlan) writeFederated(certs []*x509.Certificate) error {
	if p.federatedName == "" {
		return nil
	}
	if len(certs) == 0 {
		if err := os.Remove(filepath.Join(p.dir, p.federatedName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("svid write: %w", err)
		}
		return nil
	}
	return writeFile(p.dir, p.federatedName, pemCerts(certs), p.certMode)
}

// jwtBundleJSON is spiffe-helper's JWT bundle file: a JSON object from
// trust domain name to the base64 of that trust domain's JWKS.
func jwtBundleJSON(set *jwtbundle.Set) ([]byte, error) {
	out := map[string]string{}
	for _, b := range set.Bundles() {
		jwks, err := b.Marshal()
		if err != nil {
			return nil, fmt.Errorf("svid write: %w", err)
		}
		out[b.TrustDomain().Name()] = base64.StdEncoding.EncodeToString(jwks)
	}
	return json.Marshal(out)
}
