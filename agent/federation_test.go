package agent_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc/metadata"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

var otherTD = spiffeid.RequireTrustDomainFromString("other.org")

// domainConfig is an agent config for trust domain td whose one rule gives
// this process spiffe://td/<name>, federating with the listed domains.
func domainConfig(t *testing.T, td, name string, federatesWith ...string) *config.Config {
	t.Helper()
	cfg := newConfig(t)
	cfg.TrustDomain = td
	cfg.Rules = []config.Rule{{SPIFFEID: "spiffe://" + td + "/" + name, Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Geteuid())}, FederatesWith: federatesWith}}
	return cfg
}

func federate(cfg *config.Config, listen, profile string, peers ...config.FederatedTD) {
	cfg.Federation = config.Federation{
		BundleEndpoint: config.BundleEndpoint{Listen: listen, Profile: profile, RefreshHint: time.Second},
		TrustDomains:   peers,
	}
}

func validated(t *testing.T, cfg *config.Config) *config.Config {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestFederationOverHTTPSSPIFFE(t *testing.T) {
	cfgA := domainConfig(t, "example.org", "a", "other.org")
	cfgB := domainConfig(t, "other.org", "b", "example.org")
	// A first run makes each CA and its bundle.pem, the bootstrap bundles.
	for _, cfg := range []*config.Config{cfgA, cfgB} {
		first := *cfg
		first.Rules = nil
		if err := startAgent(t, validated(t, &first)).Stop(t); err != nil {
			t.Fatal(err)
		}
	}
	addrA, addrB := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfgA.HealthAddr = testutil.FreeAddr(t)
	federate(cfgA, addrA, "https_spiffe", config.FederatedTD{TrustDomain: "other.org", URL: "https://" + addrB,
		EndpointSPIFFEID: "spiffe://other.org/sworn/bundle-endpoint", BundleFile: filepath.Join(cfgB.DataDir, "bundle.pem")})
	federate(cfgB, addrB, "https_spiffe", config.FederatedTD{TrustDomain: "example.org", URL: "https://" + addrA,
		EndpointSPIFFEID: "spiffe://example.org/sworn/bundle-endpoint", BundleFile: filepath.Join(cfgA.DataDir, "bundle.pem")})
	a := startAgent(t, validated(t, cfgA))
	b := startAgent(t, validated(t, cfgB))
	srcA, srcB := newSource(t, a), newSource(t, b)

	// Workloads of the two domains authenticate each other.
	idA, idB := spiffeid.RequireFromString("spiffe://example.org/a"), spiffeid.RequireFromString("spiffe://other.org/b")
	handshake(t, tlsconfig.MTLSServerConfig(srcA, srcA, tlsconfig.AuthorizeID(idB)), tlsconfig.MTLSClientConfig(srcB, srcB, tlsconfig.AuthorizeID(idA)))

	// The federated bundle follows the endpoint: B publishes a new CA and A's
	// workloads see it without a restart.
	clitest.Run(t, "rotate", "ca", "--admin-socket", cfgB.AdminSocketPath)
	testutil.Eventually(t, "B's new CA in A's workloads' bundle for other.org", func() bool {
		bundle, err := srcA.GetX509BundleForTrustDomain(otherTD)
		return err == nil && len(bundle.X509Authorities()) == 2
	})

	// B's endpoint goes away: A keeps the last bundle it fetched, however
	// many fetches fail.
	if err := b.Stop(t); err != nil {
		t.Fatal(err)
	}
	waitFetchFailures(t, cfgA.HealthAddr, "other.org", 3)
	if n := len(federatedBundle(t, a)["spiffe://other.org"]); n != 2 {
		t.Fatalf("after three failed fetches from B's endpoint A serves %d authorities for other.org; want the last bundle (2) kept", n)
	}
}

// waitFetchFailures waits until the agent at healthAddr counts n more
// failed fetches of td's bundle than now.
func waitFetchFailures(t *testing.T, healthAddr, td string, n float64) {
	t.Helper()
	name := fmt.Sprintf("sworn_federation_fetch_failures_total{trust_domain=%q}", td)
	start := metric(t, healthAddr, name)
	testutil.Eventually(t, fmt.Sprintf("%v failed fetches of %s's bundle", n, td), func() bool {
		return metric(t, healthAddr, name) >= start+n
	})
}

// federatedBundle opens a new bundle stream on ta and returns the X.509
// authorities of each trust domain in its first message: the agent's
// bundles when the call was made, not a stream's possibly stale view.
func federatedBundle(t *testing.T, ta *testAgent) map[string][]*x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 10*time.Second)
	defer cancel()
	stream, err := rawClient(t, ta).FetchX509Bundles(ctx, &workload.X509BundlesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*x509.Certificate{}
	for td, der := range resp.Bundles {
		certs, err := x509.ParseCertificates(der)
		if err != nil {
			t.Fatalf("bundle of %s: %v", td, err)
		}
		out[td] = certs
	}
	return out
}

