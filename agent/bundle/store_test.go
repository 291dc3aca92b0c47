package bundle_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/bundle"
)

func TestStoreNotifiesOnlyOnChange(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	a, b := testCert(t), testCert(t)
	s := bundle.NewStore()

	steps := []struct {
		name    string
		do      func() bool
		changed bool
		count   int
	}{
		{name: "first bundle", do: func() bool { return s.SetX509Authorities(td, []*x509.Certificate{a}) }, changed: true, count: 1},
		{name: "same bundle again", do: func() bool { return s.SetX509Authorities(td, []*x509.Certificate{a}) }, changed: false, count: 1},
		{name: "second CA added", do: func() bool { return s.SetX509Authorities(td, []*x509.Certificate{a, b}) }, changed: true, count: 2},
		{name: "removed", do: func() bool { return s.Remove(td) }, changed: true, count: 0},
		{name: "removed again", do: func() bool { return s.Remove(td) }, changed: false, count: 0},
	}
	for _, step := range steps {
		before := s.Snapshot()
		ch := s.Changed()
		if got := step.do(); got != step.changed {
			t.Fatalf("%s: reported change %v, want %v", step.name, got, step.changed)
		}
		closed := false
		select {
		case <-ch:
			closed = true
		default:
		}
		after := s.Snapshot()
		if closed != step.changed || (after.Seq != before.Seq) != step.changed {
			t.Fatalf("%s: notified=%v seq %d->%d, want change=%v", step.name, closed, before.Seq, after.Seq, step.changed)
		}
		got := 0
		if bundle, ok := after.Bundles[td]; ok {
			got = len(bundle.X509Authorities())
		}
		if got != step.count {
			t.Fatalf("%s: %d authorities, want %d", step.name, got, step.count)
		}
	}
}

func testCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}
