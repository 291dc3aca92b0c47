// Package envoy_test checks the Envoy examples: each is a valid Envoy
// bootstrap (go-control-plane's proto and its validation rules), and every
// secret it asks for over SDS is one sworn serves, from sworn's socket.
package envoy_test

import (
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// The typed configs the examples use, so their Any fields resolve.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/workload"
)

func TestExamplesAreBootstrapsAskingSwornForWhatItServes(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("mtls/*.yaml")
	files = append(files, more...)
	if len(files) != 3 {
		t.Fatalf("found %v, want sidecar.yaml and mtls/{frontend,backend}.yaml", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b := load(t, f)
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("not a valid Envoy bootstrap: %v", err)
			}
			checkSDSCluster(t, b)
			var names []string
			walk(t, b.ProtoReflect(), func(m proto.Message) {
				if s, ok := m.(*tlsv3.SdsSecretConfig); ok {
					names = append(names, s.GetName())
					if c := s.GetSdsConfig().GetApiConfigSource().GetGrpcServices(); len(c) != 1 || c[0].GetEnvoyGrpc().GetClusterName() != "sworn" {
						t.Errorf("secret %q is not asked of the sworn cluster", s.GetName())
					}
				}
			})
			if len(names) < 2 {
				t.Fatalf("asks for %v over SDS, want a certificate and a validation context", names)
			}
			for _, n := range names {
				if !served(n) {
					t.Errorf("asks for secret %q, which sworn does not serve", n)
				}
			}
		})
	}
}

// served reports whether sworn serves a secret of that name: its default
// names, or an SVID's SPIFFE ID or a trust domain's ID.
func served(name string) bool {
	switch name {
	case workload.DefaultSVIDName, workload.DefaultBundleName, workload.DefaultAllBundlesName:
		return true
	}
	if id, err := spiffeid.FromString(name); err == nil {
		return id.Path() != "" || name == id.TrustDomain().IDString()
	}
	return false
}

func load(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// checkSDSCluster requires a cluster "sworn" at sworn's default socket,
// speaking HTTP/2 (gRPC).
func checkSDSCluster(t *testing.T, b *bootstrapv3.Bootstrap) {
	t.Helper()
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != "sworn" {
			continue
		}
		ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
		if got := ep.GetAddress().GetPipe().GetPath(); got != config.DefaultSocketPath {
			t.Errorf("the sworn cluster is at %q, want sworn's socket %s", got, config.DefaultSocketPath)
		}
		if _, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
			t.Error("the sworn cluster does not speak HTTP/2, which gRPC needs")
		}
		return
	}
	t.Fatal("no cluster named sworn")
}

// walk calls f on every message in m, Any-packed ones unpacked.
func walk(t *testing.T, m protoreflect.Message, f func(proto.Message)) {
	t.Helper()
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("%s: %v", a.GetTypeUrl(), err)
		}
		walk(t, inner.ProtoReflect(), f)
		return
	}
	f(m.Interface())
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := 0; i < v.List().Len(); i++ {
				walk(t, v.List().Get(i).Message(), f)
			}
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walk(t, mv.Message(), f)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind:
			walk(t, v.Message(), f)
		}
		return true
	})
}
