package agent_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/workload"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// sdsClient is go-control-plane's SDS client over the agent's Workload API
// socket, as Envoy connects: no security header.
func sdsClient(t *testing.T, ta *testAgent) secretv3.SecretDiscoveryServiceClient {
	t.Helper()
	return secretv3.NewSecretDiscoveryServiceClient(dialAgent(t, ta))
}

// envoyNode is the node an Envoy of the given minor version (1.x) sends;
// disable sets its disable_spiffe_cert_validation metadata.
func envoyNode(minor uint32, disable bool) *corev3.Node {
	n := &corev3.Node{Id: "sidecar", UserAgentName: "envoy", UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{
		UserAgentBuildVersion: &corev3.BuildVersion{Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: minor}},
	}}
	if disable {
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"disable_spiffe_cert_validation": structpb.NewBoolValue(true)}}
	}
	return n
}

// secrets decodes a response's resources by name.
func secrets(t *testing.T, resp *discoveryv3.DiscoveryResponse) map[string]*tlsv3.Secret {
	t.Helper()
	out := map[string]*tlsv3.Secret{}
	for _, r := range resp.GetResources() {
		if r.GetTypeUrl() != workload.SecretTypeURL {
			t.Fatalf("resource of type %s, want %s", r.GetTypeUrl(), workload.SecretTypeURL)
		}
		s := &tlsv3.Secret{}
		if err := r.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		out[s.GetName()] = s
	}
	return out
}

// leafOf checks that secret is a TLS certificate whose PEM key is its
// leaf's, and returns the leaf.
func leafOf(t *testing.T, secret *tlsv3.Secret) *x509.Certificate {
	t.Helper()
	tc := secret.GetTlsCertificate()
	block, _ := pem.Decode(tc.GetCertificateChain().GetInlineBytes())
	if block == nil {
		t.Fatalf("secret %s has no PEM certificate chain", secret.GetName())
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(tc.GetPrivateKey().GetInlineBytes())
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("secret %s has no PKCS#8 PEM key", secret.GetName())
	}
	key, err := ca.ParsePrivateKey(kb.Bytes)
	if err != nil || !ca.SamePublicKey(key.Public(), leaf.PublicKey) {
		t.Fatalf("secret %s: the key is not the leaf's (%v)", secret.GetName(), err)
	}
	return leaf
}

func selfID() string { return fmt.Sprintf("spiffe://example.org/uid/%d", os.Geteuid()) }

// FetchSecrets needs no security header, is attested like the Workload
// API, and serves SPIRE's resource names: the SVID by SPIFFE ID and as
// "default", the bundle by trust domain and as "ROOTCA", every bundle as
// "ALL"; trusted_ca for an Envoy without the SPIFFE validator (older than
// 1.18, or turned off in its node metadata), the validator otherwise.
func TestSDSFetchSecrets(t *testing.T) {
	ta := startAgent(t, newConfig(t))
	c := sdsClient(t, ta)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	td := spiffeid.RequireTrustDomainFromString("example.org")

	resp, err := c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: envoyNode(17, false)})
	if err != nil {
		t.Fatal(err)
	}
	got := secrets(t, resp)
	if len(got) != 2 || got[selfID()] == nil || got[td.IDString()] == nil {
		t.Fatalf("an empty name list got %v, want the caller's SVID and its bundle", slices.Sorted(func(y func(string) bool) {
			for n := range got {
				y(n)
			}
		}))
	}
	leaf := leafOf(t, got[selfID()])
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(got[td.IDString()].GetValidationContext().GetTrustedCa().GetInlineBytes()) {
		t.Fatal("the bundle for an Envoy older than 1.18 is not trusted_ca PEM")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the SVID does not verify against the bundle sent: %v", err)
	}

	for _, tc := range []struct {
		name   string
		node   *corev3.Node
		spiffe bool
	}{
		{name: "Envoy 1.30", node: envoyNode(30, false), spiffe: true},
		{name: "Envoy 1.30 with SPIFFE validation off", node: envoyNode(30, true), spiffe: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: tc.node, ResourceNames: []string{"default", "ROOTCA"}})
			if err != nil {
				t.Fatal(err)
			}
			got := secrets(t, resp)
			if got["default"] == nil || got["ROOTCA"] == nil || len(got) != 2 {
				t.Fatalf("got %d secrets, want default and ROOTCA", len(got))
			}
			if uris := leafOf(t, got["default"]).URIs; len(uris) != 1 || uris[0].String() != selfID() {
				t.Fatalf("default is the SVID of %v, want %s", uris, selfID())
			}
			vc := got["ROOTCA"].GetValidationContext()
			if spiffe := vc.GetCustomValidatorConfig().GetName() == "envoy.tls.cert_validator.spiffe"; spiffe != tc.spiffe || (vc.GetTrustedCa() == nil) == !tc.spiffe {
				t.Fatalf("ROOTCA: SPIFFE validator %v, trusted_ca %v; want the validator %v", spiffe, vc.GetTrustedCa() != nil, tc.spiffe)
			}
			if tc.spiffe {
				cfg := &tlsv3.SPIFFECertValidatorConfig{}
				if err := vc.GetCustomValidatorConfig().GetTypedConfig().UnmarshalTo(cfg); err != nil || len(cfg.GetTrustDomains()) != 1 || cfg.GetTrustDomains()[0].GetName() != "example.org" {
					t.Fatalf("ROOTCA's validator config: %v, %v", cfg, err)
				}
			}
		})
	}
}

