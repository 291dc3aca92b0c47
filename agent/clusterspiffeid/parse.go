package clusterspiffeid

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sworn-id/sworn/agent/registry"
)

// Options are what an object is checked against: the agent's own settings.
type Options struct {
	TrustDomain   spiffeid.TrustDomain
	ClusterName   string
	ClusterDomain string
	// JWTTTL is the lifetime of the agent's JWT-SVIDs (svid.jwt_ttl).
	JWTTTL time.Duration
}

// Parsed is a validated object, ready to render for pods.
type Parsed struct {
	Name      string
	UID       string
	Created   time.Time
	Fallback  bool
	Hint      string
	TTL       time.Duration // 0: the agent's default
	Federates []string

	nsSel, podSel labels.Selector
	id            *template.Template
	dns           []*template.Template
	selectors     []*template.Template
	opts          Options

	// Unsupported names the fields set on the object that sworn does not
	// honour; the object is in force without them.
	Unsupported []string
	// Notes say how sworn reads a field differently from what it says
	// (a ttl cut to sworn's longest).
	Notes []string
}

// Parse validates o for an agent with opts. The error names the field.
func Parse(o *ClusterSPIFFEID, opts Options) (*Parsed, error) {
	s := &o.Spec
	p := &Parsed{Name: o.Name, UID: string(o.UID), Created: o.CreationTimestamp.Time, Fallback: s.Fallback, Hint: s.Hint, opts: opts}
	var err error
	if s.SPIFFEIDTemplate == "" {
		return nil, errors.New("spec.spiffeIDTemplate: empty; give a template such as spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}")
	}
	if p.id, err = parseTemplate("spec.spiffeIDTemplate", s.SPIFFEIDTemplate); err != nil {
		return nil, err
	}
	if err := p.checkTrustDomain(); err != nil {
		return nil, err
	}
	for i, t := range s.DNSNameTemplates {
		tmpl, err := parseTemplate(fmt.Sprintf("spec.dnsNameTemplates[%d]", i), t)
		if err != nil {
			return nil, err
		}
		p.dns = append(p.dns, tmpl)
	}
	for i, t := range s.WorkloadSelectorTemplates {
		tmpl, err := parseTemplate(fmt.Sprintf("spec.workloadSelectorTemplates[%d]", i), t)
		if err != nil {
			return nil, err
		}
		p.selectors = append(p.selectors, tmpl)
	}
	if p.nsSel, err = labelSelector("spec.namespaceSelector", s.NamespaceSelector); err != nil {
		return nil, err
	}
	if p.podSel, err = labelSelector("spec.podSelector", s.PodSelector); err != nil {
		return nil, err
	}
	if err := p.checkLifetimes(s); err != nil {
		return nil, err
	}
	if err := p.checkClusterFields(); err != nil {
		return nil, err
	}
	for i, name := range s.FederatesWith {
		td, err := spiffeid.TrustDomainFromString(name)
		if err == nil && td == opts.TrustDomain {
			err = errors.New("a trust domain does not federate with itself")
		}
		if err != nil {
			return nil, fmt.Errorf("spec.federatesWith[%d]: %q: %w", i, name, err)
		}
		p.Federates = append(p.Federates, td.Name())
	}
	for name, set := range map[string]bool{"admin": s.Admin, "downstream": s.Downstream, "autoPopulateDNSNames": s.AutoPopulateDNSNames} {
		if set {
			p.Unsupported = append(p.Unsupported, "spec."+name)
		}
	}
	slices.Sort(p.Unsupported)
	return p, nil
}

// checkLifetimes takes ttl, an upper bound as in SPIRE (one above
// sworn's longest SVID lifetime is cut to it, and said), and refuses a
// jwtTtl shorter than the agent's: JWT-SVIDs have one lifetime per agent,
// and handing out tokens that outlive what the object allows would be
// worse than not serving it.
func (p *Parsed) checkLifetimes(s *Spec) error {
	switch ttl := s.TTL.Duration; {
	case ttl == 0:
	case ttl < registry.MinTTL:
		return fmt.Errorf("spec.ttl: %v is shorter than sworn's shortest SVID lifetime %v", ttl, registry.MinTTL)
	case ttl > registry.MaxTTL:
		p.TTL = registry.MaxTTL
		p.Notes = append(p.Notes, fmt.Sprintf("spec.ttl %v is cut to sworn's longest SVID lifetime %v", ttl, registry.MaxTTL))
	default:
		p.TTL = ttl
	}
	if jwt := s.JWTTTL.Duration; jwt != 0 && jwt < p.opts.JWTTTL {
		return fmt.Errorf("spec.jwtTtl: %v is shorter than this agent's JWT-SVID lifetime (svid.jwt_ttl %v), and sworn gives every JWT-SVID of a node the same lifetime; remove jwtTtl or lower svid.jwt_ttl to at most %v", jwt, p.opts.JWTTTL, jwt)
	}
	if s.JWTTTL.Duration < 0 {
		return fmt.Errorf("spec.jwtTtl: %v is negative", s.JWTTTL.Duration)
	}
	return nil
}

// checkTrustDomain renders the ID template with no pod: when even that
// names a trust domain, it is the one every pod would get, and one other
// than the agent's refuses the whole object now rather than every pod
// later. A trust domain taken from pod data is checked per pod.
func (p *Parsed) checkTrustDomain() error {
	probe := p.data(newTarget(&corev1.Pod{}, &corev1.Node{}))
	out, err := execute(p.id, probe)
	if err != nil {
		return nil // depends on pod data; checked per pod
	}
	u, err := url.Parse(out)
	if err != nil || u.Scheme != "spiffe" || u.Host == "" || strings.Contains(u.Host, "<") {
		return nil
	}
	if u.Host != p.opts.TrustDomain.Name() {
		return fmt.Errorf("spec.spiffeIDTemplate: renders IDs in trust domain %q; this agent issues only in %q (write spiffe://{{ .TrustDomain }}/...)", u.Host, p.opts.TrustDomain.Name())
	}
	return nil
}

// labelSelector converts a label selector; nil selects everything, as in
// SPIRE.
func labelSelector(field string, ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return sel, nil
}

// checkClusterFields refuses a template that reads .ClusterName or
// .ClusterDomain while the agent has none configured: every pod would
// render an empty segment or a name ending in a dot and lose the identity,
// while the object looked accepted.
func (p *Parsed) checkClusterFields() error {
	all := append([]*template.Template{p.id}, append(p.dns, p.selectors...)...)
	for _, f := range []struct{ name, value, key string }{
		{"ClusterName", p.opts.ClusterName, "cluster_name"},
		{"ClusterDomain", p.opts.ClusterDomain, "cluster_domain"},
	} {
		if f.value != "" {
			continue
		}
		for _, t := range all {
			if usesField(t.Tree.Root, f.name) {
				return fmt.Errorf("%s: uses .%s, and this agent has no kubernetes.cluster_spiffeids.%s (the Helm value kubernetes.clusterSPIFFEIDs.%s)", t.Name(), f.name, f.key, lowerFirst(f.name))
			}
		}
	}
	return nil
}

func lowerFirst(s string) string { return strings.ToLower(s[:1]) + s[1:] }
