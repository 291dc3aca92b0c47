package trust_test

import (
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/trust"
)

// The SVID key is never written, not even for a moment, outside the
// directory it is written to: renameio would otherwise stage it in $TMPDIR
// when that is on the same file system, where a crash leaves it behind.
func TestWriteSVIDFilesStagesNothingInTMPDIR(t *testing.T) {
	base := t.TempDir() // one file system for TMPDIR and the target
	tmp, dir := filepath.Join(base, "tmp"), filepath.Join(base, "svid")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	root := testutil.NewCA(t, nil)
	id := spiffeid.RequireFromString("spiffe://example.org/app")
	leaf := root.Issue(t, &x509.Certificate{URIs: []*url.URL{id.URL()}})
	svid := &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf.Cert}, PrivateKey: leaf.Key}
	bundle := x509bundle.FromX509Authorities(id.TrustDomain(), []*x509.Certificate{root.Cert})

	created := testutil.CreatedIn(t, tmp, func() {
		if err := trust.WriteSVIDFiles(dir, svid, bundle); err != nil {
			t.Fatal(err)
		}
		if err := trust.WriteFederatedBundles(dir, []*x509bundle.Bundle{bundle}); err != nil {
			t.Fatal(err)
		}
	})
	if len(created) != 0 {
		t.Fatalf("files created in TMPDIR while writing SVID files: %v, want none", created)
	}
}
