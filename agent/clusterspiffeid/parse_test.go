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
	noCluster := opts
	noCluster.ClusterName = ""
	tests := []struct {
		name string
		spec clusterspiffeid.Spec
		want string
		opts *clusterspiffeid.Options // default: no cluster name
	}{
		{name: "no template", spec: clusterspiffeid.Spec{}, want: "spec.spiffeIDTemplate: empty; give a template"},
		{name: "template does not parse", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://{{ .TrustDomain }/x"}, want: "spec.spiffeIDTemplate: template:"},
		{name: "another trust domain for every pod", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://evil.org/ns/{{ .PodMeta.Namespace }}"}, want: `spec.spiffeIDTemplate: renders IDs in trust domain "evil.org"`},
		{name: "trust domain from cluster name", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://{{ .ClusterName }}.org/x"}, want: `trust domain "c1.org"`, opts: &opts},
		{name: "dns template does not parse", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, DNSNameTemplates: []string{"ok", "{{ .PodMeta.Name"}}, want: "spec.dnsNameTemplates[1]:"},
		{name: "selector template does not parse", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, WorkloadSelectorTemplates: []string{"{{"}}, want: "spec.workloadSelectorTemplates[0]:"},
		{name: "bad namespace selector", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near"}}}}, want: "spec.namespaceSelector:"},
		{name: "bad pod selector", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "not valid!"}}}, want: "spec.podSelector:"},
		{name: "ttl too short", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, TTL: metav1.Duration{Duration: 10 * time.Second}}, want: "spec.ttl: 10s is shorter than sworn's shortest SVID lifetime 1m0s"},
		{name: "define", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `{{ define "x" }}{{ template "x" }}{{ end }}spiffe://{{ .TrustDomain }}/x`}, want: "spec.spiffeIDTemplate: define and block are not allowed"},
		{name: "template call", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/{{ template "spec.spiffeIDTemplate" }}`}, want: "calling templates is not allowed"},
		{name: "printf", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/{{ printf "%0999999999d" 1 }}`}, want: "function printf is not allowed"},
		{name: "print growing a variable", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `{{ $x := "a" }}{{ range .PodSpec.Containers }}{{ $x = print $x $x }}{{ end }}spiffe://{{ .TrustDomain }}/x`}, want: "function print is not allowed"},
		{name: "urlquery", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/{{ urlquery .PodMeta.Name }}`}, want: "function urlquery is not allowed"},
		{name: "range over a number", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `{{ range 20000000000 }}{{ end }}spiffe://{{ .TrustDomain }}/x`}, want: "only over a field of the data"},
		{name: "range over a variable number", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `{{ $n := 20000000000 }}{{ range $n }}{{ end }}spiffe://{{ .TrustDomain }}/x`}, want: "only over a field of the data"},
		{name: "range three deep", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `{{ range .PodSpec.Containers }}{{ range .Ports }}{{ range $.PodSpec.Volumes }}{{ end }}{{ end }}{{ end }}spiffe://{{ .TrustDomain }}/x`}, want: "range is nested more than 2 deep"},
		{name: "cluster name unset", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, DNSNameTemplates: []string{"{{ .PodMeta.Name }}.{{ $.ClusterName }}.example"}}, want: "spec.dnsNameTemplates[0]: uses .ClusterName, and this agent has no kubernetes.cluster_spiffeids.cluster_name"},
		{name: "jwt ttl below the agent's", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, JWTTTL: metav1.Duration{Duration: time.Minute}}, want: "spec.jwtTtl: 1m0s is shorter than this agent's JWT-SVID lifetime (svid.jwt_ttl 5m0s)"},
		{name: "negative jwt ttl", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, JWTTTL: metav1.Duration{Duration: -time.Hour}}, want: "spec.jwtTtl:"},
		{name: "bad federated trust domain", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, FederatesWith: []string{"ok.org", "Not A TD"}}, want: `spec.federatesWith[1]: "Not A TD"`},
		{name: "federates with itself", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, FederatesWith: []string{"example.org"}}, want: "spec.federatesWith[0]: \"example.org\": a trust domain does not federate with itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := noCluster
			if tt.opts != nil {
				o = *tt.opts
			}
			_, err := clusterspiffeid.Parse(object(tt.spec), o)
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
		notes       string
	}{
		{name: "SPIRE's default", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA}},
		{name: "jwt ttl at or above the agent's", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, JWTTTL: metav1.Duration{Duration: 5 * time.Minute}}},
		{name: "trust domain from pod data is checked per pod", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ index .PodMeta.Labels "td" }}/x`}},
		{name: "SPIRE-only fields", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, Admin: true, Downstream: true, AutoPopulateDNSNames: true}, unsupported: "spec.admin spec.autoPopulateDNSNames spec.downstream"},
		{name: "ttl above sworn's longest is cut", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, TTL: metav1.Duration{Duration: 100 * time.Hour}}, notes: "spec.ttl 100h0m0s is cut to sworn's longest SVID lifetime 72h0m0s"},
		{name: "the subset SPIRE's examples use", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/{{ with index .PodMeta.Labels "app" }}{{ . }}{{ else }}{{ .PodSpec.ServiceAccountName }}{{ end }}{{ range $i, $c := .PodSpec.Containers }}{{ if eq $i 0 }}/{{ $c.Name }}{{ end }}{{ end }}`}},
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
			if got := strings.Join(p.Notes, "; "); got != tt.notes {
				t.Fatalf("Notes = %q, want %q", got, tt.notes)
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
