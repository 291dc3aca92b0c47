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

// `sworn bundle fetch --bundle-file` authenticates an https_spiffe endpoint
// with a bundle given as SPIFFE bundle JSON (as `bundle show --format
// spiffe` and `bundle fetch` print it) or as PEM, told apart by content,
// and fetches from the agent's real endpoint with either; a file that is
// neither, or JSON that does not parse, is refused naming the file and
// what is wrong with it.
func TestBundleFetchTakesSPIFFEJSONOrPEM(t *testing.T) {
	a, url := endpointAgent(t)
	dir := t.TempDir()
	spiffeDoc := showSPIFFE(t, a)[0]
	pemOut := clitest.Run(t, "bundle", "show", "--socket", a.Config.SocketPath)
	ownPEM := pemOut[strings.Index(pemOut, "# spiffe://example.org\n"):strings.Index(pemOut, "# spiffe://other.org\n")]
	fetch := func(file string, extra ...string) []string {
		return append([]string{"bundle", "fetch", "--trust-domain", "example.org", "--url", url,
			"--endpoint-spiffe-id", "spiffe://example.org/sworn/bundle-endpoint", "--bundle-file", file}, extra...)
	}
	for name, data := range map[string]string{"spiffe.json": spiffeDoc, "bundle.pem": ownPEM} {
		out := clitest.Run(t, fetch(writeFile(t, dir, name, []byte(data)))...)
		if !parse(t, exampleTD, strings.TrimSpace(out)).Equal(parse(t, exampleTD, spiffeDoc)) {
			t.Fatalf("bundle fetch with a %s bundle file printed\n%s\nwant the endpoint's bundle\n%s", name, out, spiffeDoc)
		}
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{name: "garbage", data: "this is not a bundle\n", want: "bundle for example.org is neither SPIFFE bundle JSON nor PEM; refused"},
		{name: "truncated.json", data: spiffeDoc[:len(spiffeDoc)/2], want: "unable to parse JWKS: unexpected end of JSON input"},
		{name: "not-a-jwks.json", data: `{"spiffe_sequence": 1}`, want: "spiffebundle: no authorities found"},
	} {
		file := writeFile(t, dir, tc.name, []byte(tc.data))
		err := clitest.Fail(t, fetch(file)...)
		if got := err.Error(); !strings.HasPrefix(got, "--bundle-file: bundle: "+file+": ") || !strings.Contains(got, tc.want) {
			t.Errorf("bundle fetch with %s: %v; want --bundle-file naming %s and saying %q", tc.name, err, file, tc.want)
		}
	}
}
