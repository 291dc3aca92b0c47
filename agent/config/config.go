package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/agent/workload"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/ca/stepca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/internal/field"
)

// Defaults.
const (
	DefaultSocketPath      = "/run/sworn/workload.sock"
	DefaultAdminSocketPath = "/run/sworn/admin.sock"
	DefaultDataDir         = "/var/lib/sworn"
	DefaultHealthAddr      = "127.0.0.1:8088"
	DefaultSVIDTTL         = time.Hour
)

// Config is the agent's configuration file.
type Config struct {
	TrustDomain     string     `yaml:"trust_domain"`
	SocketPath      string     `yaml:"socket_path"`
	AdminSocketPath string     `yaml:"admin_socket_path"`
	AdminUID        *uint32    `yaml:"admin_uid"`
	DataDir         string     `yaml:"data_dir"`
	HealthAddr      string     `yaml:"health_addr"`
	Log             Log        `yaml:"log"`
	Debug           Debug      `yaml:"debug"`
	SVID            SVID       `yaml:"svid"`
	Rotation        Rotation   `yaml:"rotation"`
	CA              CA         `yaml:"ca"`
	Kubernetes      Kubernetes `yaml:"kubernetes"`
	Federation      Federation `yaml:"federation"`
	Limits          Limits     `yaml:"limits"`
	OIDC            OIDC       `yaml:"oidc"`
	SDS             SDS        `yaml:"sds"`
	Rules           []Rule     `yaml:"rules"`

	// SocketPrivate says the socket's directory is private to the agent's
	// uid on purpose (sworn agent --dev as a non-root user), so the agent
	// does not warn that other users cannot reach it. Not in the file.
	SocketPrivate bool `yaml:"-"`

	// warnings are what Parse found legal but almost surely unmeant, with
	// file and line.
	warnings []string
}

// Federation configures trust across trust domains.
type Federation struct {
	BundleEndpoint BundleEndpoint `yaml:"bundle_endpoint"`
	TrustDomains   []FederatedTD  `yaml:"trust_domains"`
}

// BundleEndpoint serves this trust domain's bundle to federated ones.
type BundleEndpoint struct {
	Listen   string `yaml:"listen"`  // empty: no endpoint
	Profile  string `yaml:"profile"` // https_spiffe (default) or https_web
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// RefreshHint tells fetchers how often to come back; default 5m.
	RefreshHint time.Duration `yaml:"refresh_hint"`
}

// FederatedTD is a foreign trust domain whose bundle is fetched.
type FederatedTD struct {
	TrustDomain      string `yaml:"trust_domain"`
	URL              string `yaml:"url"`
	Profile          string `yaml:"profile"` // https_spiffe (default) or https_web
	EndpointSPIFFEID string `yaml:"endpoint_spiffe_id"`
	// BundleFile bootstraps the bundle (PEM or SPIFFE bundle JSON); an
	// https_spiffe endpoint cannot be authenticated without it.
	BundleFile string `yaml:"bundle_file"`
	// CAFile verifies an https_web endpoint; empty means the system roots.
	CAFile string `yaml:"ca_file"`
}

// EndpointPath is the path of the SPIFFE ID the agent's own bundle
// endpoint presents (https_spiffe): spiffe://<trust-domain>/sworn/bundle-endpoint.
const EndpointPath = "/sworn/bundle-endpoint"

// Kubernetes configures pod attestation.
type Kubernetes struct {
	Enabled bool `yaml:"enabled"`
	// NodeName is this node; default $NODE_NAME (from the downward API).
	NodeName string `yaml:"node_name"`
	// PodSource is apiserver (a watch limited to this node) or kubelet.
	PodSource string `yaml:"pod_source"`
	// Kubeconfig, if set, is used instead of the in-cluster config.
	Kubeconfig string  `yaml:"kubeconfig"`
	Kubelet    Kubelet `yaml:"kubelet"`
	// DefaultIdentity gives every pod spiffe://<td>/ns/<ns>/sa/<sa>
	// without any rule; default true.
	DefaultIdentity *bool `yaml:"default_identity"`
	// ProcRoot is where the host's procfs is mounted; default /proc.
	ProcRoot string `yaml:"proc_root"`
	// ClusterSPIFFEIDs reads identities from the cluster's
	// ClusterSPIFFEID objects, as SPIRE's controller manager does.
	ClusterSPIFFEIDs ClusterSPIFFEIDs `yaml:"cluster_spiffeids"`
}

