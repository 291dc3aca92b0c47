package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"

	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
)

// Defaults.
const (
	DefaultSocketPath      = "/run/sworn/workload.sock"
	DefaultAdminSocketPath = "/run/sworn/admin.sock"
	DefaultDataDir         = "/var/lib/sworn"
	DefaultHealthAddr      = "127.0.0.1:8088"
	DefaultSVIDTTL         = time.Hour
	DefaultLocalCATTL      = 7 * 24 * time.Hour
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
	SVID            SVID       `yaml:"svid"`
	Rotation        Rotation   `yaml:"rotation"`
	CA              CA         `yaml:"ca"`
	Kubernetes      Kubernetes `yaml:"kubernetes"`
	Federation      Federation `yaml:"federation"`
	Limits          Limits     `yaml:"limits"`
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

// Rotation bounds the load the agent puts on its CA.
type Rotation struct {
	MaxConcurrent int     `yaml:"max_concurrent"`
	MaxPerSecond  float64 `yaml:"max_per_second"`
}

// CA chooses and configures the upstream CA.
type CA struct {
	Type   string  `yaml:"type"` // local, vault or stepca
	Local  LocalCA `yaml:"local"`
	Vault  VaultCA `yaml:"vault"`
	StepCA StepCA  `yaml:"stepca"`
}

// StepCA configures the smallstep step-ca backend (ca/stepca).
type StepCA struct {
	URL string `yaml:"url"`
	// RootFingerprint (hex SHA-256) or RootFile pins step-ca's root.
	RootFingerprint string `yaml:"root_fingerprint"`
	RootFile        string `yaml:"root_file"`
	// Provisioner is a JWK provisioner; its key is decrypted with the
	// password in PasswordFile.
	Provisioner   string        `yaml:"provisioner"`
	PasswordFile  string        `yaml:"provisioner_password_file"`
	BundleRefresh time.Duration `yaml:"bundle_refresh"`
}

// VaultCA configures the Vault backend (ca/vault).
type VaultCA struct {
	Address         string        `yaml:"address"`
	CACertFile      string        `yaml:"ca_cert_file"`
	Namespace       string        `yaml:"namespace"`
	PKIMount        string        `yaml:"pki_mount"`
	Role            string        `yaml:"role"`
	Mode            string        `yaml:"mode"` // sign or intermediate
	Auth            VaultAuth     `yaml:"auth"`
	BundleRefresh   time.Duration `yaml:"bundle_refresh"`
	IntermediateTTL time.Duration `yaml:"intermediate_ttl"`
	// JWT enables JWT-SVIDs signed by a transit key shared by all agents.
	JWT VaultJWT `yaml:"jwt"`
}

// VaultJWT names the transit key that signs JWT-SVIDs.
type VaultJWT struct {
	TransitMount string `yaml:"transit_mount"`
	Key          string `yaml:"key"`
}

// VaultAuth configures how the agent logs in to Vault.
type VaultAuth struct {
	Method       string `yaml:"method"` // token, approle, kubernetes, jwt
	TokenFile    string `yaml:"token_file"`
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	Role         string `yaml:"role"`
	Mount        string `yaml:"mount"`
	JWTFile      string `yaml:"jwt_file"`
}

// LocalCA configures the embedded CA.
type LocalCA struct {
	TTL     time.Duration `yaml:"ttl"`
	KeyType ca.KeyType    `yaml:"key_type"`
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

// Parse decodes and validates data; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	c.SetDefaults()
	at := func(fe fieldError) string {
		return fmt.Sprintf("%s:%d: %s: %v", name, lineOf(&root, fe.path), fe.field(), fe.err)
	}
	if errs := c.validate(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, fe := range errs {
			msgs[i] = at(fe)
		}
		return nil, fmt.Errorf("config: %s", strings.Join(msgs, "\n  "))
	}
	for _, fe := range c.lint() {
		c.warnings = append(c.warnings, at(fe))
	}
	return &c, nil
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
		out = append(out, fmt.Sprintf("%s: %v", fe.field(), fe.err))
	}
	return out
}

