package bundle_test

import (
	"crypto/x509"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/internal/testutil"
)

func TestStoreNotifiesOnlyOnChange(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	a, b := testutil.NewCA(t, nil).Cert, testutil.NewCA(t, nil).Cert
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