// A name the caller does not hold, and ALL for an Envoy that cannot take
// the SPIFFE validator, are refused naming what is wrong; DeltaSecrets is
// not served.
func TestSDSRefusesWhatItCannotServe(t *testing.T) {
	ta := startAgent(t, newConfig(t))
	c := sdsClient(t, ta)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		node  *corev3.Node
		names []string
		want  string
	}{
		{name: "a name the caller does not hold", node: envoyNode(30, false), names: []string{"default", "spiffe://example.org/someone-else"}, want: `holds no secret named ["spiffe://example.org/someone-else"]`},
		{name: "ALL on an Envoy without the SPIFFE validator", node: envoyNode(17, false), names: []string{"ALL"}, want: "needs Envoy 1.18 or later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: tc.node, ResourceNames: tc.names})
			if s := grpcstatus.Convert(err); s.Code() != codes.InvalidArgument || !strings.Contains(s.Message(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
	delta, err := c.DeltaSecrets(ctx)
	if err == nil {
		_, err = delta.Recv()
	}
	if grpcstatus.Code(err) != codes.Unimplemented {
		t.Fatalf("DeltaSecrets: %v, want Unimplemented", err)
	}
}

// StreamSecrets follows xDS: an answer at once; nothing for an ACK; a
// rotation pushed with a new version and nonce; a NACK logged and counted
// with nothing sent; a stale nonce ignored; a changed name list answered.
// Each "nothing sent" is proven by the next response being the one the
// following event causes.
func TestSDSStreamSecrets(t *testing.T) {
	ta := startAgent(t, newConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := sdsClient(t, ta).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := envoyNode(30, false)
	send := func(req *discoveryv3.DiscoveryRequest) {
		t.Helper()
		req.Node, req.TypeUrl = node, workload.SecretTypeURL
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *discoveryv3.DiscoveryResponse {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}})
	first := recv()
	serial := leafOf(t, secrets(t, first)["default"]).SerialNumber
	if first.GetNonce() == "" || first.GetVersionInfo() == "" {
		t.Fatalf("first response without version or nonce: %q, %q", first.GetVersionInfo(), first.GetNonce())
	}
	send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}, VersionInfo: first.GetVersionInfo(), ResponseNonce: first.GetNonce()}) // ACK

	clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", ta.Config.AdminSocketPath)
	rotated := recv()
	if rotated.GetVersionInfo() == first.GetVersionInfo() || rotated.GetNonce() == first.GetNonce() {
		t.Fatalf("after the ACK the next response is version %q nonce %q, want a new version and nonce (an answer to the ACK?)", rotated.GetVersionInfo(), rotated.GetNonce())
	}
	if leafOf(t, secrets(t, rotated)["default"]).SerialNumber.Cmp(serial) == 0 {
		t.Fatal("the rotation pushed the old SVID")
	}

	nacks := counter(t, ta, "sworn_sds_nacks_total")
	send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}, VersionInfo: first.GetVersionInfo(), ResponseNonce: rotated.GetNonce(),
		ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "bad secret"}}) // NACK
	send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{"ALL"}, ResponseNonce: first.GetNonce()}) // stale
	send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{"ROOTCA"}, VersionInfo: rotated.GetVersionInfo(), ResponseNonce: rotated.GetNonce()})
	changed := secrets(t, recv())
	if len(changed) != 1 || changed["ROOTCA"] == nil {
		t.Fatalf("after a NACK, a stale request for ALL and a request for ROOTCA the next response holds %d secrets, want just ROOTCA", len(changed))
	}
	if got := counter(t, ta, "sworn_sds_nacks_total"); got != nacks+1 {
		t.Fatalf("sworn_sds_nacks_total went %v → %v, want one more", nacks, got)
	}
}