func TestFederationOverHTTPSWebRefusesAMismatchedTrustDomain(t *testing.T) {
	certFile, keyFile, caFile := webCert(t)
	cfgB := domainConfig(t, "other.org", "b")
	addrB := testutil.FreeAddr(t)
	federate(cfgB, addrB, "https_web")
	cfgB.Federation.BundleEndpoint.CertFile, cfgB.Federation.BundleEndpoint.KeyFile = certFile, keyFile
	startAgent(t, validated(t, cfgB))

	cfgA := domainConfig(t, "example.org", "a", "other.org", "third.org")
	cfgA.HealthAddr = testutil.FreeAddr(t)
	federate(cfgA, "", "",
		config.FederatedTD{TrustDomain: "other.org", URL: "https://" + addrB, Profile: "https_web", CAFile: caFile},
		// B's bundle claimed for another domain: refused.
		config.FederatedTD{TrustDomain: "third.org", URL: "https://" + addrB, Profile: "https_web", CAFile: caFile})
	a := startAgent(t, validated(t, cfgA))
	src := newSource(t, a)
	testutil.Eventually(t, "other.org's bundle fetched over https_web", func() bool {
		_, err := src.GetX509BundleForTrustDomain(otherTD)
		return err == nil
	})
	waitFetchFailures(t, cfgA.HealthAddr, "third.org", 1)
	bundles := federatedBundle(t, a)
	if _, ok := bundles["spiffe://third.org"]; ok {
		t.Fatal("a bundle whose CAs belong to other.org was accepted for third.org")
	}
	if len(bundles["spiffe://other.org"]) != 1 {
		t.Fatalf("bundles served after third.org's refusal: %v; want other.org's still there", bundles)
	}

	if out := clitest.Run(t, "bundle", "show", "--federated", "--socket", cfgA.SocketPath); !strings.Contains(out, "# spiffe://other.org") || strings.Contains(out, "# spiffe://example.org") {
		t.Fatalf("bundle show --federated:\n%s", out)
	}
	if out := clitest.Run(t, "bundle", "set", "--trust-domain", "other.org", "--file", filepath.Join(cfgB.DataDir, "bundle.pem"), "--admin-socket", cfgA.AdminSocketPath); !strings.Contains(out, "1 X.509 authorities") {
		t.Fatalf("bundle set:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(cfgA.DataDir, "federation", "other.org.bundle")); err != nil {
		t.Fatalf("bundle set did not keep the bundle for restarts: %v", err)
	}
	if out := clitest.Run(t, "bundle", "fetch", "--trust-domain", "other.org", "--url", "https://"+addrB, "--ca-file", caFile); !strings.Contains(out, `"use":"x509-svid"`) || !strings.Contains(out, "spiffe_sequence") {
		t.Fatalf("bundle fetch:\n%s", out)
	}
}

// webCert makes a CA and a server certificate for 127.0.0.1, as files.
func webCert(t *testing.T) (certFile, keyFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	ca := testutil.NewCA(t, &x509.Certificate{Subject: pkix.Name{CommonName: "web CA"}})
	server := ca.Issue(t, &x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("cert.pem", server.CertPEM()), write("key.pem", server.KeyPEM(t)), write("ca.pem", ca.CertPEM())
}

func TestBundleStreamsFollowFederatesWithOnReload(t *testing.T) {
	// other.org's bundle comes from a bootstrap file; its endpoint is never
	// reachable, which must not matter.
	other := domainConfig(t, "other.org", "b")
	if err := startAgent(t, validated(t, other)).Stop(t); err != nil {
		t.Fatal(err)
	}
	cfg := domainConfig(t, "example.org", "a")
	federate(cfg, "", "", config.FederatedTD{TrustDomain: "other.org", URL: "https://" + testutil.FreeAddr(t), Profile: "https_web",
		BundleFile: filepath.Join(other.DataDir, "bundle.pem")})
	ta := startAgent(t, validated(t, cfg))

	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 20*time.Second)
	defer cancel()
	stream, err := rawClient(t, ta).FetchX509Bundles(ctx, &workload.X509BundlesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || len(resp.Bundles) != 1 {
		t.Fatalf("before federating: %v, %v; want only example.org", resp, err)
	}
	next := *cfg
	next.Rules = []config.Rule{{SPIFFEID: "spiffe://example.org/a", Selectors: cfg.Rules[0].Selectors, FederatesWith: []string{"other.org"}}}
	if err := ta.Agent.Reload(&next); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err = stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := resp.Bundles["spiffe://other.org"]; ok {
			break
		}
	}
}
