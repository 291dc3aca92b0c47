package clusterspiffeid_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sworn-id/sworn/agent/clusterspiffeid"
)

var opts = clusterspiffeid.Options{TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"), ClusterName: "c1", ClusterDomain: "cluster.local", JWTTTL: 5 * time.Minute}

const nsSA = "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"

func object(spec clusterspiffeid.Spec) *clusterspiffeid.ClusterSPIFFEID {
	return &clusterspiffeid.ClusterSPIFFEID{ObjectMeta: metav1.ObjectMeta{Name: "obj", UID: "u1"}, Spec: spec}
}

func TestParseRefusesWithTheField(t *testing.T) {
	tests := []struct {
		name string
		spec clusterspiffeid.Spec
		want string
	}{
		{name: "no template", spec: clusterspiffeid.Spec{}, want: "spec.spiffeIDTemplate: empty; give a template"},
		{name: "template does not parse", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://{{ .TrustDomain }/x"}, want: "spec.spiffeIDTemplate: template:"},
		{name: "another trust domain for every pod", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://evil.org/ns/{{ .PodMeta.Namespace }}"}, want: `spec.spiffeIDTemplate: renders IDs in trust domain "evil.org"`},
		{name: "trust domain from cluster name", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://{{ .ClusterName }}.org/x"}, want: `trust domain "c1.org"`},
		{name: "dns template does not parse", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, DNSNameTemplates: []string{"ok", "{{ .PodMeta.Name"}}, want: "spec.dnsNameTemplates[1]:"},
		{name: "selector template does not parse", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, WorkloadSelectorTemplates: []string{"{{"}}, want: "spec.workloadSelectorTemplates[0]:"},
		{name: "bad namespace selector", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near"}}}}, want: "spec.namespaceSelector:"},
		{name: "bad pod selector", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "not valid!"}}}, want: "spec.podSelector:"},
		{name: "ttl too short", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, TTL: metav1.Duration{Duration: 10 * time.Second}}, want: "spec.ttl: 10s is out of range"},
		{name: "ttl too long", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, TTL: metav1.Duration{Duration: 100 * time.Hour}}, want: "spec.ttl: 100h0m0s is out of range"},
		{name: "jwt ttl below the agent's", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, JWTTTL: metav1.Duration{Duration: time.Minute}}, want: "spec.jwtTtl: 1m0s is shorter than this agent's JWT-SVID lifetime (svid.jwt_ttl 5m0s)"},
		{name: "negative jwt ttl", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, JWTTTL: metav1.Duration{Duration: -time.Hour}}, want: "spec.jwtTtl:"},
		{name: "bad federated trust domain", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, FederatesWith: []string{"ok.org", "Not A TD"}}, want: `spec.federatesWith[1]: "Not A TD"`},
		{name: "federates with itself", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, FederatesWith: []string{"example.org"}}, want: "spec.federatesWith[0]: \"example.org\": a trust domain does not federate with itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := clusterspiffeid.Parse(object(tt.spec), opts)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseAcceptsSPIREsObjects(t *testing.T) {
	tests := []struct {
		name        string
		spec        clusterspiffeid.Spec
		unsupported string
	}{
		{name: "SPIRE's default", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA}},
		{name: "jwt ttl at or above the agent's", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, JWTTTL: metav1.Duration{Duration: 5 * time.Minute}}},
		{name: "trust domain from pod data is checked per pod", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ index .PodMeta.Labels "td" }}/x`}},
		{name: "SPIRE-only fields", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, Admin: true, Downstream: true, AutoPopulateDNSNames: true}, unsupported: "spec.admin spec.autoPopulateDNSNames spec.downstream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := clusterspiffeid.Parse(object(tt.spec), opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(p.Unsupported, " "); got != tt.unsupported {
				t.Fatalf("Unsupported = %q, want %q", got, tt.unsupported)
			}
		})
	}
}

func TestSelectsByNamespaceAndPodLabels(t *testing.T) {
	p, err := clusterspiffeid.Parse(object(clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		PodSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}},
	}), opts)
	if err != nil {
		t.Fatal(err)
	}
	ns := func(env string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"env": env}}}
	}
	pod := func(labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels}}
	}
	tests := []struct {
		name string
		ns   *corev1.Namespace
		pod  *corev1.Pod
		want bool
	}{
		{name: "both match", ns: ns("prod"), pod: pod(map[string]string{"app": "x"}), want: true},
		{name: "namespace does not", ns: ns("dev"), pod: pod(map[string]string{"app": "x"})},
		{name: "pod does not", ns: ns("prod"), pod: pod(map[string]string{"other": "x"})},
		{name: "no labels at all", ns: &corev1.Namespace{}, pod: pod(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Selects(tt.ns, tt.pod); got != tt.want {
				t.Fatalf("Selects = %v, want %v", got, tt.want)
			}
		})
	}
}
