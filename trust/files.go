package trust

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/sworn-id/sworn/internal/atomicfile"
)

// File names written by WriteSVIDFiles, as spiffe-helper names them.
const (
	SVIDFile   = "svid.pem"
	KeyFile    = "svid_key.pem"
	BundleFile = "bundle.pem"
)

// WriteSVIDFiles writes svid's chain, its PKCS#8 key (mode 0600) and the
// bundle's CA certificates into dir. Each file is replaced by atomic rename,
// so a reader sees the old file or the new one, never a mix; the key is
// written first so that a new certificate never sits beside an old key.
func WriteSVIDFiles(dir string, svid *x509svid.SVID, bundle *x509bundle.Bundle) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	certs, key, err := svid.Marshal()
	if err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{KeyFile, key, 0o600},
		{SVIDFile, certs, 0o644},
		{BundleFile, encodeCerts(bundle.X509Authorities()), 0o644},
	}
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("trust: write %s: %w", f.name, err)
		}
	}
	return nil
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// FederatedBundleFile holds the CA certificates of federated trust domains.
const FederatedBundleFile = "federated_bundle.pem"

// WriteFederatedBundles writes the CA certificates of bundles into
// dir/federated_bundle.pem by atomic rename, or removes the file when there
// are none.
func WriteFederatedBundles(dir string, bundles []*x509bundle.Bundle) error {
	path := filepath.Join(dir, FederatedBundleFile)
	if len(bundles) == 0 {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("trust: %w", err)
		}
		return nil
	}
	var data []byte
	for _, b := range bundles {
		data = append(data, encodeCerts(b.X509Authorities())...)
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("trust: write %s: %w", FederatedBundleFile, err)
	}
	return nil
}
