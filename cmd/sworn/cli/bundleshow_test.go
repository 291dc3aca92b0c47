package cli_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

var exampleTD = spiffeid.RequireTrustDomainFromString("example.org")

// endpointAgent runs an agent of example.org serving its bundle endpoint
// (https_spiffe) with a 42s refresh hint, federating with other.org from
// a bundle file (other.org's endpoint never answers).
func endpointAgent(t *testing.T) (*agenttest.Agent, string) {
	t.Helper()
	otherCA := testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{otherTD.ID().URL()}})
	cfg := agenttest.Config(t)
	cfg.Rules[0].FederatesWith = []string{"other.org"}
	addr := testutil.FreeAddr(t)
	cfg.Federation = config.Federation{
		BundleEndpoint: config.BundleEndpoint{Listen: addr, Profile: "https_spiffe", RefreshHint: 42 * time.Second},
		TrustDomains: []config.FederatedTD{{TrustDomain: "other.org", URL: "https://" + testutil.FreeAddr(t), Profile: "https_web",
			BundleFile: writeFile(t, t.TempDir(), "other.pem", otherCA.CertPEM())}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return agenttest.Start(t, cfg), "https://" + addr
}

// served is the body the agent's bundle endpoint at url answers with,
// authenticated as https_spiffe against the bundle the agent gives this
// process.
func served(t *testing.T, a *agenttest.Agent, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bundles, err := workloadapi.FetchX509Bundles(ctx, workloadapi.WithAddr(a.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromPath(exampleTD, config.EndpointPath)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsconfig.TLSClientConfig(bundles, tlsconfig.AuthorizeID(id))}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("bundle endpoint: %d %s, %v", resp.StatusCode, body, err)
	}
	return string(body)
}

// showSPIFFE runs `sworn bundle show --format spiffe` on a's admin socket
// and returns the documents it printed, one a line, in order.
func showSPIFFE(t *testing.T, a *agenttest.Agent, extra ...string) []string {
	t.Helper()
	out := clitest.Run(t, append([]string{"bundle", "show", "--format", "spiffe", "--admin-socket", a.Config.AdminSocketPath}, extra...)...)
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// parse reads doc as td's SPIFFE bundle, checking its CAs are td's: the
// document itself does not name its trust domain.
func parse(t *testing.T, td spiffeid.TrustDomain, doc string) *spiffebundle.Bundle {
	t.Helper()
	b, err := spiffebundle.Parse(td, []byte(doc))
	if err != nil {
		t.Fatalf("not a SPIFFE bundle of %s: %v\n%s", td, err, doc)
	}
	for _, c := range b.X509Authorities() {
		if len(c.URIs) != 1 || c.URIs[0].String() != td.IDString() {
			t.Fatalf("bundle shown as %s's holds a CA of %v", td, c.URIs)
		}
	}
	return b
}

// `sworn bundle show --format spiffe` prints the document the bundle
// endpoint serves for the agent's trust domain, X.509 and JWT authorities,
// sequence and refresh hint included, before and after a CA rotation; and
// federated domains' bundles after it (only those with --federated).
func TestBundleShowSPIFFEIsWhatTheEndpointServes(t *testing.T) {
	a, url := endpointAgent(t)
	before := sameAsEndpoint(t, a, url)
	if len(before.X509Authorities()) != 1 || len(before.JWTAuthorities()) == 0 {
		t.Fatalf("before the rotation: %d X.509 and %d JWT authorities; want 1 and some", len(before.X509Authorities()), len(before.JWTAuthorities()))
	}
	if hint, ok := before.RefreshHint(); !ok || hint != 42*time.Second {
		t.Fatalf("refresh hint %v (set: %v); want the endpoint's 42s", hint, ok)
	}

	clitest.Run(t, "rotate", "ca", "--admin-socket", a.Config.AdminSocketPath)
	after := sameAsEndpoint(t, a, url)
	seqBefore, _ := before.SequenceNumber()
	seqAfter, _ := after.SequenceNumber()
	if len(after.X509Authorities()) != 2 || seqAfter <= seqBefore {
		t.Fatalf("after rotate ca: %d X.509 authorities, sequence %d (was %d); want 2 and a greater sequence", len(after.X509Authorities()), seqAfter, seqBefore)
	}

	docs := showSPIFFE(t, a)
	if len(docs) != 2 {
		t.Fatalf("bundle show --format spiffe printed %d documents; want example.org's and other.org's", len(docs))
	}
	parse(t, exampleTD, docs[0])
	fed := parse(t, otherTD, docs[1])
	if seq, _ := fed.SequenceNumber(); seq < seqAfter || len(fed.X509Authorities()) != 1 {
		t.Fatalf("other.org's bundle: sequence %d (want >= %d), %d X.509 authorities (want 1)", seq, seqAfter, len(fed.X509Authorities()))
	}
	if only := showSPIFFE(t, a, "--federated"); len(only) != 1 || !parse(t, otherTD, only[0]).Equal(fed) {
		t.Fatalf("bundle show --format spiffe --federated printed %q; want other.org's bundle only", only)
	}
}

// sameAsEndpoint checks that the CLI prints for example.org what the
// endpoint serves, and returns it. The two are read at different moments,
// so the CLI's answer is compared with the endpoint's when two endpoint
// answers around it agree (the agent publishes its JWT key after start).
func sameAsEndpoint(t *testing.T, a *agenttest.Agent, url string) *spiffebundle.Bundle {
	t.Helper()
	var shown, want string
	testutil.Eventually(t, "the endpoint's bundle to hold still around a `bundle show`", func() bool {
		first := served(t, a, url)
		shown = showSPIFFE(t, a)[0]
		want = served(t, a, url)
		return parse(t, exampleTD, first).Equal(parse(t, exampleTD, want))
	})
	got, fromEndpoint := parse(t, exampleTD, shown), parse(t, exampleTD, want)
	if !got.Equal(fromEndpoint) {
		t.Fatalf("bundle show --format spiffe printed\n%s\nthe endpoint serves\n%s", shown, want)
	}
	// go-spiffe writes JWT keys in map order; with one, the bytes are fixed.
	if len(fromEndpoint.JWTAuthorities()) == 1 && shown != want {
		t.Fatalf("bundle show --format spiffe printed\n%s\nnot byte for byte what the endpoint serves\n%s", shown, want)
	}
	return got
}

// `sworn bundle show -o json` prints the documented shape: one object per
// trust domain, sorted, with its CAs as PEM and its JWT keys by kid; a
// domain without JWT keys has [] rather than null, so scripts can iterate.
func TestBundleShowJSON(t *testing.T) {
	a, _ := endpointAgent(t)
	out := clitest.Run(t, "bundle", "show", "-o", "json", "--socket", a.Config.SocketPath)
	var views []struct {
		TrustDomain     string   `json:"trust_domain"`
		X509Authorities []string `json:"x509_authorities"`
		JWTAuthorities  []struct {
			KeyID string         `json:"kid"`
			JWK   map[string]any `json:"jwk"`
		} `json:"jwt_authorities"`
	}
	if err := json.Unmarshal([]byte(out), &views); err != nil {
		t.Fatalf("bundle show -o json: %v\n%s", err, out)
	}
	if len(views) != 2 || views[0].TrustDomain != "example.org" || views[1].TrustDomain != "other.org" {
		t.Fatalf("bundle show -o json:\n%s\nwant example.org's then other.org's bundle", out)
	}
	for _, v := range views {
		td := spiffeid.RequireTrustDomainFromString(v.TrustDomain)
		if len(v.X509Authorities) != 1 {
			t.Fatalf("%s: %d X.509 authorities; want 1", td, len(v.X509Authorities))
		}
		block, rest := pem.Decode([]byte(v.X509Authorities[0]))
		if block == nil || len(rest) != 0 {
			t.Fatalf("%s: X.509 authority is not one PEM block: %q", td, v.X509Authorities[0])
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil || len(c.URIs) != 1 || c.URIs[0].String() != td.IDString() {
			t.Fatalf("%s: X.509 authority %v (URIs %v); want %s's CA", td, err, c.URIs, td)
		}
	}
	if own := views[0].JWTAuthorities; len(own) != 1 || own[0].KeyID == "" || own[0].JWK["kid"] != own[0].KeyID || own[0].JWK["kty"] != "EC" || own[0].JWK["use"] != "jwt-svid" {
		t.Fatalf("example.org's JWT authorities: %+v; want its one key with its kid", own)
	}
	if !strings.Contains(out, `"jwt_authorities": []`) || views[1].JWTAuthorities == nil {
		t.Fatalf("other.org's JWT authorities printed as null, want []:\n%s", out)
	}
}

// Flags that would be silently dropped, or an unknown output, are errors.
func TestBundleShowRefusesFlagsItWouldIgnore(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{args: []string{"-o", "yaml"}, want: `invalid argument "yaml" for "-o, --output" flag: want text or json`},
		{args: []string{"--format", "jwks"}, want: `--format "jwks": want pem or spiffe`},
		{args: []string{"--format", "spiffe", "--jwt"}, want: "--format spiffe already holds the JWT authorities; drop --jwt"},
		{args: []string{"--format", "spiffe", "-o", "json"}, want: "--format spiffe is already JSON; give --format spiffe or -o json, not both"},
		{args: []string{"--jwt", "-o", "json"}, want: "-o json already holds the JWT authorities; drop --jwt"},
	} {
		err := clitest.Fail(t, append([]string{"bundle", "show", "--socket", "/nonexistent/sock"}, tc.args...)...)
		if err.Error() != tc.want {
			t.Errorf("bundle show %v: %v; want %q", tc.args, err, tc.want)
		}
	}
}
