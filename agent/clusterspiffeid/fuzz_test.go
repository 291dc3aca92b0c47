package clusterspiffeid_test

import (
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/clusterspiffeid"
)

// FuzzRender: whatever the template and the pod's labels and annotations
// (cluster admins write the one, anyone who may create a pod the others),
// Parse and Render never panic, and a rule that renders gives the pod, and
// only it, one SPIFFE ID in the agent's trust domain.
func FuzzRender(f *testing.F) {
	f.Add(nsSA, "orders", "x")
	f.Add(`spiffe://{{ index .PodMeta.Labels "app" }}/x`, "evil.org", "")
	f.Add(`spiffe://{{ .TrustDomain }}/{{ index .PodMeta.Annotations "a" }}`, "", "../admin")
	f.Add(`spiffe://{{ .TrustDomain }}/{{ range .PodSpec.Containers }}{{ .Name }}{{ end }}`, "", "")
	// ObjectMeta.Unmarshal would rebind the rule to another pod's UID.
	f.Add("spiffe://{{ .TrustDomain }}/x{{ if .PodMeta.Unmarshal (.PodMeta.CreationTimestamp.AppendFormat nil \"*\\x06victim\") }}{{ end }}", "orders", "")
	f.Fuzz(func(t *testing.T, tmpl, label, annotation string) {
		p, err := clusterspiffeid.Parse(object(clusterspiffeid.Spec{SPIFFEIDTemplate: tmpl, DNSNameTemplates: []string{`{{ index .PodMeta.Labels "app" }}.svc`}}), opts)
		if err != nil {
			return
		}
		pod := testPod()
		pod.Labels = map[string]string{"app": label}
		pod.Annotations = map[string]string{"a": annotation}
		rule, err := p.Render(pod, testNode(), time.Hour)
		if err != nil {
			return
		}
		if other := matched(t, rule, attest.Selector{Type: "k8s", Value: "pod-uid:other"}); len(other) != 0 {
			t.Fatalf("a rule for pod 0f1e matched another pod: %v", other)
		}
		entries := matched(t, rule, podUID)
		if len(entries) != 1 {
			t.Fatalf("entries = %v, want one", entries)
		}
		if entries[0].ID.TrustDomain() != opts.TrustDomain {
			t.Fatalf("rendered %s, outside %s", entries[0].ID, opts.TrustDomain)
		}
	})
}