// ClusterSPIFFEIDs configures rules from ClusterSPIFFEID objects.
type ClusterSPIFFEIDs struct {
	Enabled bool `yaml:"enabled"`
	// ClassName picks the objects whose spec.className is this; objects
	// without one are read when ClassName is empty or WatchClassless is
	// set, so several installations can share a cluster.
	ClassName      string `yaml:"class_name"`
	WatchClassless bool   `yaml:"watch_classless"`
	// IgnoreNamespaces are regular expressions matched against the whole
	// namespace name (SPIRE's match anywhere in it); their pods get
	// nothing from objects. Default kube-system, kube-public and
	// spire-system, as SPIRE's; an empty list ignores none.
	IgnoreNamespaces []string `yaml:"ignore_namespaces"`
	// ClusterName and ClusterDomain are given to templates as
	// .ClusterName and .ClusterDomain (default cluster.local); an object
	// whose templates read an unset one is refused.
	ClusterName   string `yaml:"cluster_name"`
	ClusterDomain string `yaml:"cluster_domain"`
	// StatusDelay bounds the random wait before an agent writes an
	// object's status, so that one of many agents writes it; default 5s.
	StatusDelay *time.Duration `yaml:"status_delay"`
}

// IgnoredNamespaces compiles IgnoreNamespaces, each anchored to the
// whole name.
func (c ClusterSPIFFEIDs) IgnoredNamespaces() ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, expr := range c.IgnoreNamespaces {
		re, err := namespacePattern(expr)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

// namespacePattern compiles one ignore_namespaces entry as it is used:
// anchored to the whole name. expr is compiled alone first, so that
// parentheses in it cannot close the anchoring group.
func namespacePattern(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, err
	}
	return regexp.Compile("^(?:" + expr + ")$")
}

// Kubelet configures the kubelet pod source.
type Kubelet struct {
	URL       string `yaml:"url"` // default https://<node_name>:10250
	CAFile    string `yaml:"ca_file"`
	TokenFile string `yaml:"token_file"`
	// InsecureSkipVerify accepts any kubelet serving certificate; only for
	// clusters whose kubelets have self-signed certificates.
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify"`
	CacheTTL           time.Duration `yaml:"cache_ttl"`
}

// DefaultK8sRule is the identity every pod gets unless
// kubernetes.default_identity is false.
const DefaultK8sRule = "/ns/{k8s:ns}/sa/{k8s:sa}"

