package clusterspiffeid

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/registry"
)

// data is what templates see, named as in SPIRE's controller manager;
// the objects are plain values (see plain).
type data struct {
	TrustDomain   string
	ClusterName   string
	ClusterDomain string
	PodMeta       any
	PodSpec       any
	NodeMeta      any
	NodeSpec      any
}

// Target is a pod on a node as templates see it, built once per pod for
// every object rendered for it.
type Target struct {
	namespace, name                      string
	uid                                  types.UID
	podMeta, podSpec, nodeMeta, nodeSpec any
}

// NewTarget takes what templates may read of pod and node. The pod's UID,
// which the rule is bound to, is taken here, before any template runs.
func NewTarget(pod *corev1.Pod, node *corev1.Node) *Target {
	return newTarget(pod, node)
}

func newTarget(pod *corev1.Pod, node *corev1.Node) *Target {
	t := &Target{namespace: pod.Namespace, name: pod.Name, uid: pod.UID}
	t.podMeta, t.podSpec = podData(pod)
	t.nodeMeta, t.nodeSpec = nodeData(node)
	return t
}

func (p *Parsed) data(t *Target) *data {
	return &data{TrustDomain: p.opts.TrustDomain.Name(), ClusterName: p.opts.ClusterName, ClusterDomain: p.opts.ClusterDomain,
		PodMeta: t.podMeta, PodSpec: t.podSpec, NodeMeta: t.nodeMeta, NodeSpec: t.nodeSpec}
}

// maxRendered bounds what one template may write: a SPIFFE ID is at most
// 2048 bytes and a DNS name 253, so more is an error, not memory spent on
// a template that ranges over everything.
const maxRendered = 4096

var errTooLong = fmt.Errorf("renders more than %d bytes", maxRendered)

type limitedBuilder struct{ strings.Builder }

func (b *limitedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxRendered {
		return 0, errTooLong
	}
	return b.Builder.Write(p)
}

func execute(t *template.Template, d *data) (string, error) {
	var b limitedBuilder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Selects reports whether the object applies to pod in namespace ns.
func (p *Parsed) Selects(ns *corev1.Namespace, pod *corev1.Pod) bool {
	return p.nsSel.Matches(labelsOf(ns.Labels)) && p.podSel.Matches(labelsOf(pod.Labels))
}

type labelsOf map[string]string

func (l labelsOf) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelsOf) Get(k string) string            { return l[k] }
func (l labelsOf) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

// Render makes the rule the object gives pod on node: the pod's UID as a
// selector (plus any workloadSelectorTemplates), the rendered SPIFFE ID,
// DNS names, TTL, hint and federated trust domains.
func (p *Parsed) Render(pod *corev1.Pod, node *corev1.Node, defaultTTL time.Duration) (registry.Compiled, error) {
	return p.RenderFor(newTarget(pod, node), defaultTTL)
}

// RenderFor is Render for a Target.
func (p *Parsed) RenderFor(t *Target, defaultTTL time.Duration) (registry.Compiled, error) {
	d := p.data(t)
	rule := registry.Rule{TTL: p.TTL, Hint: p.Hint, FederatesWith: p.Federates}
	id, err := p.renderID(d)
	if err != nil {
		return registry.Compiled{}, err
	}
	rule.SPIFFEID = id.String()
	uid, err := attest.ParseSelector("k8s:pod-uid:" + string(t.uid))
	if err != nil || t.uid == "" {
		return registry.Compiled{}, fmt.Errorf("pod %s/%s has no usable uid %q", t.namespace, t.name, t.uid)
	}
	rule.Selectors = []string{uid.String()}
	for i, t := range p.selectors {
		out, err := execute(t, d)
		if err == nil {
			err = checkSelector(out)
		}
		if err != nil {
			return registry.Compiled{}, fmt.Errorf("spec.workloadSelectorTemplates[%d]: %w", i, err)
		}
		rule.Selectors = append(rule.Selectors, out)
	}
	seen := map[string]bool{}
	for i, t := range p.dns {
		out, err := execute(t, d)
		if err != nil {
			return registry.Compiled{}, fmt.Errorf("spec.dnsNameTemplates[%d]: %w", i, err)
		}
		if !seen[out] {
			seen[out] = true
			rule.DNSNames = append(rule.DNSNames, out)
		}
	}
	c, err := registry.Compile(p.opts.TrustDomain, defaultTTL, rule)
	if err != nil {
		return registry.Compiled{}, err
	}
	return c, nil
}

// renderID renders the SPIFFE ID and holds it to the agent's trust domain.
func (p *Parsed) renderID(d *data) (spiffeid.ID, error) {
	out, err := execute(p.id, d)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("spec.spiffeIDTemplate: %w", err)
	}
	id, err := spiffeid.FromString(out)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("spec.spiffeIDTemplate: rendered %q: %w", truncate(out), err)
	}
	if id.TrustDomain() != p.opts.TrustDomain {
		return spiffeid.ID{}, fmt.Errorf("spec.spiffeIDTemplate: rendered %s, outside this agent's trust domain %q", id, p.opts.TrustDomain.Name())
	}
	return id, nil
}

// checkSelector holds a rendered workload selector to the selectors the
// attestors produce: one that names nothing sworn attests would make the
// rule unmatchable, which is better said than silently true.
func checkSelector(s string) error {
	sel, err := attest.ParseSelector(s)
	if err == nil {
		err = sel.Check()
	}
	if err != nil {
		return fmt.Errorf("rendered selector %q: %w", truncate(s), err)
	}
	if sel.Type != "k8s" && sel.Type != "unix" {
		return errors.New("rendered selector " + sel.String() + " is not a k8s: or unix: selector")
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
