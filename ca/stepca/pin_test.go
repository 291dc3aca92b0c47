package stepca_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/stepca"
	"github.com/sworn-id/sworn/ca/stepca/stepcatest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// The root pin holds against a step-ca whose root is not the pinned one:
// a fingerprint of another root (step-ca serves no root under it, or one
// whose hash differs) and a root file of another CA (the TLS handshake
// fails) both refuse to talk to it. That is a misconfiguration (or an
// impostor), not an outage: New fails with ca.ErrInvalidRequest.
func TestStepCARootPinRefusesAnotherRoot(t *testing.T) {
	s := stepcatest.Start(t, "")
	other := testutil.NewCA(t, &x509.Certificate{Subject: pkix.Name{CommonName: "not step-ca's root"}})
	sum := sha256.Sum256(other.Cert.Raw)
	otherFile := filepath.Join(t.TempDir(), "other.crt")
	if err := os.WriteFile(otherFile, other.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, fingerprint, rootFile, says string
	}{
		{name: "fingerprint of another root", fingerprint: hex.EncodeToString(sum[:]), says: "GET /root/"},
		{name: "root file of another CA", rootFile: otherFile, says: "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: s.URL, RootFingerprint: tc.fingerprint,
				RootFile: tc.rootFile, Provisioner: s.Provisioner, PasswordFile: s.PasswordFile})
			if !errors.Is(err, ca.ErrInvalidRequest) || errors.Is(err, ca.ErrUnavailable) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("New pinned to another root: %v, want ca.ErrInvalidRequest saying %q", err, tc.says)
			}
		})
	}
}

// With the root pinned by fingerprint, a step-ca that is down when the
// agent starts is an outage like any other: New returns a CA (it fetches
// the root at the first exchange, not in New), and once step-ca is up a
// sign loads the roots it needs (without waiting for a refresh) and works.
func TestStepCAFingerprintPinnedStartsWhileStepCAIsDown(t *testing.T) {
	s := stepcatest.Start(t, "")
	s.Stop()
	health := &testutil.ErrorLog{}
	c, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: s.URL, RootFingerprint: s.RootFingerprint,
		Provisioner: s.Provisioner, PasswordFile: s.PasswordFile, OnHealth: health.Add})
	if err != nil {
		t.Fatalf("New while step-ca is down: %v, want a CA that keeps trying", err)
	}
	if got := health.Since(0); len(got) != 1 || !errors.Is(got[0], ca.ErrUnavailable) {
		t.Fatalf("OnHealth heard %v, want one ca.ErrUnavailable", got)
	}
	if _, err := sign(c, "/web"); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("sign while step-ca is down: %v, want ca.ErrUnavailable", err)
	}
	s.Start(t)
	if _, err := sign(c, "/web"); err != nil {
		t.Fatalf("sign after step-ca came up, before any refresh: %v", err)
	}
	if got := len(c.Authorities().X509); got != 1 {
		t.Fatalf("%d roots after the sign, want step-ca's one", got)
	}
	if got := health.Since(1); len(got) == 0 || got[len(got)-1] != nil {
		t.Fatalf("OnHealth after step-ca came up heard %v, want nil last", got)
	}
}

// A reverse proxy in front of step-ca (a load balancer, an ingress)
// answers 502 with its own HTML page when step-ca is down. That is an
// outage, classified by the status, though the body is not step-ca's JSON.
func TestStepCABehindAProxyAnswering502IsAnOutage(t *testing.T) {
	s := stepcatest.Start(t, "")
	target, _ := url.Parse(s.URL)
	rootPEM, err := os.ReadFile(s.RootFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"))
	}
	front := httptest.NewTLSServer(proxy)
	t.Cleanup(front.Close)
	frontRoot := filepath.Join(t.TempDir(), "front.crt")
	if err := os.WriteFile(frontRoot, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	health := &testutil.ErrorLog{}
	c, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: front.URL, RootFile: frontRoot,
		Provisioner: s.Provisioner, PasswordFile: s.PasswordFile, OnHealth: health.Add})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign(c, "/web"); err != nil {
		t.Fatalf("sign through the proxy: %v", err)
	}
	s.Stop()
	_, err = sign(c, "/web")
	if !errors.Is(err, ca.ErrUnavailable) || errors.Is(err, ca.ErrInvalidRequest) || !strings.Contains(err.Error(), "502") {
		t.Fatalf("sign through the proxy with step-ca down: %v, want ca.ErrUnavailable saying 502", err)
	}
	if got := health.Since(0); !errors.Is(got[len(got)-1], ca.ErrUnavailable) {
		t.Fatalf("OnHealth last heard %v, want ca.ErrUnavailable", got[len(got)-1])
	}
}

// A provisioner password that does not open the key is the operator's
// mistake: an invalid request, neither an outage nor step-ca's refusal.
func TestStepCAWrongProvisionerPassword(t *testing.T) {
	s := stepcatest.Start(t, "")
	wrong := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(wrong, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: s.URL, RootFingerprint: s.RootFingerprint,
		Provisioner: s.Provisioner, PasswordFile: wrong})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sign(c, "/web")
	if !errors.Is(err, ca.ErrInvalidRequest) || errors.Is(err, ca.ErrRefused) || errors.Is(err, ca.ErrUnavailable) ||
		!strings.Contains(err.Error(), "password is wrong") {
		t.Fatalf("sign with the wrong provisioner password: %v, want ca.ErrInvalidRequest saying the password is wrong", err)
	}
}

// An impostor on the path to step-ca (it answers every request, and
// GET /root/<fingerprint> with its own certificate) is refused: the root
// it serves is not the one whose SHA-256 was pinned.
func TestStepCAFingerprintPinRefusesAnImpostor(t *testing.T) {
	var impostor *httptest.Server
	impostor = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		crt := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: impostor.Certificate().Raw}))
		if strings.HasPrefix(r.URL.Path, "/root/") {
			_ = json.NewEncoder(w).Encode(map[string]string{"ca": crt})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string][]string{"crts": {crt}})
	}))
	t.Cleanup(impostor.Close)
	s := stepcatest.Start(t, "")
	_, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: impostor.URL, RootFingerprint: s.RootFingerprint,
		Provisioner: s.Provisioner, PasswordFile: s.PasswordFile})
	if !errors.Is(err, ca.ErrInvalidRequest) || !strings.Contains(err.Error(), "not the pinned root_fingerprint") {
		t.Fatalf("New against an impostor: %v, want ca.ErrInvalidRequest saying its root is not the pinned one", err)
	}
}

// Whoever answers at the step-ca URL is read before it is authenticated
// (GET /root/<fingerprint>): an endless answer is cut off and refused,
// not read into memory.
func TestStepCAEndlessAnswerBeforeThePinIsRefused(t *testing.T) {
	endless := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ca":"`))
		chunk := []byte(strings.Repeat("A", 64<<10))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(endless.Close)
	s := stepcatest.Start(t, "")
	_, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: endless.URL, RootFingerprint: s.RootFingerprint,
		Provisioner: s.Provisioner, PasswordFile: s.PasswordFile})
	if !errors.Is(err, ca.ErrInvalidRequest) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("New against an endless answer: %v, want ca.ErrInvalidRequest saying the answer is too large", err)
	}
}