// WantsDefaultIdentity reports whether pods get the default identity.
func (k Kubernetes) WantsDefaultIdentity() bool {
	return k.Enabled && (k.DefaultIdentity == nil || *k.DefaultIdentity)
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Debug turns on what helps diagnose the agent and is off by default.
type Debug struct {
	// PProf serves Go's profiles at /debug/pprof/ on health_addr. They
	// show where the agent spends time and memory, never key material,
	// but a CPU profile costs CPU while it runs: keep health_addr on
	// loopback.
	PProf bool `yaml:"pprof"`
}

// SVID configures issued X.509-SVIDs.
type SVID struct {
	TTL         time.Duration `yaml:"ttl"`
	KeyType     ca.KeyType    `yaml:"key_type"`
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// JWTTTL is the lifetime of JWT-SVIDs.
	JWTTTL time.Duration `yaml:"jwt_ttl"`
	// Persist keeps issued SVIDs (key 0600) in the data dir so a restart
	// serves them instead of asking the CA again; default true.
	Persist *bool `yaml:"persist"`
}

// PersistSVIDs reports whether svid.persist is on.
func (s SVID) PersistSVIDs() bool { return s.Persist == nil || *s.Persist }

// SDS names the resources that stand for the caller's first SVID, its
// trust domain's bundle and every bundle it may see, in Envoy's Secret
// Discovery Service; unset, SPIRE's names (default, ROOTCA, ALL), so
// Envoy and Istio configurations written for SPIRE work unchanged.
type SDS struct {
	DefaultSVIDName       string `yaml:"default_svid_name"`
	DefaultBundleName     string `yaml:"default_bundle_name"`
	DefaultAllBundlesName string `yaml:"default_all_bundles_name"`
}

// Rotation bounds the load the agent puts on its CA.
type Rotation struct {
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxPerSecond caps CA calls; unset, it is
	// cache.DefaultRemoteMaxPerSecond for a shared CA and no cap for one
	// that signs in the agent.
	MaxPerSecond float64 `yaml:"max_per_second"`
	// ReissueSpread paces the re-issue of every SVID after a signing-CA
	// change, and the renewals owed when the CA answers again after an
	// outage: per 100 SVIDs, so 200 at 5s go over 10s; unset, it is
	// cache.DefaultReissueSpread; 0 sends them all at once.
	ReissueSpread *time.Duration `yaml:"reissue_spread"`
}

// Spread is rotation.reissue_spread with its default filled in.
func (r Rotation) Spread() time.Duration {
	if r.ReissueSpread == nil {
		return cache.DefaultReissueSpread
	}
	return *r.ReissueSpread
}

// CA chooses and configures the upstream CA. Each backend's section is
// that backend's own Config (as smallstep's CAS options are embedded in
// its file config), so its YAML keys, defaults and validation live once,
// in the backend; the agent sets the fields tagged yaml:"-" when it
// builds the backend.
type CA struct {
	Type   string        `yaml:"type"` // local, vault or stepca
	Local  local.Config  `yaml:"local"`
	Vault  vault.Config  `yaml:"vault"`
	StepCA stepca.Config `yaml:"stepca"`
}

// Rule maps selectors to a SPIFFE ID.
type Rule struct {
	SPIFFEID      string        `yaml:"spiffe_id"`
	Selectors     []string      `yaml:"selectors"`
	TTL           time.Duration `yaml:"ttl"`
	DNSNames      []string      `yaml:"dns_names"`
	Hint          string        `yaml:"hint"`
	FederatesWith []string      `yaml:"federates_with"`
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates data; name is used in error messages. The
// errors come in the order of the lines they name (code order within a
// line), so the same file always gets the same message.
func Parse(name string, data []byte) (*Config, error) {
	var c Config
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(name, &root, err)
	}
	c.SetDefaults()
	if errs := withEmptyBundleFiles(c.validate(), &root); len(errs) > 0 {
		return nil, fmt.Errorf("config: %s", strings.Join(atLines(name, &root, errs), "\n  "))
	}
	c.warnings = atLines(name, &root, c.lint())
	return &c, nil
}

// atLines renders each error as file:line: field: problem, sorted by line.
func atLines(name string, root *yaml.Node, errs field.List) []string {
	type located struct {
		line int
		msg  string
	}
	out := make([]located, len(errs))
	for i, fe := range errs {
		line := lineOf(root, fe.Path)
		out[i] = located{line, fmt.Sprintf("%s:%d: %v", name, line, fe)}
	}
	slices.SortStableFunc(out, func(a, b located) int { return cmp.Compare(a.line, b.line) })
	msgs := make([]string, len(out))
	for i, l := range out {
		msgs[i] = l.msg
	}
	return msgs
}

// Warnings lists what the config allows but almost surely does not mean,
// e.g. a k8s: selector while Kubernetes attestation is off; the agent logs
// each at start and at every reload. A Config from Parse names file and
// line.
func (c *Config) Warnings() []string {
	if c.warnings != nil {
		return c.warnings
	}
	var out []string
	for _, fe := range c.lint() {
		out = append(out, fe.Error())
	}
	return out
}

// lint finds rules that can never match.
func (c *Config) lint() field.List {
	var out field.List
	if c.Kubernetes.Enabled {
		return nil
	}
	const off = "kubernetes attestation is off (kubernetes.enabled: false), so this rule never matches"
	for i, r := range c.Rules {
		for j, sel := range r.Selectors {
			if strings.HasPrefix(sel, "k8s:") {
				out.Add(fmt.Errorf("%s: %s", sel, off), "rules", strconv.Itoa(i), "selectors", strconv.Itoa(j))
			}
		}
		if strings.Contains(r.SPIFFEID, "{k8s:") {
			out.Add(fmt.Errorf("%s names a k8s: placeholder: %s", r.SPIFFEID, off), "rules", strconv.Itoa(i), "spiffe_id")
		}
	}
	return out
}

// SetDefaults fills in every unset field; a CA backend's section gets the
// backend's own defaults.
func (c *Config) SetDefaults() {
	field.Default(&c.SocketPath, DefaultSocketPath)
	field.Default(&c.AdminSocketPath, DefaultAdminSocketPath)
	field.Default(&c.DataDir, DefaultDataDir)
	field.Default(&c.HealthAddr, DefaultHealthAddr)
	field.Default(&c.Log.Level, "info")
	field.Default(&c.Log.Format, "text")
	field.Default(&c.SVID.TTL, DefaultSVIDTTL)
	field.Default(&c.SVID.KeyType, ca.KeyECP256)
	field.Default(&c.SVID.IdleTimeout, cache.DefaultIdleTimeout)
	field.Default(&c.SVID.JWTTTL, 5*time.Minute)
	field.Default(&c.Rotation.MaxConcurrent, cache.DefaultMaxConcurrent)
	field.Default(&c.CA.Type, "local")
	field.Default(&c.SDS.DefaultSVIDName, workload.DefaultSVIDName)
	field.Default(&c.SDS.DefaultBundleName, workload.DefaultBundleName)
	field.Default(&c.SDS.DefaultAllBundlesName, workload.DefaultAllBundlesName)
	c.CA.Local.ApplyDefaults()
	c.Limits.SetDefaults()
	if c.Kubernetes.Enabled {
		c.Kubernetes.setDefaults()
	}
	if c.Federation.BundleEndpoint.Listen != "" {
		field.Default(&c.Federation.BundleEndpoint.Profile, "https_spiffe")
		field.Default(&c.Federation.BundleEndpoint.RefreshHint, 5*time.Minute)
	}
	for i := range c.Federation.TrustDomains {
		field.Default(&c.Federation.TrustDomains[i].Profile, "https_spiffe")
	}
	switch c.CA.Type {
	case "stepca":
		c.CA.StepCA.ApplyDefaults()
	case "vault":
		c.CA.Vault.ApplyDefaults()
	}
	if c.remoteSigner() {
		field.Default(&c.Rotation.MaxPerSecond, cache.DefaultRemoteMaxPerSecond)
	}
}

// remoteSigner reports whether every SVID is signed by a CA that other
// agents share (Vault in sign mode, step-ca), whose calls are capped by
// default; the embedded CA and Vault's intermediate mode sign in the agent.
func (c *Config) remoteSigner() bool {
	return c.CA.Type == "stepca" || c.CA.Type == "vault" && c.CA.Vault.Mode != vault.ModeIntermediate
}

func (k *Kubernetes) setDefaults() {
	field.Default(&k.NodeName, os.Getenv("NODE_NAME"))
	field.Default(&k.PodSource, "apiserver")
	field.Default(&k.ProcRoot, "/proc")
	field.Default(&k.Kubelet.TokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token")
	field.Default(&k.Kubelet.CacheTTL, 5*time.Second)
	if k.Kubelet.URL == "" && k.NodeName != "" {
		k.Kubelet.URL = "https://" + net.JoinHostPort(k.NodeName, "10250")
	}
	if c := &k.ClusterSPIFFEIDs; c.Enabled {
		if c.IgnoreNamespaces == nil {
			c.IgnoreNamespaces = []string{"kube-system", "kube-public", "spire-system"}
		}
		field.Default(&c.ClusterDomain, "cluster.local")
		if c.StatusDelay == nil {
			d := 5 * time.Second
			c.StatusDelay = &d
		}
	}
}

// Validate checks a Config whose fields were set in code or by flags.
func (c *Config) Validate() error {
	if errs := c.validate(); len(errs) > 0 {
		return fmt.Errorf("config: %w", errs)
	}
	return nil
}

// TrustDomainID returns the parsed trust domain of a validated Config.
func (c *Config) TrustDomainID() spiffeid.TrustDomain {
	td, _ := spiffeid.TrustDomainFromString(c.TrustDomain)
	return td
}

// CompileRules compiles the rules of a validated Config, the default
// Kubernetes identity first when it applies.
func (c *Config) CompileRules() ([]registry.Compiled, error) {
	var out []registry.Compiled
	if c.Kubernetes.WantsDefaultIdentity() {
		def, err := registry.Compile(c.TrustDomainID(), c.SVID.TTL, registry.Rule{SPIFFEID: c.TrustDomainID().IDString() + DefaultK8sRule})
		if err != nil {
			return nil, fmt.Errorf("config: default kubernetes identity: %w", err)
		}
		out = append(out, def)
	}
	for i, r := range c.Rules {
		compiled, err := registry.Compile(c.TrustDomainID(), c.SVID.TTL, registry.Rule(r))
		if err != nil {
			return nil, fmt.Errorf("config: rules[%d].%w", i, err)
		}
		out = append(out, compiled)
	}
	return out, nil
}
