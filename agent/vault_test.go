package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/cmd/sworn/cli/clitest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// vaultConfig returns an agent config on a real Vault dev server set up by
// the same code as `sworn vault setup`, reached through proxy if given.
func vaultConfig(t *testing.T, addr string, mode string) *config.Config {
	t.Helper()
	cfg := newConfig(t)
	tokenFile := filepath.Join(filepath.Dir(cfg.DataDir), "vault-token")
	if err := os.WriteFile(tokenFile, []byte(vaulttest.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.CA = config.CA{Type: "vault", Vault: vault.Config{
		Address:       addr,
		Mode:          vault.Mode(mode),
		BundleRefresh: time.Second,
		Auth:          vault.Auth{Method: "token", TokenFile: tokenFile},
	}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startVault(t *testing.T) (*vaulttest.Server, *vault.Admin) {
	t.Helper()
	srv := vaulttest.Start(t)
	admin := vault.NewAdmin(srv.Client, "", "")
	if _, err := admin.Setup(context.Background(), vault.SetupOptions{TrustDomain: td, Intermediate: true}); err != nil {
		t.Fatal(err)
	}
	return srv, admin
}

func TestVaultBackedAgentServesVerifiableSVIDsAndRestoresThemAfterRestart(t *testing.T) {
	srv, _ := startVault(t)
	for _, mode := range []string{"sign", "intermediate"} {
		t.Run(mode, func(t *testing.T) {
			cfg := vaultConfig(t, srv.Addr, mode)
			first := startAgent(t, cfg)
			svid, err := newSource(t, first).GetX509SVID()
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := x509svid.Verify(svid.Certificates, fetchBundle(t, first)); err != nil {
				t.Fatalf("SVID does not verify against the bundle the agent serves: %v", err)
			}
			if wantChain := map[string]int{"sign": 1, "intermediate": 2}[mode]; len(svid.Certificates) != wantChain {
				t.Fatalf("chain of %d, want %d", len(svid.Certificates), wantChain)
			}
			if err := first.Stop(t); err != nil {
				t.Fatal(err)
			}

			// A restart serves the persisted SVID instead of asking Vault.
			second := startAgent(t, cfg)
			again, err := newSource(t, second).GetX509SVID()
			if err != nil {
				t.Fatal(err)
			}
			if again.Certificates[0].SerialNumber.Cmp(svid.Certificates[0].SerialNumber) != 0 {
				t.Fatal("the restarted agent issued a new SVID instead of serving the persisted one")
			}
		})
	}
}

func TestVaultOutageKeepsServingAndRecovers(t *testing.T) {
	srv, _ := startVault(t)
	proxy := vaulttest.NewProxy(t, srv.Addr)
	cfg := vaultConfig(t, proxy.Addr, "sign")
	cfg.HealthAddr = testutil.FreeAddr(t)
	ta := startAgent(t, cfg)
	src := newSource(t, ta)
	first, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}

	proxy.Down()
	clitest.Run(t, "rotate", "svids", "--all", "--admin-socket", cfg.AdminSocketPath)
	testutil.Eventually(t, "/ready to report the CA unreachable", func() bool {
		code, body := get(t, "http://"+cfg.HealthAddr+"/ready")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "CA unreachable")
	})
	if _, body := get(t, "http://"+cfg.HealthAddr+"/metrics"); !strings.Contains(body, "\nsworn_ca_reachable 0\n") {
		t.Fatal("metrics do not show the CA unreachable")
	}
	// The forced renewal failed and is retried with backoff: counted.
	testutil.Eventually(t, "the failed renewal in sworn_svid_rotation_failures_total", func() bool {
		return metric(t, cfg.HealthAddr, "sworn_svid_rotation_failures_total") >= 1
	})
	if s, err := src.GetX509SVID(); err != nil || s.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) != 0 {
		t.Fatal("the cached SVID stopped being served during the outage")
	}
	if _, err := fetchX509(t, ta); err != nil {
		t.Fatalf("a new stream during the outage: %v", err)
	}

	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the retried renewal to reach the open source", func() bool {
		s, err := src.GetX509SVID()
		return err == nil && s.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) != 0
	})
	testutil.Eventually(t, "/ready to recover", func() bool {
		code, _ := get(t, "http://"+cfg.HealthAddr+"/ready")
		return code == http.StatusOK
	})
}

