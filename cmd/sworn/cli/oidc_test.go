package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/agenttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// unixGet GETs path from an HTTP server on a Unix socket.
func unixGet(t *testing.T, sock, path string) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Get("http://oidc" + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// servedKIDs returns the key IDs /keys serves, or nil while it is not 200.
func servedKIDs(t *testing.T, sock string) []string {
	t.Helper()
	code, body := unixGet(t, sock, "/keys")
	if code != http.StatusOK {
		return nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("/keys: %v: %s", err, body)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

// agentKIDs returns the key IDs of td's JWT bundle from the Workload API.
func agentKIDs(t *testing.T, a *agenttest.Agent, td spiffeid.TrustDomain) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	set, err := workloadapi.FetchJWTBundles(ctx, workloadapi.WithAddr(a.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := set.Get(td)
	kids := slices.Sorted(func(yield func(string) bool) {
		for kid := range b.JWTAuthorities() {
			if !yield(kid) {
				return
			}
		}
	})
	return kids
}

func TestOIDCCommandServesTheAgentsJWTBundleAndKeepsItWhileTheAgentIsAway(t *testing.T) {
	cfg := agenttest.Config(t)
	td := cfg.TrustDomainID()
	sock := filepath.Join(testutil.ShortTempDir(t, "oidc"), "oidc.sock")

	oidcCmd := clitest.Start(t, "oidc", "--issuer", "https://oidc.example.org", "--trust-domain", td.Name(),
		"--listen-socket", sock, "--socket", cfg.SocketPath)

	// Before the agent runs: retry later, never an empty key set.
	testutil.Eventually(t, "sworn oidc to listen", func() bool { code, _ := unixGet(t, sock, "/keys"); return code != 0 })
	if code, body := unixGet(t, sock, "/keys"); code != http.StatusServiceUnavailable {
		t.Fatalf("/keys with no agent yet: %d %s, want 503", code, body)
	}

	a := agenttest.Start(t, cfg)
	want := agentKIDs(t, a, td)
	if len(want) == 0 {
		t.Fatal("the agent has no JWT keys")
	}
	testutil.Eventually(t, "the agent's JWT keys to be served", func() bool { return slices.Equal(servedKIDs(t, sock), want) })
	code, body := unixGet(t, sock, "/.well-known/openid-configuration")
	if code != http.StatusOK || !strings.Contains(string(body), `"jwks_uri":"https://oidc.example.org/keys"`) {
		t.Fatalf("discovery: %d %s", code, body)
	}

	clitest.Run(t, "rotate", "ca", "--admin-socket", cfg.AdminSocketPath)
	// The CA publishes at once; the agent's bundle store takes it on its
	// own loop, so the Workload API may still answer with the old set.
	var rotated []string
	testutil.Eventually(t, "rotate ca to publish a new JWT key", func() bool {
		rotated = agentKIDs(t, a, td)
		return !slices.Equal(rotated, want)
	})
	testutil.Eventually(t, "the rotated JWT keys to be served", func() bool { return slices.Equal(servedKIDs(t, sock), rotated) })

	if err := a.Stop(t); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "sworn oidc to see the agent gone", func() bool { return strings.Contains(oidcCmd.Output(), "serving the last bundles received") })
	if got := servedKIDs(t, sock); !slices.Equal(got, rotated) {
		t.Fatalf("with the agent away /keys serves %v, want the last keys %v", got, rotated)
	}

	if err := oidcCmd.Stop(t); err != nil {
		t.Fatalf("sworn oidc on SIGTERM: %v, want a clean exit", err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestOIDCCommandRefusesFlagsItCannotServe(t *testing.T) {
	base := []string{"oidc", "--issuer", "https://oidc.example.org", "--trust-domain", "example.org"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no trust domain", args: []string{"oidc", "--issuer", "https://o.example.org", "--listen-socket", "/tmp/x.sock"}, want: "--trust-domain is required"},
		{name: "bad trust domain", args: []string{"oidc", "--issuer", "https://o.example.org", "--trust-domain", "Ex ample", "--listen-socket", "/tmp/x.sock"}, want: `--trust-domain "Ex ample"`},
		{name: "http issuer", args: []string{"oidc", "--issuer", "http://o.example.org", "--trust-domain", "example.org", "--listen-socket", "/tmp/x.sock"}, want: "want the https URL"},
		{name: "nowhere to listen", args: base, want: "set --listen"},
		{name: "both", args: append(slices.Clone(base), "--listen", ":8443", "--cert-file", "c", "--key-file", "k", "--listen-socket", "/tmp/x.sock"), want: "exclude each other"},
		{name: "HTTPS without a key", args: append(slices.Clone(base), "--listen", ":8443", "--cert-file", "c"), want: "--key-file are required"},
		{name: "socket with a certificate", args: append(slices.Clone(base), "--listen-socket", "/tmp/x.sock", "--cert-file", "c"), want: "drop --cert-file"},
		{name: "port out of range", args: append(slices.Clone(base), "--listen", "127.0.0.1:84430", "--cert-file", "c", "--key-file", "k"), want: "--listen: port 84430"},
		{name: "missing certificate file", args: append(slices.Clone(base), "--listen", "127.0.0.1:0", "--cert-file", "/nonexistent/c.pem", "--key-file", "/nonexistent/k.pem"), want: "/nonexistent/c.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := clitest.Fail(t, tt.args...)
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
