package clusterspiffeid_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/clusterspiffeid"
	"github.com/sworn-id/sworn/agent/registry"
)

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "api-0", Namespace: "prod", UID: "0f1e", Labels: map[string]string{"app": "orders", "td": "evil.org"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "api", NodeName: "node-a", Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
}

func testNode() *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{"zone": "z1"}}, Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24"}}
}

// matched is what a workload with sel gets from rule alone.
func matched(t *testing.T, rule registry.Compiled, sel ...attest.Selector) []registry.Entry {
	t.Helper()
	r := registry.New(opts.TrustDomain, nil)
	r.SetCluster([]registry.Compiled{rule})
	entries, errs := r.Match(attest.NewSet(sel...))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return entries
}

var podUID = attest.Selector{Type: "k8s", Value: "pod-uid:0f1e"}

func TestRenderGivesThePodItsIdentity(t *testing.T) {
	p, err := clusterspiffeid.Parse(object(clusterspiffeid.Spec{
		SPIFFEIDTemplate:          "spiffe://{{ .TrustDomain }}/{{ .ClusterName }}/{{ .NodeMeta.Name }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
		DNSNameTemplates:          []string{"{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc.{{ .ClusterDomain }}", "{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc.{{ .ClusterDomain }}", `{{ index .NodeMeta.Labels "zone" }}.example.org`},
		WorkloadSelectorTemplates: []string{"k8s:container-name:{{ (index .PodSpec.Containers 0).Name }}"},
		TTL:                       metav1.Duration{Duration: 30 * time.Minute},
		FederatesWith:             []string{"partner.org"},
		Hint:                      "internal",
	}), opts)
	if err != nil {
		t.Fatal(err)
	}
	rule, err := p.Render(testPod(), testNode(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := matched(t, rule, podUID); len(got) != 0 {
		t.Fatalf("matched without the rendered workload selector: %v", got)
	}
	if got := matched(t, rule, attest.Selector{Type: "k8s", Value: "pod-uid:other"}, attest.Selector{Type: "k8s", Value: "container-name:app"}); len(got) != 0 {
		t.Fatalf("matched another pod: %v", got)
	}
	got := matched(t, rule, podUID, attest.Selector{Type: "k8s", Value: "container-name:app"})
	if len(got) != 1 {
		t.Fatalf("entries = %v, want one", got)
	}
	e := got[0]
	want := "spiffe://example.org/c1/node-a/ns/prod/sa/api ttl=30m0s dns=[api-0.prod.svc.cluster.local z1.example.org] hint=internal fed=[partner.org]"
	if s := fmt.Sprintf("%s ttl=%v dns=%v hint=%s fed=%v", e.ID, e.TTL, e.DNSNames, e.Hint, e.FederatesWith); s != want {
		t.Fatalf("entry\n got %s\nwant %s", s, want)
	}
}

// TestRenderRefusesWhatPodDataMakesInvalid: pod labels and annotations
// are written by whoever may create pods, so what they render is held to
// the trust domain and to the SPIFFE ID, DNS name and selector grammars.
func TestRenderRefusesWhatPodDataMakesInvalid(t *testing.T) {
	tests := []struct {
		name string
		spec clusterspiffeid.Spec
		pod  func(*corev1.Pod)
		want string
	}{
		{name: "trust domain from a label", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ index .PodMeta.Labels "td" }}/x`}, want: "outside this agent's trust domain"},
		{name: "dot segments from an annotation", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/{{ index .PodMeta.Annotations "p" }}`},
			pod: func(p *corev1.Pod) { p.Annotations = map[string]string{"p": "a/../../admin"} }, want: "spec.spiffeIDTemplate: rendered"},
		{name: "missing label", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/{{ .PodMeta.Labels.missing }}`}, want: "<no value>"},
		{name: "empty segment", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/ns/{{ index .PodMeta.Labels "none" }}/x`}, want: "spec.spiffeIDTemplate: rendered"},
		{name: "bad dns name", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, DNSNameTemplates: []string{`{{ index .PodMeta.Annotations "dns" }}`}},
			pod: func(p *corev1.Pod) { p.Annotations = map[string]string{"dns": "a b.example.org"} }, want: "dns_names[0]"},
		{name: "selector of an unknown type", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, WorkloadSelectorTemplates: []string{"docker:label:x"}}, want: "spec.workloadSelectorTemplates[0]:"},
		{name: "selector that is not one", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA, WorkloadSelectorTemplates: []string{`{{ .PodMeta.Name }}`}}, want: "spec.workloadSelectorTemplates[0]:"},
		{name: "template that writes without end", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/{{ range .PodSpec.Containers }}{{ .Image }}{{ end }}`},
			pod: func(p *corev1.Pod) {
				for i := range 200 {
					p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprint(i), Image: strings.Repeat("x", 64)})
				}
			}, want: "renders more than 4096 bytes"},
		{name: "template calling a setter", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `spiffe://{{ .TrustDomain }}/{{ .PodMeta.SetName "admin" }}x`}, want: "spec.spiffeIDTemplate:"},
		// ObjectMeta.Unmarshal on the pod being rendered would rewrite its
		// UID and so bind the rule to another pod: the data have no methods.
		{name: "template rewriting the pod's uid", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://{{ .TrustDomain }}/x{{ if .PodMeta.Unmarshal (.PodMeta.CreationTimestamp.AppendFormat nil \"*\\x06victim\") }}{{ end }}"}, want: "spec.spiffeIDTemplate:"},
		{name: "number from the pod ranged over", spec: clusterspiffeid.Spec{SPIFFEIDTemplate: `{{ range .PodSpec.TerminationGracePeriodSeconds }}{{ end }}spiffe://{{ .TrustDomain }}/x`},
			pod: func(p *corev1.Pod) { n := int64(1e13); p.Spec.TerminationGracePeriodSeconds = &n }, want: "range can't iterate over 10000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := clusterspiffeid.Parse(object(tt.spec), opts)
			if err != nil {
				t.Fatal(err)
			}
			pod := testPod()
			if tt.pod != nil {
				tt.pod(pod)
			}
			before := pod.DeepCopy()
			_, err = p.Render(pod, testNode(), time.Hour)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render = %v, want an error with %q", err, tt.want)
			}
			if pod.Name != before.Name || len(pod.Labels) != len(before.Labels) {
				t.Fatalf("rendering changed the watched pod: %v", pod.ObjectMeta)
			}
		})
	}
}

