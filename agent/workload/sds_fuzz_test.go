package workload

import (
	"crypto/x509"
	"net/url"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sworn-id/sworn/agent/bundle"
	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/internal/testutil"
)

// fuzzBundles serves a fixed snapshot: the caller's own trust domain and a
// foreign one its identity does not federate with.
type fuzzBundles struct{ snap bundle.Snapshot }

func (b fuzzBundles) Snapshot() bundle.Snapshot { return b.snap }
func (fuzzBundles) Changed() <-chan struct{}    { return nil }

// FuzzSDSResponse feeds SDS request resource names (what any local process
// may send) to the response builder. Whatever is asked, it must not panic,
// must answer only with names that were asked for (or everything the
// caller holds for an empty list), never with a foreign trust domain the
// caller does not federate with, and must refuse with InvalidArgument
// anything it cannot serve.
func FuzzSDSResponse(f *testing.F) {
	own := spiffeid.RequireTrustDomainFromString("example.org")
	foreign := spiffeid.RequireTrustDomainFromString("other.org")
	ca := testutil.NewCA(f, nil)
	id := spiffeid.RequireFromPath(own, "/web")
	leaf := ca.Issue(f, &x509.Certificate{URIs: []*url.URL{id.URL()}})
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		f.Fatal(err)
	}
	svid := &cache.SVID{Entry: registry.Entry{ID: id}, ChainDER: leaf.Cert.Raw, KeyDER: keyDER}
	snap := bundle.Snapshot{Seq: 1, Bundles: map[spiffeid.TrustDomain]*x509bundle.Bundle{
		own:     x509bundle.FromX509Authorities(own, []*x509.Certificate{ca.Cert}),
		foreign: x509bundle.FromX509Authorities(foreign, []*x509.Certificate{testutil.NewCA(f, nil).Cert}),
	}}
	s := New(Config{TrustDomain: own, Bundles: fuzzBundles{snap}}, nil)
	d := &sdsServer{s: s, names: SDSNames{}.withDefaults()}
	view := sdsView{svids: []*cache.SVID{svid}}
	for _, seed := range []string{"", "default", "ROOTCA\nALL", "spiffe://example.org/web\nspiffe://example.org", "spiffe://other.org", "default\ndefault\n\n", "spiffe://example.org/other"} {
		f.Add(seed, uint32(30), false)
		f.Add(seed, uint32(17), true)
	}
	f.Fuzz(func(t *testing.T, names string, minor uint32, disable bool) {
		req := &discoveryv3.DiscoveryRequest{ResourceNames: strings.Split(names, "\n")}
		if names == "" {
			req.ResourceNames = nil
		}
		req.Node = nodeFor(minor, disable)
		resp, err := d.response(req, view, "1")
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("refused with %v, want InvalidArgument", err)
			}
			return
		}
		// Empty names are ignored, and a list of none asks for everything
		// (as SPIRE reads it).
		asked := map[string]bool{}
		for _, n := range req.ResourceNames {
			if n != "" {
				asked[n] = true
			}
		}
		for _, r := range resp.GetResources() {
			secret := &tlsv3.Secret{}
			if err := r.UnmarshalTo(secret); err != nil {
				t.Fatal(err)
			}
			name := secret.GetName()
			if name == foreign.IDString() || slices.Contains(validatorTrustDomains(t, secret), foreign.Name()) {
				t.Fatalf("served %s: a trust domain the caller does not federate with", name)
			}
			if len(asked) > 0 && !asked[name] {
				t.Fatalf("served %q, which was not asked for (%q)", name, req.ResourceNames)
			}
		}
	})
}

// validatorTrustDomains names the trust domains in secret's SPIFFE
// certificate validator, if it has one. (Matching the secret's text form
// would not do: protobuf varies its spacing from build to build.)
func validatorTrustDomains(t *testing.T, secret *tlsv3.Secret) []string {
	typed := secret.GetValidationContext().GetCustomValidatorConfig().GetTypedConfig()
	if typed == nil {
		return nil
	}
	cfg := &tlsv3.SPIFFECertValidatorConfig{}
	if err := typed.UnmarshalTo(cfg); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, td := range cfg.GetTrustDomains() {
		names = append(names, td.GetName())
	}
	return names
}

// nodeFor is an Envoy 1.<minor> node, with SPIFFE validation turned off if
// disable.
func nodeFor(minor uint32, disable bool) *corev3.Node {
	n := &corev3.Node{UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{
		UserAgentBuildVersion: &corev3.BuildVersion{Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: minor}},
	}}
	if disable {
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"disable_spiffe_cert_validation": structpb.NewBoolValue(true)}}
	}
	return n
}
