package cli_test

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// The bundle `sworn bundle fetch` authenticates an https_spiffe endpoint
// with (--bundle-file) is read as strictly as `sworn bundle set` reads
// one: a truncated, garbled or empty file is refused, naming the file,
// before any connection, instead of being taken for a smaller bundle
// (go-spiffe's x509bundle.Load keeps the certificates before the damage).
func TestBundleFetchRefusesADamagedBundleFile(t *testing.T) {
	dir := t.TempDir()
	var pems []byte
	for range 2 {
		pems = append(pems, testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{otherTD.ID().URL()}}).CertPEM()...)
	}
	endpoint := "https://" + testutil.FreeAddr(t) // nothing answers there
	for _, tc := range []struct {
		name, data, want string
	}{
		{name: "truncated", data: string(pems[:len(pems)-100]), want: "a PEM block that does not decode"},
		{name: "garbled", data: strings.Replace(string(pems), "-----END CERTIFICATE-----", "-----END CERTIF", 1), want: "a PEM block that does not decode"},
		{name: "empty", data: "", want: "is empty"},
		{name: "data after the last block", data: string(pems) + "MIIB", want: "data after its last PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".pem", []byte(tc.data))
			err := clitest.Fail(t, "bundle", "fetch", "--trust-domain", "other.org", "--url", endpoint,
				"--endpoint-spiffe-id", "spiffe://other.org/bundle", "--bundle-file", file)
			if got := err.Error(); !strings.HasPrefix(got, "--bundle-file: bundle: "+file+": ") || !strings.Contains(got, tc.want) {
				t.Fatalf("err = %v, want --bundle-file naming %s and saying %q", err, file, tc.want)
			}
		})
	}
	// The whole file is taken: the command goes on to the endpoint.
	file := writeFile(t, dir, "whole.pem", pems)
	err := clitest.Fail(t, "bundle", "fetch", "--trust-domain", "other.org", "--url", endpoint,
		"--endpoint-spiffe-id", "spiffe://other.org/bundle", "--bundle-file", file, "--timeout", "2s")
	if !strings.HasPrefix(err.Error(), "bundle fetch: bundle: endpoint") {
		t.Fatalf("err with the whole file = %v, want the fetch from %s to fail", err, endpoint)
	}
}
