package agent_test

import (
	"context"
	"crypto/x509"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/agent"
	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// otherOrgCAs is a PEM file of n new CAs of other.org, and the CAs.
func otherOrgCAs(t *testing.T, n int) (string, []*x509.Certificate) {
	t.Helper()
	var data []byte
	var certs []*x509.Certificate
	for range n {
		ca := testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{otherTD.ID().URL()}})
		data = append(data, ca.CertPEM()...)
		certs = append(certs, ca.Cert)
	}
	p := filepath.Join(t.TempDir(), "other.org.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, certs
}

// bootstrappedConfig federates example.org's workloads with other.org,
// bootstrapped from bundleFile; other.org's endpoint never answers, so the
// bundle changes only by `sworn bundle set`.
func bootstrappedConfig(t *testing.T, bundleFile string) *config.Config {
	t.Helper()
	cfg := domainConfig(t, "example.org", "a", "other.org")
	federate(cfg, "", "", config.FederatedTD{TrustDomain: "other.org", URL: "https://" + testutil.FreeAddr(t), Profile: "https_web", BundleFile: bundleFile})
	return validated(t, cfg)
}

// workloadSees is other.org's bundle as go-spiffe's Workload API client
// fetching now gets it from the agent at socket (a new call: the agent's
// state when it is made).
func workloadSees(t *testing.T, socket string) []*x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	xc, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+socket))
	if err != nil {
		t.Fatal(err)
	}
	b, err := xc.Bundles.GetX509BundleForTrustDomain(otherTD)
	if err != nil {
		return nil
	}
	return b.X509Authorities()
}

func sameCerts(got, want []*x509.Certificate) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			return false
		}
	}
	return true
}

func adminClient(t *testing.T, cfg *config.Config) adminpb.AdminClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+cfg.AdminSocketPath, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return adminpb.NewAdminClient(conn)
}

// adminRefusals are SetFederatedBundle calls the admin API must refuse
// (the CLI refuses these files itself, so they are sent directly, as an
// older CLI or another client would).
var adminRefusals = []struct {
	name, td, bundle string
	code             codes.Code
	wantMsg          string
}{
	{name: "empty", td: "other.org", bundle: "", code: codes.InvalidArgument, wantMsg: "bundle for other.org is empty"},
	{name: "garbled", td: "other.org", bundle: "-----BEGIN CERTIFICATE-----\ngarbled", code: codes.InvalidArgument, wantMsg: "has a PEM block that does not decode"},
	{name: "no X.509 authority", td: "other.org", bundle: `{"keys":[]}`, code: codes.InvalidArgument, wantMsg: "holds no X.509 authority"},
	{name: "not federated", td: "third.org", bundle: "", code: codes.FailedPrecondition, wantMsg: "third.org is not in federation.trust_domains"},
}

// The admin API refuses a bundle that would empty other.org's, saying what
// is wrong and what to do, and workloads keep the bundle they have.
func TestAdminAPIRefusesAFederatedBundleThatWouldEmptyIt(t *testing.T) {
	file, cas := otherOrgCAs(t, 2)
	ta := startAgent(t, bootstrappedConfig(t, file))
	client := adminClient(t, ta.Config)
	for _, tt := range adminRefusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.SetFederatedBundle(context.Background(), &adminpb.SetFederatedBundleRequest{TrustDomain: tt.td, Bundle: []byte(tt.bundle)})
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.wantMsg) {
				t.Fatalf("SetFederatedBundle = %v; want %v with %q", err, tt.code, tt.wantMsg)
			}
			if tt.code == codes.InvalidArgument && !strings.Contains(st.Message(), "or PEM CA certificates of other.org; nothing changed") {
				t.Fatalf("SetFederatedBundle = %v; want what to give instead and that nothing changed", err)
			}
			if got := workloadSees(t, ta.Config.SocketPath); !sameCerts(got, cas) {
				t.Fatalf("after a refused bundle, workloads see %d authorities for other.org; want the %d they had", len(got), len(cas))
			}
		})
	}
}

// The last bundle `sworn bundle set` took survives a refused one and a
// restart, ahead of bundle_file.
func TestLastGoodFederatedBundleSurvivesARestart(t *testing.T) {
	bootstrap, _ := otherOrgCAs(t, 1)
	set, setCAs := otherOrgCAs(t, 2)
	cfg := bootstrappedConfig(t, bootstrap)
	ta := startAgent(t, cfg)
	clitest.Run(t, "bundle", "set", "--trust-domain", "other.org", "--file", set, "--admin-socket", cfg.AdminSocketPath)
	if _, err := adminClient(t, cfg).SetFederatedBundle(context.Background(), &adminpb.SetFederatedBundleRequest{TrustDomain: "other.org"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an empty bundle: %v; want InvalidArgument", err)
	}
	if err := ta.Stop(t); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cfg)
	if got := workloadSees(t, cfg.SocketPath); !sameCerts(got, setCAs) {
		t.Fatalf("after a restart workloads see %d authorities for other.org; want the 2 `bundle set` gave", len(got))
	}
}

