package stepca_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/stepca"
	"github.com/sworn-id/sworn/ca/stepca/stepcatest"
	"github.com/sworn-id/sworn/internal/testutil"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func newCA(t *testing.T, s *stepcatest.Server, fingerprint bool) *stepca.CA {
	t.Helper()
	cfg := stepca.Config{TrustDomain: td, URL: s.URL, Provisioner: s.Provisioner, PasswordFile: s.PasswordFile}
	if fingerprint {
		cfg.RootFingerprint = s.RootFingerprint
	} else {
		cfg.RootFile = s.RootFile
	}
	c, err := stepca.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sign(c *stepca.CA, path string, dns ...string) ([]*x509.Certificate, error) {
	key, _ := ca.KeyECP256.Generate()
	return c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: spiffeid.RequireFromPath(td, path), Key: key, TTL: time.Hour, DNSNames: dns})
}

func TestStepCASignsProfileConformingSVIDs(t *testing.T) {
	s := stepcatest.Start(t, "")
	for _, pinned := range []bool{true, false} {
		c := newCA(t, s, pinned)
		chain, err := sign(c, "/web", "web.example.org")
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, c.Authorities().X509))
		if err != nil || id.Path() != "/web" {
			t.Fatalf("go-spiffe: %v, %v", id, err)
		}
		if len(chain) != 2 || chain[0].DNSNames[0] != "web.example.org" || chain[0].Subject.CommonName != "" {
			t.Fatalf("chain %d, DNS %v, CN %q", len(chain), chain[0].DNSNames, chain[0].Subject.CommonName)
		}
		if got := chain[0].NotAfter.Sub(chain[0].NotBefore); got > time.Hour+2*time.Minute {
			t.Fatalf("lifetime %v, want the requested 1h", got)
		}
	}
}

func TestStepCAWithoutTheSPIFFETemplateYieldsNoSVID(t *testing.T) {
	// step-ca's default-like leaf: no basicConstraints.
	tpl := filepath.Join(t.TempDir(), "plain.tpl")
	if err := os.WriteFile(tpl, []byte(`{"subject": {{ toJson .Subject }}, "sans": {{ toJson .SANs }}, "keyUsage": ["digitalSignature"], "extKeyUsage": ["serverAuth", "clientAuth"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := stepcatest.Start(t, tpl)
	_, err := sign(newCA(t, s, true), "/web")
	if !errors.Is(err, ca.ErrBadCertificate) || !strings.Contains(err.Error(), "basicConstraints") {
		t.Fatalf("sign with a template lacking basicConstraints: %v, want ErrBadCertificate", err)
	}
}

func TestStepCAStoppedThenRestarted(t *testing.T) {
	s := stepcatest.Start(t, "")
	var health []error
	c, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: s.URL, RootFingerprint: s.RootFingerprint,
		Provisioner: s.Provisioner, PasswordFile: s.PasswordFile, OnHealth: func(err error) { health = append(health, err) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign(c, "/web"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := sign(c, "/web"); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("sign with step-ca stopped: %v, want ErrUnavailable", err)
	}
	if health[len(health)-1] == nil {
		t.Fatal("the outage was not reported")
	}
	s.Start(t)
	if _, err := sign(c, "/web"); err != nil {
		t.Fatalf("sign after step-ca restarted: %v", err)
	}
	if health[len(health)-1] != nil {
		t.Fatal("recovery was not reported")
	}
}

// A token step-ca turns away (401: signed with a provisioner key it no
// longer holds, after the operator rotated it) is a refusal: the sign
// wraps ca.ErrRefused, neither an outage nor an invalid request, and
// OnHealth hears it (so the agent's /ready says the CA refused). The next
// sign loads the provisioner again, succeeds, and OnHealth hears nil.
func TestStepCARefusedTokenIsErrRefused(t *testing.T) {
	s := stepcatest.Start(t, "")
	health := &testutil.ErrorLog{}
	c, err := stepca.New(context.Background(), stepca.Config{TrustDomain: td, URL: s.URL, RootFile: s.RootFile,
		Provisioner: s.Provisioner, PasswordFile: s.PasswordFile, OnHealth: health.Add})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign(c, "/web"); err != nil {
		t.Fatal(err)
	}
	s.RotateProvisionerKey(t)
	before := health.Len()
	_, err = sign(c, "/web")
	if !errors.Is(err, ca.ErrRefused) || errors.Is(err, ca.ErrUnavailable) || errors.Is(err, ca.ErrInvalidRequest) ||
		!strings.Contains(err.Error(), "step-ca turned the agent's token away") {
		t.Fatalf("sign with a token of the old provisioner key: %v, want ca.ErrRefused only, saying step-ca turned the token away", err)
	}
	if got := health.Since(before); len(got) != 1 || !errors.Is(got[0], ca.ErrRefused) {
		t.Fatalf("OnHealth after the refusal heard %v, want one ca.ErrRefused", got)
	}
	if _, err := sign(c, "/web"); err != nil {
		t.Fatalf("sign after the refusal (provisioner loaded again): %v", err)
	}
	if got := health.Since(before); len(got) != 2 || got[1] != nil {
		t.Fatalf("OnHealth after the recovery heard %v, want the refusal then nil", got)
	}
}
