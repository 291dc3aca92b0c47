package admin_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/agent/admin"
	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/internal/testutil"
)

// GetBundles answers, for the agent's own trust domain, the document its
// bundle endpoint serves (X.509 and JWT authorities, spiffe_sequence,
// spiffe_refresh_hint), and the federated domains' bundles alongside,
// sorted by name, all from one snapshot.
func TestGetBundlesIsWhatTheEndpointServes(t *testing.T) {
	own, other := spiffeid.RequireTrustDomainFromString("example.org"), spiffeid.RequireTrustDomainFromString("other.org")
	store := bundle.NewStore()
	// One JWT key: go-spiffe writes several in map order, and this test
	// compares bytes.
	store.SetJWTAuthorities(own, map[string]crypto.PublicKey{"k1": testutil.NewKey(t).Public()})
	store.SetX509Authorities(other, []*x509.Certificate{caOf(t, other)})
	store.SetX509Authorities(own, []*x509.Certificate{caOf(t, own)})
	const hint = 90 * time.Second

	s := admin.New(admin.Config{TrustDomain: own, Bundles: store, RefreshHint: hint})
	resp, err := s.GetBundles(context.Background(), &adminpb.GetBundlesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTrustDomain() != "example.org" || len(resp.GetBundles()) != 2 ||
		resp.GetBundles()[0].GetTrustDomain() != "example.org" || resp.GetBundles()[1].GetTrustDomain() != "other.org" {
		t.Fatalf("GetBundles = %v; want example.org's own, then other.org's", resp)
	}
	served := endpointDocument(t, own, store, hint)
	if got := string(resp.GetBundles()[0].GetSpiffeBundle()); got != served {
		t.Fatalf("GetBundles gives example.org's bundle as\n%s\nthe endpoint serves\n%s", got, served)
	}
	b, err := spiffebundle.Parse(own, resp.GetBundles()[0].GetSpiffeBundle())
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := b.SequenceNumber()
	gotHint, _ := b.RefreshHint()
	if seq != store.Snapshot().Seq || gotHint != hint || len(b.JWTAuthorities()) != 1 || len(b.X509Authorities()) != 1 {
		t.Fatalf("example.org's bundle: sequence %d (want %d), refresh hint %v (want %v), %d JWT and %d X.509 authorities (want 1 and 1)",
			seq, store.Snapshot().Seq, gotHint, hint, len(b.JWTAuthorities()), len(b.X509Authorities()))
	}
	fed, err := spiffebundle.Parse(other, resp.GetBundles()[1].GetSpiffeBundle())
	if err != nil {
		t.Fatal(err)
	}
	if fedSeq, _ := fed.SequenceNumber(); fedSeq != seq || len(fed.X509Authorities()) != 1 {
		t.Fatalf("other.org's bundle: sequence %d, %d X.509 authorities; want %d (one snapshot) and 1", fedSeq, len(fed.X509Authorities()), seq)
	}
}

// An admin server built without the store says so, rather than answering
// with no bundles, which would read as "the agent trusts nothing".
func TestGetBundlesWithoutAStoreIsUnimplemented(t *testing.T) {
	s := admin.New(admin.Config{})
	_, err := s.GetBundles(context.Background(), &adminpb.GetBundlesRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("GetBundles without a store: %v; want Unimplemented", err)
	}
}

func caOf(t *testing.T, td spiffeid.TrustDomain) *x509.Certificate {
	t.Helper()
	return testutil.NewCA(t, &x509.Certificate{URIs: []*url.URL{td.ID().URL()}}).Cert
}

// endpointDocument is what the bundle endpoint serves for td from store.
func endpointDocument(t *testing.T, td spiffeid.TrustDomain, store *bundle.Store, hint time.Duration) string {
	t.Helper()
	h, err := bundle.EndpointHandler(td, store, hint)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("endpoint answered %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}