// counter reads a counter or gauge of the agent's metrics.
func counter(t *testing.T, ta *testAgent, name string) float64 {
	t.Helper()
	families, err := ta.Agent.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// "ALL" is every bundle the caller may see, federated ones included, in one
// SPIFFE validator config; a federated trust domain is also served by its
// ID, and one the caller's rules do not federate with is not.
func TestSDSAllHoldsFederatedBundles(t *testing.T) {
	other := domainConfig(t, "other.org", "b")
	if err := startAgent(t, validated(t, other)).Stop(t); err != nil {
		t.Fatal(err)
	}
	otherPEM, err := os.ReadFile(filepath.Join(other.DataDir, "bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := domainConfig(t, "example.org", "a", "other.org")
	federate(cfg, "", "", config.FederatedTD{TrustDomain: "other.org", URL: "https://" + testutil.FreeAddr(t), Profile: "https_web",
		BundleFile: filepath.Join(other.DataDir, "bundle.pem")})
	ta := startAgent(t, validated(t, cfg))
	c := sdsClient(t, ta)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	resp, err := c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: envoyNode(30, false), ResourceNames: []string{"ALL", "spiffe://other.org"}})
	if err != nil {
		t.Fatal(err)
	}
	got := secrets(t, resp)
	cfgAll := &tlsv3.SPIFFECertValidatorConfig{}
	if err := got["ALL"].GetValidationContext().GetCustomValidatorConfig().GetTypedConfig().UnmarshalTo(cfgAll); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, td := range cfgAll.GetTrustDomains() {
		names = append(names, td.GetName())
		if td.GetName() == "other.org" && !certsEqual(t, td.GetTrustBundle().GetInlineBytes(), otherPEM) {
			t.Fatal("ALL's other.org bundle is not other.org's CA")
		}
	}
	if !slices.Equal(names, []string{"example.org", "other.org"}) {
		t.Fatalf("ALL holds %v, want example.org and other.org", names)
	}
	if got["spiffe://other.org"] == nil {
		t.Fatal("the federated trust domain is not served by its ID")
	}

	plain := domainConfig(t, "example.org", "a") // federates with nobody
	federate(plain, "", "", config.FederatedTD{TrustDomain: "other.org", URL: "https://" + testutil.FreeAddr(t), Profile: "https_web",
		BundleFile: filepath.Join(other.DataDir, "bundle.pem")})
	_, err = sdsClient(t, startAgent(t, validated(t, plain))).FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: envoyNode(30, false), ResourceNames: []string{"spiffe://other.org"}})
	if grpcstatus.Code(err) != codes.InvalidArgument {
		t.Fatalf("a trust domain the caller does not federate with: %v, want InvalidArgument", err)
	}
}

// certsEqual reports whether two PEM blobs hold the same certificates.
func certsEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	parse := func(data []byte) (out [][]byte) {
		for {
			var blk *pem.Block
			if blk, data = pem.Decode(data); blk == nil {
				return out
			}
			out = append(out, blk.Bytes)
		}
	}
	return slices.EqualFunc(parse(a), parse(b), func(x, y []byte) bool { return string(x) == string(y) })
}

// A rule reload re-attests an open SDS stream's caller (a digest rule may
// now apply) the way SDS attests, without the Workload API's security
// header, and pushes what the caller holds now.
func TestSDSStreamSurvivesARuleReload(t *testing.T) {
	cfg := newConfig(t)
	ta := startAgent(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := sdsClient(t, ta).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: envoyNode(30, false), TypeUrl: workload.SecretTypeURL}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	next := *cfg
	next.Rules = append([]config.Rule{{SPIFFEID: "spiffe://example.org/extra", Selectors: []string{"any"}}}, cfg.Rules...)
	if err := ta.Agent.Reload(&next); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("after a rule reload the SDS stream ended: %v", err)
	}
	if got := secrets(t, resp); got["spiffe://example.org/extra"] == nil || resp.GetVersionInfo() == first.GetVersionInfo() {
		t.Fatalf("after a rule reload: version %q (was %q), %d secrets; want a new version holding the new identity", resp.GetVersionInfo(), first.GetVersionInfo(), len(got))
	}
}

const sdsChildEnv = "SWORN_TEST_SDS_CHILD"