func TestVaultCARotationReachesWorkloadsBeforeItSigns(t *testing.T) {
	srv, admin := startVault(t)
	cfg := vaultConfig(t, srv.Addr, "sign")
	ta := startAgent(t, cfg)
	src := newSource(t, ta)
	oldSVID, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := admin.Issuers(context.Background())
	oldIssuer := before[0]

	ctx := context.Background()
	next, err := admin.Rotate(ctx, td, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "both issuers in the open source's bundle", func() bool {
		b, err := src.GetX509BundleForTrustDomain(td)
		return err == nil && len(b.X509Authorities()) == 2
	})
	if s, _ := src.GetX509SVID(); !bytes.Equal(s.Certificates[0].AuthorityKeyId, oldIssuer.Certificate.SubjectKeyId) {
		t.Fatal("an SVID from the new issuer appeared before it was activated")
	}
	if _, err := admin.Activate(ctx, next.ID, time.Hour); err == nil || !strings.Contains(err.Error(), "min-age") {
		t.Fatalf("activating a just-published issuer with --min-age 1h: %v", err)
	}
	if _, err := admin.Activate(ctx, next.ID, 0); err != nil {
		t.Fatal(err)
	}
	var newSVID *x509svid.SVID
	testutil.Eventually(t, "an SVID from the new issuer in the open source", func() bool {
		s, err := src.GetX509SVID()
		if err != nil || !bytes.Equal(s.Certificates[0].AuthorityKeyId, next.Certificate.SubjectKeyId) {
			return false
		}
		newSVID = s
		return true
	})

	anyID := tlsconfig.AuthorizeMemberOf(td)
	handshake(t, tlsconfig.MTLSServerConfig(staticSource{oldSVID}, src, anyID), tlsconfig.MTLSClientConfig(staticSource{newSVID}, src, anyID))

	if _, err := admin.Retire(ctx, oldIssuer.ID, false); err == nil || !strings.Contains(err.Error(), "may be valid until") {
		t.Fatalf("retiring the old issuer right away: %v", err)
	}
	admin.Now = func() time.Time { return time.Now().Add(25 * time.Hour) } // past the role's 24h max TTL
	if _, err := admin.Retire(ctx, oldIssuer.ID, false); err != nil {
		t.Fatalf("retiring after the window: %v", err)
	}
	testutil.Eventually(t, "the retired issuer to leave the bundle", func() bool {
		b, err := src.GetX509BundleForTrustDomain(td)
		return err == nil && len(b.X509Authorities()) == 1
	})
}

func handshake(t *testing.T, serverConf, clientConf *tls.Config) {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", serverConf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			c.Close()
		}
		serverErr <- err
	}()
	conn, err := tls.Dial("tcp", l.Addr().String(), clientConf)
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	conn.Close()
	if err := <-serverErr; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return getWith(t, http.DefaultClient, url)
}

// getWith GETs url with c and returns the status code and body.
func getWith(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func fetchX509(t *testing.T, ta *testAgent) (*workloadapi.X509Context, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(ta.Addr()))
}

// servedBeforeRestart runs an agent on Vault in mode, through a proxy the
// test can cut, until it has served one SVID, then stops it: its data dir
// holds what a restart finds.
func servedBeforeRestart(t *testing.T, mode string) (*config.Config, *vaulttest.Proxy, *x509svid.SVID) {
	t.Helper()
	srv, _ := startVault(t)
	proxy := vaulttest.NewProxy(t, srv.Addr)
	cfg := vaultConfig(t, proxy.Addr, mode)
	first := startAgent(t, cfg)
	svid, err := newSource(t, first).GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(t); err != nil {
		t.Fatal(err)
	}
	return cfg, proxy, svid
}

func TestVaultDownAtRestartServesPersistedSVIDsAndBundle(t *testing.T) {
	cfg, proxy, svid := servedBeforeRestart(t, "sign")

	proxy.Down()
	second := startAgent(t, cfg)
	x509ctx, err := fetchX509(t, second)
	if err != nil {
		t.Fatalf("fetch from an agent restarted while Vault is down: %v", err)
	}
	again := x509ctx.DefaultSVID()
	if again.Certificates[0].SerialNumber.Cmp(svid.Certificates[0].SerialNumber) != 0 {
		t.Fatal("the persisted SVID was not served")
	}
	if _, _, err := x509svid.Verify(again.Certificates, x509ctx.Bundles); err != nil {
		t.Fatalf("the served SVID does not verify against the served (last known) bundle: %v", err)
	}
}
