package agent_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/oidc"
	"github.com/sworn-id/sworn/internal/testutil"
)

func getJSON(t *testing.T, c *http.Client, url string, out any) {
	t.Helper()
	code, body := getWith(t, c, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatal(err)
	}
}

func TestOIDCOnASocketServesTheAgentsJWTBundleAndTokensLackIssByDefault(t *testing.T) {
	cfg := newConfig(t)
	sock := filepath.Join(filepath.Dir(cfg.SocketPath), "oidc.sock")
	cfg.OIDC = config.OIDC{Enabled: true, Issuer: "https://oidc.example.org", Socket: sock}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, cfg)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, c, "http://proxy"+oidc.DiscoveryPath, &doc)
	if doc.Issuer != "https://oidc.example.org" || doc.JWKSURI != "https://oidc.example.org/keys" {
		t.Fatalf("discovery %+v", doc)
	}
	var set jose.JSONWebKeySet
	getJSON(t, c, "http://proxy/keys", &set)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bundles, err := workloadapi.FetchJWTBundles(ctx, workloadapi.WithAddr(a.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := bundles.Get(td)
	if len(set.Keys) == 0 || len(set.Keys) != len(want.JWTAuthorities()) {
		t.Fatalf("served %d keys, the Workload API %d", len(set.Keys), len(want.JWTAuthorities()))
	}
	for _, k := range set.Keys {
		if pub, ok := want.FindJWTAuthority(k.KeyID); !ok || !k.Key.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Fatalf("key %s is not the bundle's", k.KeyID)
		}
	}
	claims := strings.Split(fetchJWT(t, a, "vault"), ".")[1]
	raw, _ := base64.RawURLEncoding.DecodeString(claims)
	if strings.Contains(string(raw), `"iss"`) {
		t.Fatalf("iss without jwt_issuer_claim: %s", raw)
	}
	if err := a.Stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// servedSerial is the serial of the certificate the endpoint presents on
// a new connection.
func servedSerial(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads the certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestOIDCServesARenewedCertificateWithoutARestart(t *testing.T) {
	ca := testutil.NewCA(t, nil)
	a, _ := oidcAgent(t, ca)
	o := a.Config.OIDC
	first := servedSerial(t, o.Listen)
	if want := mustLoad(t, o.CertFile); first != want {
		t.Fatalf("served serial %s, want the file's %s", first, want)
	}
	// A half-written renewal does not load: the last good pair stays.
	if err := os.WriteFile(o.CertFile, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, o.Listen); got != first {
		t.Fatalf("with a broken cert_file served %s, want the previous %s", got, first)
	}
	newCert, newKey := serverCert(t, ca, t.TempDir())
	for _, f := range [][2]string{{newCert, o.CertFile}, {newKey, o.KeyFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := servedSerial(t, o.Listen), mustLoad(t, o.CertFile); got != want || got == first {
		t.Fatalf("after renewal served %s, want the new %s (old %s)", got, want, first)
	}
}

func mustLoad(t *testing.T, certFile string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, strings.TrimSuffix(certFile, ".crt")+".key")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}
