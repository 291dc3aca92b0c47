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

// The key is 0600 even when the file it replaces was readable by all:
// renameio.WriteFile copies the old file's mode, so a key file once 0644
// kept every new key readable by any local user.
func TestWriteSVIDFilesKeyIs0600WhateverTheOldFileWas(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, trust.KeyFile)
	if err := os.WriteFile(keyPath, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	root := testutil.NewCA(t, nil)
	id := spiffeid.RequireFromString("spiffe://example.org/app")
	leaf := root.Issue(t, &x509.Certificate{URIs: []*url.URL{id.URL()}})
	svid := &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf.Cert}, PrivateKey: leaf.Key}
	bundle := x509bundle.FromX509Authorities(id.TrustDomain(), []*x509.Certificate{root.Cert})
	if err := trust.WriteSVIDFiles(dir, svid, bundle); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s is %v after the write, want 0600 (the old file was 0644)", trust.KeyFile, fi.Mode().Perm())
	}
}
