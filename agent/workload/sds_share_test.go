package workload

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"sync"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/internal/testutil"
)

// swapBundles serves a snapshot a test can replace.
type swapBundles struct {
	mu   sync.Mutex
	snap bundle.Snapshot
}

func (b *swapBundles) Snapshot() bundle.Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.snap
}
func (*swapBundles) Changed() <-chan struct{} { return nil }

// set makes the snapshot seq hold ca as example.org's only authority.
func (b *swapBundles) set(seq uint64, ca *testutil.Cert) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.snap = bundle.Snapshot{Seq: seq, Bundles: map[spiffeid.TrustDomain]*x509bundle.Bundle{
		sdsTD: x509bundle.FromX509Authorities(sdsTD, []*x509.Certificate{ca.Cert}),
	}}
}

var sdsTD = spiffeid.RequireTrustDomainFromString("example.org")

// sdsFixture is an SDS server over a fake clock and a replaceable bundle
// snapshot, and a CA that issues SVIDs as the cache hands them out.
type sdsFixture struct {
	d       *sdsServer
	clock   *clocktesting.FakeClock
	bundles *swapBundles
	ca      *testutil.Cert
}

func newSDSFixture(t testing.TB) *sdsFixture {
	t.Helper()
	f := &sdsFixture{clock: clocktesting.NewFakeClock(time.Now()), bundles: &swapBundles{}, ca: testutil.NewCA(t, nil)}
	f.bundles.set(1, f.ca)
	s := New(Config{TrustDomain: sdsTD, Bundles: f.bundles, Clock: f.clock}, nil)
	f.d = &sdsServer{s: s, names: SDSNames{}.withDefaults()}
	return f
}

// svid issues a new SVID for path, valid for ttl from the fake clock's now,
// as the cache's SVID of the entry for path.
func (f *sdsFixture) svid(t testing.TB, path string, ttl time.Duration) *cache.SVID {
	t.Helper()
	id := spiffeid.RequireFromPath(sdsTD, path)
	leaf := f.ca.Issue(t, &x509.Certificate{URIs: []*url.URL{id.URL()}, NotBefore: f.clock.Now().Add(-time.Minute), NotAfter: f.clock.Now().Add(ttl)})
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &cache.SVID{Entry: registry.Entry{ID: id, TTL: time.Hour}, ChainDER: leaf.Cert.Raw, KeyDER: keyDER, NotAfter: leaf.Cert.NotAfter}
}

// respond is what one stream holding svids is sent for names, as an
// Envoy 1.30.
func (f *sdsFixture) respond(t testing.TB, names []string, svids ...*cache.SVID) *discoveryv3.DiscoveryResponse {
	t.Helper()
	resp, err := f.d.response(&discoveryv3.DiscoveryRequest{Node: nodeFor(30, false), ResourceNames: names}, sdsView{svids: svids}, "1")
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A thousand streams holding the same SVID and bundle snapshot are sent
// the very same encoded secrets (built once, not once per stream), and a
// new SVID or snapshot is built anew.
func TestSDSStreamsShareBuiltSecrets(t *testing.T) {
	f := newSDSFixture(t)
	svid := f.svid(t, "/web", time.Hour)
	names := []string{"default", "spiffe://example.org/web", "ROOTCA", "ALL"}
	first := f.respond(t, names, svid)
	if len(first.GetResources()) != len(names) {
		t.Fatalf("%d secrets, want %d", len(first.GetResources()), len(names))
	}
	for range 1000 {
		resp := f.respond(t, names, svid)
		for i, r := range resp.GetResources() {
			if r != first.GetResources()[i] {
				t.Fatalf("secret %d was built again for another stream holding the same SVID and snapshot", i)
			}
		}
	}

	rotated := f.respond(t, names, f.svid(t, "/web", time.Hour))
	for i := range 2 {
		if rotated.GetResources()[i] == first.GetResources()[i] || bytes.Equal(rotated.GetResources()[i].GetValue(), first.GetResources()[i].GetValue()) {
			t.Fatalf("after a rotation secret %d is the old SVID's", i)
		}
	}
	f.bundles.set(2, testutil.NewCA(t, nil))
	changed := f.respond(t, names, svid)
	for i := 2; i < 4; i++ {
		if bytes.Equal(changed.GetResources()[i].GetValue(), first.GetResources()[i].GetValue()) {
			t.Fatalf("after a bundle change secret %d is the old snapshot's", i)
		}
	}
}

// keyOf returns the PKCS#8 DER of the key in the TLS certificate secret
// named name of resp.
func keyOf(t *testing.T, resp *discoveryv3.DiscoveryResponse, name string) []byte {
	t.Helper()
	for _, r := range resp.GetResources() {
		secret := &tlsv3.Secret{}
		if err := r.UnmarshalTo(secret); err != nil {
			t.Fatal(err)
		}
		if secret.GetName() == name {
			block, _ := pem.Decode(secret.GetTlsCertificate().GetPrivateKey().GetInlineBytes())
			if block == nil {
				t.Fatalf("secret %s holds no PEM key", name)
			}
			return block.Bytes
		}
	}
	t.Fatalf("no secret %s", name)
	return nil
}

// The attack on sharing: streams of two identities ask for the same name
// ("default") at once, before and after both rotate, and a late stream
// still holds the SVID from before the rotation. Each is sent its own SVID's
// key and never the other's, whatever order they are built in.
func TestSDSSharedSecretsNeverCrossIdentities(t *testing.T) {
	f := newSDSFixture(t)
	for round := range 3 {
		svids := []*cache.SVID{f.svid(t, "/web", time.Hour), f.svid(t, "/db", time.Hour)}
		if round == 2 {
			// Issued a minute earlier: what a stream that read its SVIDs
			// just before the rotation of round 1 would still hold.
			f.clock.Step(-time.Minute)
			svids[0] = f.svid(t, "/web", time.Hour)
			f.clock.Step(time.Minute)
		}
		resps := make([]*discoveryv3.DiscoveryResponse, 200)
		var wg sync.WaitGroup
		for i := range resps {
			wg.Go(func() {
				resps[i], _ = f.d.response(&discoveryv3.DiscoveryRequest{Node: nodeFor(30, false), ResourceNames: []string{"default"}}, sdsView{svids: svids[i%2 : i%2+1]}, "1")
			})
		}
		wg.Wait()
		for i, resp := range resps {
			if svid := svids[i%2]; !bytes.Equal(keyOf(t, resp, "default"), svid.KeyDER) {
				t.Fatalf("round %d: a stream of %s was sent another SVID's key", round, svid.Entry.ID)
			}
		}
		f.clock.Step(time.Second)
	}
}