// lint finds rules that can never match.
func (c *Config) lint() []fieldError {
	var out []fieldError
	if c.Kubernetes.Enabled {
		return nil
	}
	const off = "kubernetes attestation is off (kubernetes.enabled: false), so this rule never matches"
	for i, r := range c.Rules {
		for j, sel := range r.Selectors {
			if strings.HasPrefix(sel, "k8s:") {
				out = append(out, fieldError{path: []string{"rules", strconv.Itoa(i), "selectors", strconv.Itoa(j)}, err: fmt.Errorf("%s: %s", sel, off)})
			}
		}
		if strings.Contains(r.SPIFFEID, "{k8s:") {
			out = append(out, fieldError{path: []string{"rules", strconv.Itoa(i), "spiffe_id"}, err: fmt.Errorf("%s names a k8s: placeholder: %s", r.SPIFFEID, off)})
		}
	}
	return out
}

// SetDefaults fills in every unset field.
func (c *Config) SetDefaults() {
	setDefault(&c.SocketPath, DefaultSocketPath)
	setDefault(&c.AdminSocketPath, DefaultAdminSocketPath)
	setDefault(&c.DataDir, DefaultDataDir)
	setDefault(&c.HealthAddr, DefaultHealthAddr)
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "text")
	setDefault(&c.SVID.TTL, DefaultSVIDTTL)
	setDefault(&c.SVID.KeyType, ca.KeyECP256)
	setDefault(&c.SVID.IdleTimeout, 10*time.Minute)
	setDefault(&c.SVID.JWTTTL, 5*time.Minute)
	setDefault(&c.Rotation.MaxConcurrent, 4)
	setDefault(&c.CA.Type, "local")
	setDefault(&c.CA.Local.TTL, DefaultLocalCATTL)
	setDefault(&c.CA.Local.KeyType, ca.KeyECP256)
	c.Limits.SetDefaults()
	if c.Kubernetes.Enabled {
		k := &c.Kubernetes
		setDefault(&k.NodeName, os.Getenv("NODE_NAME"))
		setDefault(&k.PodSource, "apiserver")
		setDefault(&k.ProcRoot, "/proc")
		setDefault(&k.Kubelet.TokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token")
		setDefault(&k.Kubelet.CacheTTL, 5*time.Second)
		if k.Kubelet.URL == "" && k.NodeName != "" {
			k.Kubelet.URL = "https://" + net.JoinHostPort(k.NodeName, "10250")
		}
	}
	if c.Federation.BundleEndpoint.Listen != "" {
		setDefault(&c.Federation.BundleEndpoint.Profile, "https_spiffe")
		setDefault(&c.Federation.BundleEndpoint.RefreshHint, 5*time.Minute)
	}
	for i := range c.Federation.TrustDomains {
		setDefault(&c.Federation.TrustDomains[i].Profile, "https_spiffe")
	}
	if c.CA.Type == "stepca" {
		setDefault(&c.CA.StepCA.BundleRefresh, 30*time.Second)
	}
	if c.CA.Type == "vault" {
		v := &c.CA.Vault
		setDefault(&v.PKIMount, "pki")
		setDefault(&v.Role, "sworn")
		setDefault(&v.Mode, "sign")
		setDefault(&v.Auth.Method, "token")
		setDefault(&v.BundleRefresh, 30*time.Second)
		setDefault(&v.IntermediateTTL, 12*time.Hour)
	}
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Validate checks a Config whose fields were set in code or by flags.
func (c *Config) Validate() error {
	var msgs []string
	for _, fe := range c.validate() {
		msgs = append(msgs, fmt.Sprintf("%s: %v", fe.field(), fe.err))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("config: %s", strings.Join(msgs, "; "))
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

type fieldError struct {
	path []string
	err  error
}

// field renders the path as it reads in YAML terms: rules[0].selectors[1].
func (fe fieldError) field() string {
	var b strings.Builder
	for _, seg := range fe.path {
		if _, err := strconv.Atoi(seg); err == nil {
			b.WriteString("[" + seg + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

func (c *Config) validate() []fieldError {
	var errs []fieldError
	add := func(err error, path ...string) {
		if err != nil {
			errs = append(errs, fieldError{path: path, err: err})
		}
	}
	if c.TrustDomain == "" {
		add(errors.New("is required"), "trust_domain")
	} else if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		add(err, "trust_domain")
	}
	add(absolute(c.SocketPath), "socket_path")
	add(absolute(c.AdminSocketPath), "admin_socket_path")
	if c.SocketPath == c.AdminSocketPath {
		add(errors.New("must differ from socket_path"), "admin_socket_path")
	}
	add(absolute(c.DataDir), "data_dir")
	if _, port, err := net.SplitHostPort(c.HealthAddr); err != nil {
		add(err, "health_addr")
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		add(fmt.Errorf("port %q is not a number", port), "health_addr")
	}
	add(oneOf(c.Log.Level, "debug", "info", "warn", "error"), "log", "level")
	add(oneOf(c.Log.Format, "text", "json"), "log", "format")
	add(inRange(c.SVID.TTL, registry.MinTTL, registry.MaxTTL), "svid", "ttl")
	add(c.SVID.KeyType.Validate(), "svid", "key_type")
	add(inRange(c.SVID.IdleTimeout, time.Minute, 24*time.Hour), "svid", "idle_timeout")
	add(inRange(c.SVID.JWTTTL, 30*time.Second, 24*time.Hour), "svid", "jwt_ttl")
	if c.Rotation.MaxConcurrent < 1 || c.Rotation.MaxConcurrent > 1000 {
		add(fmt.Errorf("%d is out of range [1, 1000]", c.Rotation.MaxConcurrent), "rotation", "max_concurrent")
	}
	if c.Rotation.MaxPerSecond < 0 {
		add(errors.New("must not be negative"), "rotation", "max_per_second")
	}
	switch c.CA.Type {
	case "local":
		add(inRange(c.CA.Local.TTL, 24*time.Hour, 365*24*time.Hour), "ca", "local", "ttl")
		if c.CA.Local.TTL < 6*c.SVID.TTL {
			add(fmt.Errorf("%v must be at least six times svid.ttl (%v), so a new CA signs full-length SVIDs", c.CA.Local.TTL, c.SVID.TTL), "ca", "local", "ttl")
		}
		add(c.CA.Local.KeyType.Validate(), "ca", "local", "key_type")
	case "vault":
		errs = append(errs, c.CA.Vault.validate()...)
	case "stepca":
		st := c.CA.StepCA
		if u, err := url.Parse(st.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			add(fmt.Errorf("%q is not an https URL", st.URL), "ca", "stepca", "url")
		}
		if (st.RootFingerprint == "") == (st.RootFile == "") {
			add(errors.New("give exactly one of root_fingerprint and root_file"), "ca", "stepca", "root_fingerprint")
		} else if fp := st.RootFingerprint; fp != "" && (len(fp) != 64 || strings.Trim(fp, "0123456789abcdefABCDEF") != "") {
			add(fmt.Errorf("%q is not a hex SHA-256 fingerprint", fp), "ca", "stepca", "root_fingerprint")
		}
		if st.Provisioner == "" {
			add(errors.New("is required"), "ca", "stepca", "provisioner")
		}
		if st.PasswordFile == "" {
			add(errors.New("is required"), "ca", "stepca", "provisioner_password_file")
		} else {
			add(absolute(st.PasswordFile), "ca", "stepca", "provisioner_password_file")
		}
		add(inRange(st.BundleRefresh, time.Second, time.Hour), "ca", "stepca", "bundle_refresh")
	default:
		add(fmt.Errorf("unknown CA type %q (want local, vault or stepca)", c.CA.Type), "ca", "type")
	}
	if k := c.Kubernetes; k.Enabled {
		if k.NodeName == "" {
			add(errors.New("is required (or set NODE_NAME from the downward API)"), "kubernetes", "node_name")
		}
		add(oneOf(k.PodSource, "apiserver", "kubelet"), "kubernetes", "pod_source")
		add(absolute(k.ProcRoot), "kubernetes", "proc_root")
		if k.PodSource == "kubelet" {
			if u, err := url.Parse(k.Kubelet.URL); err != nil || u.Scheme != "https" || u.Host == "" {
				add(fmt.Errorf("%q is not an https URL", k.Kubelet.URL), "kubernetes", "kubelet", "url")
			}
			add(inRange(k.Kubelet.CacheTTL, 100*time.Millisecond, time.Minute), "kubernetes", "kubelet", "cache_ttl")
		}
	}
	errs = append(errs, c.Federation.validate()...)
	errs = append(errs, c.Limits.validate()...)
	if len(errs) > 0 && errs[0].path[0] == "trust_domain" {
		return errs // rules cannot be checked without a trust domain
	}
	federated := map[string]bool{}
	for _, f := range c.Federation.TrustDomains {
		federated[f.TrustDomain] = true
	}
	hints := map[string]int{}
	for i, r := range c.Rules {
		// The Workload API requires each SVID's hint to be unique; two
		// rules with one hint could both apply to a workload.
		if r.Hint != "" {
			if first, ok := hints[r.Hint]; ok {
				add(fmt.Errorf("%q is already the hint of rules[%d]; hints must be unique (the Workload API requires it)", r.Hint, first), "rules", strconv.Itoa(i), "hint")
			} else {
				hints[r.Hint] = i
			}
		}
		for j, td := range r.FederatesWith {
			if !federated[td] {
				add(fmt.Errorf("%q is not in federation.trust_domains", td), "rules", strconv.Itoa(i), "federates_with", strconv.Itoa(j))
			}
		}
		_, err := registry.Compile(c.TrustDomainID(), c.SVID.TTL, registry.Rule(r))
		var fe *registry.FieldError
		if errors.As(err, &fe) {
			path := []string{"rules", strconv.Itoa(i), fe.Field}
			if fe.Index >= 0 {
				path = append(path, strconv.Itoa(fe.Index))
			}
			add(fe.Err, path...)
		} else {
			add(err, "rules", strconv.Itoa(i))
		}
	}
	return errs
}

func absolute(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func inRange(d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("%v is out of range [%v, %v]", d, lo, hi)
	}
	return nil
}

// lineOf returns the line of the node at path, or of its nearest ancestor
// present in the file (a defaulted field has no line of its own).
func lineOf(root *yaml.Node, path []string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := max(n.Line, 1)
	for _, seg := range path {
		next, at := child(n, seg)
		if next == nil {
			break
		}
		n, line = next, at
	}
	return line
}

// child returns the node under seg and the line that names it: a mapping
// key's own line, so a missing field points at its parent's key.
func child(n *yaml.Node, seg string) (*yaml.Node, int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				return n.Content[i+1], n.Content[i].Line
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i], n.Content[i].Line
		}
	}
	return nil, 0
}

func (v *VaultCA) validate() []fieldError {
	var errs []fieldError
	add := func(err error, path ...string) {
		if err != nil {
			errs = append(errs, fieldError{path: append([]string{"ca", "vault"}, path...), err: err})
		}
	}
	if v.Address == "" && os.Getenv("VAULT_ADDR") == "" {
		add(errors.New("is required (or set VAULT_ADDR)"), "address")
	} else if v.Address != "" {
		if u, err := url.Parse(v.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add(fmt.Errorf("%q is not an http(s) URL", v.Address), "address")
		}
	}
	add(oneOf(v.Mode, "sign", "intermediate"), "mode")
	add(inRange(v.BundleRefresh, time.Second, time.Hour), "bundle_refresh")
	add(inRange(v.IntermediateTTL, time.Hour, 7*24*time.Hour), "intermediate_ttl")
	for field, path := range map[string]string{"ca_cert_file": v.CACertFile, "auth.token_file": v.Auth.TokenFile, "auth.secret_id_file": v.Auth.SecretIDFile, "auth.jwt_file": v.Auth.JWTFile} {
		if path != "" && !filepath.IsAbs(path) {
			add(fmt.Errorf("%q is not an absolute path", path), strings.Split(field, ".")...)
		}
	}
	a := v.Auth
	switch a.Method {
	case "token":
		if a.TokenFile == "" && os.Getenv("VAULT_TOKEN") == "" {
			add(errors.New("token auth needs auth.token_file or VAULT_TOKEN"), "auth", "method")
		}
	case "approle":
		if a.RoleID == "" {
			add(errors.New("is required for approle auth"), "auth", "role_id")
		}
		if a.SecretIDFile == "" {
			add(errors.New("is required for approle auth"), "auth", "secret_id_file")
		}
	case "kubernetes", "jwt":
		if a.Role == "" {
			add(fmt.Errorf("is required for %s auth", a.Method), "auth", "role")
		}
		if a.JWTFile == "" {
			add(fmt.Errorf("is required for %s auth (the projected service-account token)", a.Method), "auth", "jwt_file")
		}
	default:
		add(oneOf(a.Method, "token", "approle", "kubernetes", "jwt"), "auth", "method")
	}
	return errs
}

func (f *Federation) validate() []fieldError {
	var errs []fieldError
	add := func(err error, path ...string) {
		if err != nil {
			errs = append(errs, fieldError{path: append([]string{"federation"}, path...), err: err})
		}
	}
	if e := f.BundleEndpoint; e.Listen != "" {
		if _, _, err := net.SplitHostPort(e.Listen); err != nil {
			add(err, "bundle_endpoint", "listen")
		}
		add(oneOf(e.Profile, "https_spiffe", "https_web"), "bundle_endpoint", "profile")
		if e.Profile == "https_web" && (e.CertFile == "" || e.KeyFile == "") {
			add(errors.New("https_web needs cert_file and key_file"), "bundle_endpoint", "profile")
		}
		add(inRange(e.RefreshHint, time.Second, 24*time.Hour), "bundle_endpoint", "refresh_hint")
	}
	seen := map[string]bool{}
	for i, t := range f.TrustDomains {
		at := func(field string) []string { return []string{"trust_domains", strconv.Itoa(i), field} }
		td, err := spiffeid.TrustDomainFromString(t.TrustDomain)
		if err != nil {
			add(err, at("trust_domain")...)
			continue
		}
		if seen[t.TrustDomain] {
			add(errors.New("is listed twice"), at("trust_domain")...)
		}
		seen[t.TrustDomain] = true
		if u, err := url.Parse(t.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			add(fmt.Errorf("%q is not an https URL", t.URL), at("url")...)
		}
		add(oneOf(t.Profile, "https_spiffe", "https_web"), at("profile")...)
		if t.Profile == "https_spiffe" {
			id, err := spiffeid.FromString(t.EndpointSPIFFEID)
			switch {
			case err != nil:
				add(fmt.Errorf("https_spiffe needs the endpoint's SPIFFE ID: %w", err), at("endpoint_spiffe_id")...)
			case id.TrustDomain() != td:
				add(fmt.Errorf("%s is not in %s", id, td), at("endpoint_spiffe_id")...)
			}
			if t.BundleFile == "" {
				add(errors.New("https_spiffe needs a bootstrap bundle to authenticate the endpoint"), at("bundle_file")...)
			}
		}
	}
	return errs
}
