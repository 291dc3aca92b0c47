package agent_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/agent"
	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

const childEnv = "SWORN_TEST_CHILD_FETCH"

// TestMain lets the test binary act as a workload in a child process run
// under another uid: it fetches an SVID and prints the gRPC code it got.
func TestMain(m *testing.M) {
	if addr := os.Getenv(childEnv); addr != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
		fmt.Println("code:", status.Code(err))
		return
	}
	os.Exit(m.Run())
}

var td = spiffeid.RequireTrustDomainFromString("example.org")

type testAgent = agenttest.Agent

var (
	newConfig  = agenttest.Config
	startAgent = agenttest.Start
)

func newSource(t *testing.T, ta *testAgent) *workloadapi.X509Source { return ta.Source(t) }

func TestX509SourceGetsSVIDThatVerifiesAgainstServedBundle(t *testing.T) {
	ta := startAgent(t, newConfig(t))
	src := newSource(t, ta)

	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	want := spiffeid.RequireFromPath(td, fmt.Sprintf("/uid/%d", os.Geteuid()))
	if svid.ID != want {
		t.Fatalf("SVID ID %s, want %s", svid.ID, want)
	}
	id, _, err := x509svid.Verify(svid.Certificates, src)
	if err != nil || id != want {
		t.Fatalf("x509svid.Verify against the served bundle = %v, %v", id, err)
	}
	leaf := svid.Certificates[0]
	if leaf.IsCA || leaf.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Fatal("leaf breaks the X.509-SVID profile")
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got > time.Hour+time.Minute {
		t.Fatalf("default TTL not applied: lifetime %v", got)
	}
}

func TestRotateSVIDsAllReachesOpenSource(t *testing.T) {
	ta := startAgent(t, newConfig(t))
	src := newSource(t, ta)
	first, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}

	out := clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", ta.Config.AdminSocketPath)
	if !strings.Contains(out, "re-issuing 1 SVID") {
		t.Fatalf("rotate output: %q", out)
	}
	testutil.Eventually(t, "a new serial in the open X509Source", func() bool {
		s, err := src.GetX509SVID()
		return err == nil && s.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) != 0
	})
	status := clitest.Run(t, "status", "--admin-socket", ta.Config.AdminSocketPath)
	if !strings.Contains(status, "spiffe://example.org/uid/") || !strings.Contains(status, "active") {
		t.Fatalf("status output lacks the identity or CA:\n%s", status)
	}
}

func TestCallerWithNoRuleGetsPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child under another uid")
	}
	cfg := newConfig(t, config.Rule{SPIFFEID: "spiffe://example.org/root-only", Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Geteuid())}})
	if err := os.Chmod(filepath.Dir(cfg.SocketPath), 0o755); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, cfg)

	out := childFetch(t, filepath.Dir(cfg.SocketPath), ta.Addr(), 65534)
	if !strings.Contains(out, "code: PermissionDenied") {
		t.Fatalf("child under uid 65534 got %q, want PermissionDenied", out)
	}

	// The agent's own uid still gets its identity.
	svid, err := newSource(t, ta).GetX509SVID()
	if err != nil || svid.ID.String() != "spiffe://example.org/root-only" {
		t.Fatalf("allowed caller: %v, %v", svid, err)
	}
}

// childFetch runs this test binary, copied into dir where uid can run it,
// as uid in a child process that fetches an X.509-SVID from addr (see
// TestMain) and returns what it printed.
func childFetch(t *testing.T, dir, addr string, uid uint32) string {
	t.Helper()
	bin := filepath.Join(dir, "child.test")
	if _, err := os.Stat(bin); err != nil {
		self, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, self, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child as uid %d: %v\n%s", uid, err, out)
	}
	return string(out)
}

func rawClient(t testing.TB, ta *testAgent) workload.SpiffeWorkloadAPIClient {
	t.Helper()
	return workload.NewSpiffeWorkloadAPIClient(dialAgent(t, ta))
}