// BenchmarkRender is one object rendered for one pod: a node's reconcile
// costs objects × pods of these.
func BenchmarkRender(b *testing.B) {
	p, err := clusterspiffeid.Parse(object(clusterspiffeid.Spec{SPIFFEIDTemplate: nsSA,
		DNSNameTemplates: []string{"{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc"}}), opts)
	if err != nil {
		b.Fatal(err)
	}
	pod, node := testPod(), testNode()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Render(pod, node, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTemplatesSeePlainData: field names are Go's, as in SPIRE's
// templates; numbers and times are strings; managedFields and status are
// not there.
func TestTemplatesSeePlainData(t *testing.T) {
	pod := testPod()
	n := int64(30)
	pod.Spec.TerminationGracePeriodSeconds = &n
	pod.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	pod.Status.PodIP = "10.0.0.9"
	pod.CreationTimestamp = metav1.NewTime(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	p, err := clusterspiffeid.Parse(object(clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://{{ .TrustDomain }}/{{ .PodSpec.TerminationGracePeriodSeconds }}/{{ len .PodMeta.ManagedFields }}{{ .PodMeta.Status }}",
		DNSNameTemplates: []string{"t{{ slice .PodMeta.CreationTimestamp 0 4 }}.{{ .NodeSpec.PodCIDR | len }}.example"}}), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Render(pod, testNode(), time.Hour)
	if err == nil || !strings.Contains(err.Error(), "len of nil") && !strings.Contains(err.Error(), "len of untyped nil") && !strings.Contains(err.Error(), "error calling len") {
		t.Fatalf("Render = %v, want len of the missing managedFields to fail", err)
	}
	p, err = clusterspiffeid.Parse(object(clusterspiffeid.Spec{SPIFFEIDTemplate: "spiffe://{{ .TrustDomain }}/{{ .PodSpec.TerminationGracePeriodSeconds }}",
		DNSNameTemplates: []string{"t{{ slice .PodMeta.CreationTimestamp 0 4 }}.{{ .NodeSpec.PodCIDR }}.example"}}), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Render(pod, testNode(), time.Hour)
	if err == nil || !strings.Contains(err.Error(), `"t2026.10.0.0.0/24.example"`) {
		t.Fatalf("Render = %v, want the DNS name t2026.10.0.0.0/24.example refused (so the data were rendered as strings)", err)
	}
	rule, err := p.Render(pod, &corev1.Node{}, time.Hour)
	if err == nil {
		t.Fatalf("Render with an empty node CIDR = %v", rule)
	}
}