// A stored bundle that does not load (a disk fault, a hand edit) is
// logged by name and bundle_file is used instead; the agent starts.
func TestAStoredFederatedBundleThatDoesNotLoadFallsBackToBundleFile(t *testing.T) {
	for _, stored := range []struct{ name, data string }{{"empty", ""}, {"garbled", "\x00garbled"}} {
		t.Run(stored.name, func(t *testing.T) {
			file, cas := otherOrgCAs(t, 1)
			cfg := bootstrappedConfig(t, file)
			path := filepath.Join(cfg.DataDir, "federation", "other.org.bundle")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(stored.data), 0o600); err != nil {
				t.Fatal(err)
			}
			logs := runLogged(t, cfg)
			if got := workloadSees(t, cfg.SocketPath); !sameCerts(got, cas) {
				t.Fatalf("workloads see %d authorities for other.org; want bundle_file's", len(got))
			}
			if w := strings.Join(warnings(t, logs), "\n"); !strings.Contains(w, "file:"+path) || !strings.Contains(w, "run `sworn bundle set` again") {
				t.Fatalf("log at WARN and above:\n%s\nwant an error naming %s and what to do", w, path)
			}
		})
	}
}

// A bundle_file that does not load stops the agent, naming the file.
func TestABadBundleFileStopsTheAgentNamingIt(t *testing.T) {
	for _, bad := range []struct{ name, data, wantErr string }{
		{"empty", "", "is empty"},
		{"garbled", "\x00garbled", "is neither SPIFFE bundle JSON nor PEM"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "other.org.pem")
			if err := os.WriteFile(file, []byte(bad.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := agent.New(bootstrappedConfig(t, file), nil)
			if err == nil || !strings.Contains(err.Error(), "bundle_file: bundle: "+file+": bundle for other.org "+bad.wantErr) {
				t.Fatalf("agent.New = %v; want bundle_file %s named and %q", err, file, bad.wantErr)
			}
		})
	}
}

// A PEM bundle cannot carry JWT keys, so `bundle set` with one replaces
// other.org's X.509 authorities and keeps its JWT keys; SPIFFE bundle JSON,
// which states both, replaces both.
func TestPEMBundleSetKeepsTheJWTKeys(t *testing.T) {
	file, _ := otherOrgCAs(t, 1)
	ta := startAgent(t, bootstrappedConfig(t, file))
	client := adminClient(t, ta.Config)
	set := func(data []byte) {
		t.Helper()
		if _, err := client.SetFederatedBundle(context.Background(), &adminpb.SetFederatedBundleRequest{TrustDomain: "other.org", Bundle: data}); err != nil {
			t.Fatal(err)
		}
	}
	jwtKids := func() []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		set, err := workloadapi.FetchJWTBundles(ctx, workloadapi.WithAddr("unix://"+ta.Config.SocketPath))
		if err != nil {
			t.Fatal(err)
		}
		b, ok := set.Get(otherTD)
		if !ok {
			return nil
		}
		return slices.Sorted(maps.Keys(b.JWTAuthorities()))
	}

	withJWT := spiffebundle.New(otherTD)
	withJWT.AddX509Authority(testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{otherTD.ID().URL()}}).Cert)
	if err := withJWT.AddJWTAuthority("kid-1", &testutil.NewKey(t).PublicKey); err != nil {
		t.Fatal(err)
	}
	doc, err := withJWT.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	set(doc)
	if got := jwtKids(); !slices.Equal(got, []string{"kid-1"}) {
		t.Fatalf("after a JSON bundle with kid-1, workloads see JWT keys %v", got)
	}

	pemFile, pemCAs := otherOrgCAs(t, 1)
	pemData, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	set(pemData)
	if got := workloadSees(t, ta.Config.SocketPath); !sameCerts(got, pemCAs) {
		t.Fatalf("after a PEM bundle, workloads see %d X.509 authorities, want the PEM's", len(got))
	}
	if got := jwtKids(); !slices.Equal(got, []string{"kid-1"}) {
		t.Fatalf("after a PEM bundle, workloads see JWT keys %v, want kid-1 kept", got)
	}
}