// TestSDSChild is not a test of its own: run by
// TestSDSSharedBuildingNeverCrossesIdentities as a workload under another
// uid, it holds an SDS stream for "default" on the agent at
// $SWORN_TEST_SDS_CHILD as Envoy does (ACKing each response) and prints,
// per response, the SPIFFE ID of the leaf sent, whether the key sent is the
// leaf's, and a digest of the key, until it has printed two.
func TestSDSChild(t *testing.T) {
	addr := os.Getenv(sdsChildEnv)
	if addr == "" {
		t.Skip("runs only as the child process of TestSDSSharedBuildingNeverCrossesIdentities")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{Node: envoyNode(30, false), TypeUrl: workload.SecretTypeURL, ResourceNames: []string{"default"}}
	for range 2 {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(sdsHolding(t, secrets(t, resp)["default"]))
		req.VersionInfo, req.ResponseNonce = resp.GetVersionInfo(), resp.GetNonce()
	}
}

// sdsHolding describes a TLS certificate secret as TestSDSChild prints it:
// "id=<SPIFFE ID of the leaf> ownkey=<whether the key is the leaf's>
// key=<SHA-256 of the PEM key>".
func sdsHolding(t *testing.T, secret *tlsv3.Secret) string {
	t.Helper()
	tc := secret.GetTlsCertificate()
	block, _ := pem.Decode(tc.GetCertificateChain().GetInlineBytes())
	kb, _ := pem.Decode(tc.GetPrivateKey().GetInlineBytes())
	if block == nil || kb == nil {
		t.Fatalf("secret %s lacks a PEM chain or key", secret.GetName())
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil || len(leaf.URIs) != 1 {
		t.Fatalf("secret %s: leaf %v, %v", secret.GetName(), leaf, err)
	}
	key, err := ca.ParsePrivateKey(kb.Bytes)
	own := err == nil && ca.SamePublicKey(key.Public(), leaf.PublicKey)
	sum := sha256.Sum256(kb.Bytes)
	return fmt.Sprintf("id=%s ownkey=%t key=%s", leaf.URIs[0], own, hex.EncodeToString(sum[:8]))
}

// The attack on SDS's shared building: two callers of different identities
// (this process and a child under uid 65534) hold streams asking for the
// same name, "default", through a forced rotation that re-issues both. Each
// must be sent its own SVID and its own key, before and after, and never
// the other's.
func TestSDSSharedBuildingNeverCrossesIdentities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child under another uid")
	}
	cfg := newConfig(t)
	if err := os.Chmod(filepath.Dir(cfg.SocketPath), 0o755); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, cfg)
	// A bound on a failure, not a wait: a -race child on a loaded 2-core
	// machine has taken 7 s just to start.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := sdsClient(t, ta).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{Node: envoyNode(30, false), TypeUrl: workload.SecretTypeURL, ResourceNames: []string{"default"}}
	lines := sdsChild(t, filepath.Dir(cfg.SocketPath), ta.Addr(), 65534)
	seen := map[string]string{} // key digest → the identity it was sent to
	check := func(who, want, holding string) {
		t.Helper()
		var id, key string
		var own bool
		if _, err := fmt.Sscanf(holding, "id=%s ownkey=%t key=%s", &id, &own, &key); err != nil {
			t.Fatalf("%s: %q: %v", who, holding, err)
		}
		if id != want || !own {
			t.Fatalf("%s was sent the SVID of %s (its own key: %t), want its own, %s", who, id, own, want)
		}
		if prev, ok := seen[key]; ok && prev != want {
			t.Fatalf("%s was sent the key %s was sent", who, prev)
		}
		seen[key] = want
	}
	childID := "spiffe://example.org/uid/65534"
	for round := range 2 {
		if round == 1 {
			clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", ta.Config.AdminSocketPath)
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		req.VersionInfo, req.ResponseNonce = resp.GetVersionInfo(), resp.GetNonce()
		check("this process", selfID(), sdsHolding(t, secrets(t, resp)["default"]))
		check("the child", childID, sdsNextLine(t, lines))
	}
	if len(seen) != 4 {
		t.Fatalf("%d distinct keys sent, want 4 (two identities, each before and after the rotation)", len(seen))
	}
}

// sdsChild runs TestSDSChild from a copy of this test binary in dir (where
// uid can run it) as uid against the agent at addr, and returns the lines
// it prints.
func sdsChild(t *testing.T, dir, addr string, uid uint32) <-chan string {
	t.Helper()
	bin := filepath.Join(dir, "sds-child.test")
	if err := os.Link(os.Args[0], bin); err != nil { // a copy only across file systems: a -race binary is over 100 MB
		self, err := os.ReadFile(os.Args[0])
		if err == nil {
			err = os.WriteFile(bin, self, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestSDSChild$", "-test.v")
	cmd.Env = append(os.Environ(), sdsChildEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines, done := make(chan string), make(chan struct{})
	var rest testutil.Buffer // what else it printed, for when it fails
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "id=") {
				fmt.Fprintln(&rest, sc.Text())
				continue
			}
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("the child printed:\n%s%s", rest.String(), stderr.String())
		}
	})
	return lines
}

// sdsNextLine returns the child's next line.
func sdsNextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the child ended without printing what it was sent")
		}
		return l
	case <-time.After(2 * time.Minute):
		t.Fatal("the child printed nothing in 2 minutes")
	}
	return ""
}