// dialAgent is a gRPC connection to the agent's Workload API socket, closed
// when the test ends.
func dialAgent(t testing.TB, ta *testAgent) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(ta.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestSecurityHeaderIsRequired(t *testing.T) {
	ta := startAgent(t, newConfig(t))
	client := rawClient(t, ta)
	tests := []struct {
		name string
		md   metadata.MD
		want codes.Code
	}{
		{name: "missing", md: metadata.MD{}, want: codes.InvalidArgument},
		{name: "wrong value", md: metadata.Pairs("workload.spiffe.io", "false"), want: codes.InvalidArgument},
		{name: "present", md: metadata.Pairs("workload.spiffe.io", "true"), want: codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), tt.md), 10*time.Second)
			defer cancel()
			svidStream, err := client.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = svidStream.Recv()
			if got := status.Code(err); got != tt.want {
				t.Fatalf("FetchX509SVID: code %v (%v), want %v", got, err, tt.want)
			}
			bundleStream, err := client.FetchX509Bundles(ctx, &workload.X509BundlesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = bundleStream.Recv()
			if got := status.Code(err); got != tt.want {
				t.Fatalf("FetchX509Bundles: code %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}

func TestReloadPushesNewIdentitiesAndRevokes(t *testing.T) {
	cfg := newConfig(t)
	ta := startAgent(t, cfg)
	stream := openX509Stream(t, ta)

	next := *cfg
	next.Rules = append([]config.Rule{{SPIFFEID: "spiffe://example.org/extra", Selectors: []string{"any"}, Hint: "extra"}}, cfg.Rules...)
	if err := ta.Agent.Reload(&next); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || len(resp.Svids) != 2 || resp.Svids[0].SpiffeId != "spiffe://example.org/extra" || resp.Svids[0].Hint != "extra" {
		t.Fatalf("after adding a rule: %v, %v", resp, err)
	}

	next.Rules = []config.Rule{{SPIFFEID: "spiffe://example.org/nobody", Selectors: []string{"unix:uid:4294967294"}}}
	if err := ta.Agent.Reload(&next); err != nil {
		t.Fatal(err)
	}
	for {
		_, err = stream.Recv()
		if err != nil {
			break
		}
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("after losing every identity the stream ended with %v, want PermissionDenied", err)
	}
}

func TestRestartReusesPersistedCA(t *testing.T) {
	cfg := newConfig(t)
	first := startAgent(t, cfg)
	bundle1 := fetchBundle(t, first)
	if err := first.Stop(t); err != nil {
		t.Fatal(err)
	}

	second := startAgent(t, cfg)
	bundle2 := fetchBundle(t, second)
	if !bundle1.Equal(bundle2) {
		t.Fatal("the restarted agent serves a different CA")
	}
}

func fetchBundle(t *testing.T, ta *testAgent) *x509bundle.Bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	set, err := workloadapi.FetchX509Bundles(ctx, workloadapi.WithAddr(ta.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := set.GetX509BundleForTrustDomain(td)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// staticSource serves one fixed SVID, so a test can hold on to an SVID from
// the old CA after the agent has rotated.
type staticSource struct{ svid *x509svid.SVID }

func (s staticSource) GetX509SVID() (*x509svid.SVID, error) { return s.svid, nil }

func TestCARotationKeepsOldAndNewSVIDsTalking(t *testing.T) {
	ta := startAgent(t, newConfig(t))
	src := newSource(t, ta)
	oldSVID, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}

	clitest.Run(t, "rotate", "ca", "--admin-socket", ta.Config.AdminSocketPath)
	testutil.Eventually(t, "the prepared CA in the open source's bundle", func() bool {
		b, err := src.GetX509BundleForTrustDomain(td)
		return err == nil && len(b.X509Authorities()) == 2
	})
	if s, _ := src.GetX509SVID(); s.Certificates[0].SerialNumber.Cmp(oldSVID.Certificates[0].SerialNumber) != 0 {
		t.Fatal("a prepared CA must not sign: the SVID changed before activation")
	}

	clitest.Run(t, "rotate", "ca", "--activate", "--admin-socket", ta.Config.AdminSocketPath)
	var newSVID *x509svid.SVID
	testutil.Eventually(t, "an SVID from the new CA", func() bool {
		s, err := src.GetX509SVID()
		if err != nil || s.Certificates[0].SerialNumber.Cmp(oldSVID.Certificates[0].SerialNumber) == 0 {
			return false
		}
		newSVID = s
		return true
	})
	if string(newSVID.Certificates[0].AuthorityKeyId) == string(oldSVID.Certificates[0].AuthorityKeyId) {
		t.Fatal("the new SVID was signed by the old CA")
	}

	// A real mTLS handshake: server holds the old-CA SVID, client the new
	// one; both verify the peer against the bundle the agent serves.
	anyID := tlsconfig.AuthorizeMemberOf(td)
	serverConf := tlsconfig.MTLSServerConfig(staticSource{oldSVID}, src, anyID)
	clientConf := tlsconfig.MTLSClientConfig(staticSource{newSVID}, src, anyID)
	handshake(t, serverConf, clientConf)
}

func TestStopEndsStreamsCleanly(t *testing.T) {
	ta := startAgent(t, newConfig(t))
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 20*time.Second)
	defer cancel()
	stream, err := rawClient(t, ta).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := ta.Stop(t); err != nil {
		t.Fatalf("Run returned %v on shutdown, want nil", err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("open stream ended with %v, want a clean end (EOF)", err)
	}
	if _, err := os.Stat(ta.Config.SocketPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestSocketsAndHealth(t *testing.T) {
	cfg := newConfig(t)
	cfg.HealthAddr = testutil.FreeAddr(t)
	ta := startAgent(t, cfg)
	newSource(t, ta) // issue one SVID so the metrics have something to say

	fi, err := os.Stat(cfg.AdminSocketPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode %v, want 0600", fi.Mode().Perm())
	}
	for path, want := range map[string]string{
		"/live":    "ok",
		"/ready":   "ok",
		"/metrics": `sworn_svids_issued_total{reason="new"} 1`,
	} {
		resp, err := http.Get("http://" + cfg.HealthAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	out := clitest.Run(t, "healthcheck", "--socket", cfg.SocketPath)
	if !strings.Contains(out, "healthy") {
		t.Fatalf("healthcheck: %q", out)
	}
}

func TestSecondAgentRefusesALiveSocket(t *testing.T) {
	cfg := newConfig(t)
	startAgent(t, cfg)
	second := *cfg
	second.DataDir = filepath.Join(filepath.Dir(cfg.DataDir), "data2")
	a, err := agent.New(&second, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another process is serving") {
		t.Fatalf("second agent on a live socket: %v", err)
	}
}

func TestDebugAttestExplainsIdentities(t *testing.T) {
	ta := startAgent(t, newConfig(t, config.Rule{SPIFFEID: "spiffe://example.org/root-only", Selectors: []string{"unix:uid:4294967294"}}))
	out := clitest.Run(t, "debug", "attest", "--pid", fmt.Sprint(os.Getpid()), "--admin-socket", ta.Config.AdminSocketPath)
	if !strings.Contains(out, fmt.Sprintf("unix:uid:%d", os.Geteuid())) || !strings.Contains(out, "no identity issued") {
		t.Fatalf("debug attest of a process no rule matches:\n%s", out)
	}
}

// openX509Stream opens a FetchX509SVID stream as this process (one
// identity) and reads its first message; the stream lives until the test
// ends.
func openX509Stream(t *testing.T, ta *testAgent) grpc.ServerStreamingClient[workload.X509SVIDResponse] {
	t.Helper()
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true")), 20*time.Second)
	t.Cleanup(cancel)
	stream, err := rawClient(t, ta).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || len(resp.Svids) != 1 {
		t.Fatalf("first message: %v, %v", resp, err)
	}
	return stream
}

// The agent hashes a caller's executable only when a rule uses
// unix:sha256. A rule on the digest added by a reload must still reach a
// stream opened before it, whose caller was attested without the digest:
// the stream's caller is attested again when the rules change.
func TestReloadAddingADigestRuleReachesAnOpenStream(t *testing.T) {
	cfg := newConfig(t)
	ta := startAgent(t, cfg)
	stream := openX509Stream(t, ta)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(data)
	next := *cfg
	next.Rules = append([]config.Rule{{SPIFFEID: "spiffe://example.org/by-digest", Selectors: []string{"unix:sha256:" + hex.EncodeToString(digest[:])}}}, cfg.Rules...)
	if err := ta.Agent.Reload(&next); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range resp.Svids {
		ids = append(ids, s.SpiffeId)
	}
	if len(ids) != 2 || ids[0] != "spiffe://example.org/by-digest" {
		t.Fatalf("after adding a rule on this executable's digest the stream holds %v, want spiffe://example.org/by-digest first", ids)
	}
}
