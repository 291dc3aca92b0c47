// Package stepcatest runs a real smallstep step-ca on loopback for tests,
// with a root, an intermediate and a JWK provisioner it writes itself, the
// provisioner using deploy/stepca/spiffe-leaf.tpl (or another template)
// whose key a test can rotate (RotateProvisionerKey).
//
// The binary is the one `make stepca` builds into .bin/step-ca (pinned in
// deploy/stepca/server); SWORN_STEPCA_BIN overrides it. A missing binary
// fails the test.
package stepcatest

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/sworn-id/sworn/internal/testutil"
)

// Password decrypts the test provisioner's key.
const Password = "sworn-test-password"

// Server is a running step-ca.
type Server struct {
	URL             string
	RootFile        string
	RootFingerprint string
	PasswordFile    string
	Provisioner     string
	cmd             *exec.Cmd
	config          string         // ca.json
	cfg             map[string]any // its content, but the provisioners
	template        string
	logs            *testutil.Buffer // exec's copying goroutines of successive processes write it
	addr            string
}

// Binary returns the step-ca binary.
func Binary(tb testing.TB) string {
	tb.Helper()
	return testutil.Bin(tb, "step-ca", "SWORN_STEPCA_BIN", "stepca")
}

// Start writes a CA and runs step-ca until the test ends. template is the
// provisioner's X.509 template file; empty means deploy/stepca/spiffe-leaf.tpl.
func Start(tb testing.TB, template string) *Server {
	tb.Helper()
	Binary(tb) // fail early when it is missing
	if template == "" {
		template = filepath.Join(testutil.Root(tb), "deploy", "stepca", "spiffe-leaf.tpl")
	}
	dir := tb.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	root := testutil.NewCA(tb, &x509.Certificate{Subject: pkix.Name{CommonName: "sworn test step-ca root"},
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, URIs: []*url.URL{{Scheme: "spiffe", Host: "example.org"}}})
	intermediate := root.Issue(tb, &x509.Certificate{Subject: pkix.Name{CommonName: "sworn test step-ca intermediate"},
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign})

	port := testutil.FreePort(tb)
	s := &Server{
		addr:         fmt.Sprintf("127.0.0.1:%d", port),
		RootFile:     write("root.crt", root.CertPEM()),
		PasswordFile: write("password", []byte(Password+"\n")),
		Provisioner:  "sworn",
		logs:         &testutil.Buffer{},
	}
	sum := sha256.Sum256(root.Cert.Raw)
	s.RootFingerprint = hex.EncodeToString(sum[:])
	s.URL = "https://" + s.addr
	cfg := map[string]any{
		"root":     s.RootFile,
		"crt":      write("intermediate.crt", intermediate.CertPEM()),
		"key":      write("intermediate.key", intermediate.KeyPEM(tb)),
		"address":  s.addr,
		"dnsNames": []string{"127.0.0.1", "localhost"},
		"logger":   map[string]any{"format": "text"},
		"tls":      map[string]any{"minVersion": 1.2, "maxVersion": 1.3},
	}
	s.cfg, s.template, s.config = cfg, template, filepath.Join(dir, "ca.json")
	s.writeConfig(tb)
	s.Start(tb)
	tb.Cleanup(func() { s.Stop() })
	return s
}

// writeConfig writes ca.json with a provisioner key made now, encrypted
// with Password.
func (s *Server) writeConfig(tb testing.TB) {
	tb.Helper()
	jwk, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		tb.Fatal(err)
	}
	kid, _ := jwk.Thumbprint(crypto.SHA256)
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(kid)
	enc, err := jose.EncryptJWK(jwk, []byte(Password))
	if err != nil {
		tb.Fatal(err)
	}
	encrypted, err := enc.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	pub := jwk.Public()
	s.cfg["authority"] = map[string]any{
		"provisioners": []any{map[string]any{
			"type": "JWK", "name": s.Provisioner, "key": &pub, "encryptedKey": encrypted,
			"claims":  map[string]any{"minTLSCertDuration": "1m", "maxTLSCertDuration": "24h", "defaultTLSCertDuration": "1h"},
			"options": map[string]any{"x509": map[string]any{"templateFile": s.template}},
		}},
	}
	data, err := json.MarshalIndent(s.cfg, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(s.config, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// RotateProvisionerKey gives the provisioner a new key (same name and
// password) and restarts step-ca, as an operator replacing it would: a
// token signed with the old key is then refused with 401.
func (s *Server) RotateProvisionerKey(tb testing.TB) {
	tb.Helper()
	s.Stop()
	s.writeConfig(tb)
	s.Start(tb)
}

// Start (re)starts the process and waits until it answers.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	s.cmd = exec.Command(Binary(tb), s.config)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(s.config), "STEPPATH="+filepath.Dir(s.config))
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("start step-ca: %v", err)
	}
	pool := x509.NewCertPool()
	rootPEM, _ := os.ReadFile(s.RootFile)
	pool.AppendCertsFromPEM(rootPEM)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/health", nil)
		resp, err := client.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("step-ca not ready: %v\n%s", err, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the process (a restart with Start keeps the same CA).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait() // also waits for the output to be copied
		s.cmd = nil
	}
}
