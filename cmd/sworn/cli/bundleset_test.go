package cli_test

import (
	"context"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

var otherTD = spiffeid.RequireTrustDomainFromString("other.org")

// federatedAgent runs an agent of example.org whose workloads federate with
// other.org, bootstrapped from bundleFile; other.org's endpoint never
// answers, so the bundle changes only by `sworn bundle set`.
func federatedAgent(t *testing.T, bundleFile string) *agenttest.Agent {
	t.Helper()
	cfg := agenttest.Config(t)
	cfg.Rules[0].FederatesWith = []string{"other.org"}
	cfg.Federation.TrustDomains = []config.FederatedTD{{TrustDomain: "other.org", URL: "https://" + testutil.FreeAddr(t), Profile: "https_web", BundleFile: bundleFile}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return agenttest.Start(t, cfg)
}

// otherOrgBundle is other.org's bundle as a workload fetching now sees it
// (a new fetch: the agent's state when the call is made).
func otherOrgBundle(t *testing.T, a *agenttest.Agent) []*x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	xc, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(a.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := xc.Bundles.GetX509BundleForTrustDomain(otherTD)
	if err != nil {
		t.Fatalf("workload has no bundle for other.org: %v", err)
	}
	return b.X509Authorities()
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// `sworn bundle set` with a file that would empty or shrink other.org's
// bundle is refused with an error naming the file, and the bundle every
// workload sees stays as it was.
func TestBundleSetRefusesAFileThatWouldEmptyTheBundle(t *testing.T) {
	dir := t.TempDir()
	ca1 := testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{otherTD.ID().URL()}}).CertPEM()
	ca2 := testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{otherTD.ID().URL()}}).CertPEM()
	two := append(append([]byte{}, ca1...), ca2...)
	a := federatedAgent(t, writeFile(t, dir, "bootstrap.pem", two))
	if n := len(otherOrgBundle(t, a)); n != 2 {
		t.Fatalf("at start workloads see %d authorities for other.org, want 2", n)
	}
	bad := []struct {
		name, data, wantErr string
	}{
		{name: "empty.pem", data: "", wantErr: "is empty"},
		{name: "garbled.pem", data: "\x00\x13garbled\n", wantErr: "is neither SPIFFE bundle JSON nor PEM"},
		{name: "truncated.pem", data: string(two[:len(two)-100]), wantErr: "has a PEM block that does not decode"},
		{name: "nokeys.json", data: `{"keys":[]}`, wantErr: "holds no X.509 authority"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, dir, tt.name, []byte(tt.data))
			err := clitest.Fail(t, "bundle", "set", "--trust-domain", "other.org", "--file", file, "--admin-socket", a.Config.AdminSocketPath)
			if !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("bundle set %s: %v; want the file named and %q", tt.name, err, tt.wantErr)
			}
			if n := len(otherOrgBundle(t, a)); n != 2 {
				t.Fatalf("after a refused bundle set workloads see %d authorities for other.org, want the 2 they had", n)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(a.Config.DataDir, "federation", "other.org.bundle")); !os.IsNotExist(err) {
		t.Fatalf("a refused bundle was stored for restarts: %v", err)
	}

	// A good file is still taken, and reaches workloads.
	file := writeFile(t, dir, "one.pem", ca1)
	if out := clitest.Run(t, "bundle", "set", "--trust-domain", "other.org", "--file", file, "--admin-socket", a.Config.AdminSocketPath); !strings.Contains(out, "1 X.509 authorities (JWT keys unchanged: PEM cannot carry them)") {
		t.Fatalf("bundle set one.pem:\n%s", out)
	}
	if n := len(otherOrgBundle(t, a)); n != 1 {
		t.Fatalf("after bundle set one.pem workloads see %d authorities for other.org, want 1", n)
	}
}
