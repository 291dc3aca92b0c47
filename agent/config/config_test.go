package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/ca/vault"
)

// loadErrorTests are bad files and what Load must say of each.
var loadErrorTests = []struct {
	name string
	yaml string
	want []string // substrings of the error, after the file name
	not  []string // substrings it must not have (a problem said twice)
}{
	{
		name: "unknown key",
		yaml: "trust_domain: example.org\nsvid:\n  tll: 1h\n",
		want: []string{":3: svid.tll: unknown field; check its spelling"},
		not:  []string{"config.", "not found in type"},
	},
	{
		name: "wrong type",
		yaml: "trust_domain: example.org\nrotation:\n  max_concurrent: many\n",
		want: []string{`:3: rotation.max_concurrent: want a number, got the string "many"`},
		not:  []string{"unmarshal", "!!str"},
	},
	{
		name: "bad duration",
		yaml: "trust_domain: example.org\nsvid:\n  ttl: fast\n",
		want: []string{`:3: svid.ttl: want a duration such as 90s, 30m or 1h, got the string "fast"`},
		not:  []string{"time.Duration"},
	},
	{
		name: "a list where a mapping's field wants a duration",
		yaml: "trust_domain: example.org\nsvid:\n  ttl: [1h]\n",
		want: []string{":3: svid.ttl: want a duration such as 90s, 30m or 1h, got a list"},
	},
	{
		name: "a number where the rules go",
		yaml: "trust_domain: example.org\nrules: 5\n",
		want: []string{`:2: rules: want a list, got the number "5"`},
		not:  []string{"config.Rule"},
	},
	{
		name: "a misspelt field in the second rule",
		yaml: "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/a\n  - spiffe_id: spiffe://example.org/b\n    selectorz: [unix:uid:0]\n",
		want: []string{":5: rules[1].selectorz: unknown field"},
	},
	{
		name: "a mapping where selectors are a list",
		yaml: "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/a\n    selectors: {unix: uid}\n",
		want: []string{":4: rules[0].selectors: want a list, got a mapping"},
	},
	{
		name: "bad indentation",
		yaml: "trust_domain: example.org\n  bad: indent\n",
		want: []string{":2: mapping values are not allowed in this context"},
		not:  []string{"yaml: line"},
	},
	{
		name: "a port out of range",
		yaml: "trust_domain: example.org\nhealth_addr: 127.0.0.1:99999\n",
		want: []string{":2: health_addr: port 99999 is out of range: ports go from 0 to 65535"},
		not:  []string{"not a number"},
	},
	{
		name: "bad trust domain",
		yaml: "socket_path: /run/x.sock\ntrust_domain: Example.ORG\n",
		want: []string{":2: trust_domain: trust domain characters are limited"},
	},
	{
		name: "missing trust domain",
		yaml: "socket_path: /run/x.sock\n",
		want: []string{":1: trust_domain: is required"},
	},
	{
		name: "ttl out of range and bad key type, both reported",
		yaml: "trust_domain: example.org\nsvid:\n  ttl: 5s\n  key_type: ec-p999\n",
		want: []string{":3: svid.ttl: 5s is out of range", ":4: svid.key_type: unsupported key type"},
	},
	{
		name: "unparsable rule",
		yaml: "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/a\n  - spiffe_id: spiffe://example.org/{unix:shell}\n",
		want: []string{":4: rules[1].spiffe_id: placeholder {unix:shell}"},
	},
	{
		name: "bad selector in a flow list",
		yaml: "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/a\n    selectors: [unix:uid:1, uid]\n",
		want: []string{":4: rules[0].selectors[1]: selector \"uid\""},
	},
	{
		name: "local CA shorter than six SVID lifetimes",
		yaml: "trust_domain: example.org\nsvid:\n  ttl: 24h\nca:\n  local:\n    ttl: 48h\n",
		want: []string{":6: ca.local.ttl: 48h0m0s must be at least six times svid.ttl"},
	},
	{
		name: "unknown CA type",
		yaml: "trust_domain: example.org\nca:\n  type: hsm\n",
		want: []string{":3: ca.type: unknown CA type \"hsm\""},
	},
	{
		name: "vault without address or credentials",
		yaml: "trust_domain: example.org\nca:\n  type: vault\n  vault:\n    mode: proxy\n",
		want: []string{":4: ca.vault.address: is required", ":5: ca.vault.mode: \"proxy\" is not one of sign, intermediate", "ca.vault.auth.method: token auth needs"},
	},
	{
		name: "vault approle without secret id",
		yaml: "trust_domain: example.org\nca:\n  type: vault\n  vault:\n    address: https://vault:8200\n    auth:\n      method: approle\n      role_id: abc\n",
		want: []string{":6: ca.vault.auth.secret_id_file: is required for approle auth"},
	},
	{
		name: "vault bad address and relative token file",
		yaml: "trust_domain: example.org\nca:\n  type: vault\n  vault:\n    address: vault:8200\n    auth:\n      token_file: token\n",
		want: []string{":5: ca.vault.address: \"vault:8200\" is not an http(s) URL", ":7: ca.vault.auth.token_file: \"token\" is not an absolute path"},
	},
	{
		name: "vault HA addresses, one not a URL",
		yaml: "trust_domain: example.org\nca:\n  type: vault\n  vault:\n    addresses:\n      - https://vault-0:8200\n      - vault-1:8200\n    auth:\n      token_file: /t\n",
		want: []string{":7: ca.vault.addresses[1]: \"vault-1:8200\" is not an http(s) URL"},
	},
	{
		name: "stepca plain http, no root pin, relative password file",
		yaml: "trust_domain: example.org\nca:\n  type: stepca\n  stepca:\n    url: http://ca\n    provisioner: p\n    provisioner_password_file: p\n",
		want: []string{":4: ca.stepca.root_fingerprint: give exactly one of root_fingerprint and root_file", ":5: ca.stepca.url: \"http://ca\" is not an https URL", ":7: ca.stepca.provisioner_password_file: \"p\" is not an absolute path"},
	},
	{
		name: "local CA ttl below a day and bad key type",
		yaml: "trust_domain: example.org\nca:\n  local:\n    key_type: ec-p999\n    ttl: 12h\n",
		want: []string{":4: ca.local.key_type: unsupported key type \"ec-p999\"", ":5: ca.local.ttl: 12h0m0s is out of range [24h0m0s, 8760h0m0s]"},
	},
	{
		name: "a backend's runtime field is not a key of the file",
		yaml: "trust_domain: example.org\nca:\n  type: vault\n  vault:\n    trust_domain: other.org\n",
		want: []string{":5: ca.vault.trust_domain: unknown field"},
	},
	{
		name: "the local CA's directory is not a key of the file",
		yaml: "trust_domain: example.org\nca:\n  local:\n    dir: /tmp/ca\n",
		want: []string{":4: ca.local.dir: unknown field"},
	},
	{
		name: "trust domain as a rule's ID",
		yaml: "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org\n    selectors: [unix:uid:0]\n",
		want: []string{":3: rules[0].spiffe_id: \"spiffe://example.org\" names the trust domain, not a workload"},
	},
	{
		name: "rule with its selectors line deleted",
		yaml: "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/db\n    ttl: 10m\n",
		want: []string{":3: rules[0].selectors: a rule without selectors would give spiffe://example.org/db to every process", "selectors: [any]"},
	},
	{
		name: "empty selector value",
		yaml: "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/db\n    selectors:\n      - unix:gid:0\n      - \"unix:uid:\"\n",
		want: []string{":6: rules[0].selectors[1]: selector \"unix:uid:\" has no value"},
	},
	{
		name: "duplicate hint",
		yaml: "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/a\n    selectors: [unix:uid:1]\n    hint: internal\n  - spiffe_id: spiffe://example.org/b\n    selectors: [unix:uid:2]\n    hint: internal\n",
		want: []string{":8: rules[1].hint: \"internal\" is already the hint of rules[0]; hints must be unique"},
	},
	{
		name: "empty bundle_file with https_web",
		yaml: "trust_domain: example.org\nfederation:\n  trust_domains:\n    - trust_domain: other.org\n      url: https://other.org/bundle\n      profile: https_web\n      bundle_file: \"\"\n",
		want: []string{":7: federation.trust_domains[0].bundle_file: is empty: name a bundle file (SPIFFE bundle JSON or PEM), or remove the key"},
	},
	{
		name: "bundle_file with no value, https_spiffe, said once",
		yaml: "trust_domain: example.org\nfederation:\n  trust_domains:\n    - trust_domain: other.org\n      url: https://other.org/bundle\n      endpoint_spiffe_id: spiffe://other.org/ep\n      bundle_file:\n",
		want: []string{":7: federation.trust_domains[0].bundle_file: is empty: name a bundle file"},
		not:  []string{"https_spiffe needs a bootstrap bundle"},
	},
	{
		name: "negative reissue spread",
		yaml: "trust_domain: example.org\nrotation:\n  reissue_spread: -1s\n",
		want: []string{":3: rotation.reissue_spread: -1s is out of range [0s, 1m0s]"},
	},
	{
		name: "reissue spread over a minute per 100",
		yaml: "trust_domain: example.org\nrotation:\n  max_concurrent: 2\n  reissue_spread: 2m\n",
		want: []string{":4: rotation.reissue_spread: 2m0s is out of range [0s, 1m0s]"},
	},
	{
		name: "relative socket path",
		yaml: "trust_domain: example.org\nsocket_path: run/w.sock\n",
		want: []string{":2: socket_path: \"run/w.sock\" is not an absolute path"},
	},
}

func TestLoadNamesFileLineAndField(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	for _, tt := range loadErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(path)
			if err == nil {
				t.Fatal("Load accepted a bad config")
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(err.Error(), w) {
					t.Fatalf("error %q has %q", err, w)
				}
			}
		})
	}
}

func TestLoadFillsDefaults(t *testing.T) {
	c, err := config.Parse("agent.yaml", []byte("trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/web\n    selectors: [unix:user:web]\n    ttl: 10m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SocketPath != config.DefaultSocketPath || c.SVID.TTL != time.Hour || c.CA.Type != "local" || c.Rotation.MaxConcurrent != 4 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	rules, err := c.CompileRules()
	if err != nil || len(rules) != 1 {
		t.Fatalf("CompileRules = %d rules, %v", len(rules), err)
	}
}

func TestShippedExampleConfigLoads(t *testing.T) {
	c, err := config.Load("../../deploy/systemd/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompileRules(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadWarnsAboutRulesThatNeverMatch(t *testing.T) {
	yaml := "trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/db\n    selectors: [unix:uid:0, k8s:ns:prod]\n  - spiffe_id: spiffe://example.org/ns/{k8s:ns}\n  - spiffe_id: spiffe://example.org/ok\n    selectors: [unix:uid:0]\n"
	c, err := config.Parse("agent.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"agent.yaml:4: rules[0].selectors[1]: k8s:ns:prod: kubernetes attestation is off",
		"agent.yaml:5: rules[1].spiffe_id: spiffe://example.org/ns/{k8s:ns} names a k8s: placeholder",
	}
	got := c.Warnings()
	if len(got) != len(want) {
		t.Fatalf("Warnings = %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Fatalf("warning %d = %q, want it to start %q", i, got[i], want[i])
		}
	}
	on, err := config.Parse("agent.yaml", []byte(yaml+"kubernetes:\n  enabled: true\n  node_name: n1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := on.Warnings(); len(w) != 0 {
		t.Fatalf("Warnings with kubernetes on = %q, want none", w)
	}
}

// TestLoadErrorsComeInDocumentOrder pins the order of several errors: by
// the line they name, whatever order the checks run in (here the Vault
// backend checks address before auth, and once checked file fields in map
// order).
func TestLoadErrorsComeInDocumentOrder(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	yaml := "trust_domain: example.org\nca:\n  type: vault\n  vault:\n    auth:\n      jwt_file: j\n      secret_id_file: s\n      token_file: t\n    ca_cert_file: c\n    address: vault:8200\n"
	want := "config: agent.yaml:6: ca.vault.auth.jwt_file: \"j\" is not an absolute path" +
		"\n  agent.yaml:7: ca.vault.auth.secret_id_file: \"s\" is not an absolute path" +
		"\n  agent.yaml:8: ca.vault.auth.token_file: \"t\" is not an absolute path" +
		"\n  agent.yaml:9: ca.vault.ca_cert_file: \"c\" is not an absolute path" +
		"\n  agent.yaml:10: ca.vault.address: \"vault:8200\" is not an http(s) URL"
	for range 20 { // a map-ordered check would differ within a few runs
		_, err := config.Parse("agent.yaml", []byte(yaml))
		if err == nil || err.Error() != want {
			t.Fatalf("Parse error:\n%v\nwant:\n%s", err, want)
		}
	}
}

// TestValidateErrorsComeInAFixedOrder pins the order Validate (a Config
// built in code, no file lines) reports two errors in: the checks' order.
func TestValidateErrorsComeInAFixedOrder(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	c := config.Config{TrustDomain: "example.org", CA: config.CA{Type: "vault", Vault: vault.Config{
		Address: "vault:8200", CACertFile: "c", Auth: vault.Auth{TokenFile: "t", SecretIDFile: "s", JWTFile: "j"},
	}}}
	c.SetDefaults()
	want := "config: ca.vault.address: \"vault:8200\" is not an http(s) URL" +
		"; ca.vault.ca_cert_file: \"c\" is not an absolute path" +
		"; ca.vault.auth.token_file: \"t\" is not an absolute path" +
		"; ca.vault.auth.secret_id_file: \"s\" is not an absolute path" +
		"; ca.vault.auth.jwt_file: \"j\" is not an absolute path"
	for range 20 {
		if err := c.Validate(); err == nil || err.Error() != want {
			t.Fatalf("Validate = %v\nwant %s", err, want)
		}
	}
}

// A CA that the fleet shares gets a default cap on CA calls; one that
// signs in the agent does not; a value set in the file always wins.
func TestMaxPerSecondDefaultsByWhereSVIDsAreSigned(t *testing.T) {
	for _, tc := range []struct {
		name string
		ca   config.CA
		set  float64
		want float64
	}{
		{name: "embedded CA", ca: config.CA{Type: "local"}, want: 0},
		{name: "Vault signing each SVID", ca: config.CA{Type: "vault"}, want: cache.DefaultRemoteMaxPerSecond},
		{name: "Vault intermediate mode", ca: config.CA{Type: "vault", Vault: vault.Config{Mode: vault.ModeIntermediate}}, want: 0},
		{name: "step-ca", ca: config.CA{Type: "stepca"}, want: cache.DefaultRemoteMaxPerSecond},
		{name: "step-ca, set in the file", ca: config.CA{Type: "stepca"}, set: 500, want: 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &config.Config{CA: tc.ca, Rotation: config.Rotation{MaxPerSecond: tc.set}}
			c.SetDefaults()
			if c.Rotation.MaxPerSecond != tc.want {
				t.Fatalf("rotation.max_per_second = %v, want %v", c.Rotation.MaxPerSecond, tc.want)
			}
		})
	}
}

// SDS's default names default to SPIRE's and must each stand for one thing.
func TestSDSNames(t *testing.T) {
	base := "trust_domain: example.org\n"
	c, err := config.Parse("sworn.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.SDS; s.DefaultSVIDName != "default" || s.DefaultBundleName != "ROOTCA" || s.DefaultAllBundlesName != "ALL" {
		t.Fatalf("SDS defaults %+v, want SPIRE's default, ROOTCA, ALL", s)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{name: "two names the same", yaml: "sds:\n  default_bundle_name: ALL\n", want: `sworn.yaml:2: sds.default_all_bundles_name: "ALL" is also sds.default_bundle_name`},
		{name: "a SPIFFE ID", yaml: "sds:\n  default_svid_name: spiffe://example.org/x\n", want: `sds.default_svid_name: "spiffe://example.org/x" is a SPIFFE ID`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("sworn.yaml", []byte(base+tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestPProfNeedsALoopbackHealthAddress(t *testing.T) {
	tests := []struct {
		name, addr string
		wantErr    bool
	}{
		{name: "IPv4 loopback", addr: "127.0.0.1:8088"},
		{name: "IPv6 loopback", addr: "[::1]:8088"},
		{name: "localhost", addr: "localhost:8088"},
		{name: "every address", addr: ":8088", wantErr: true},
		{name: "a node address", addr: "10.0.0.5:8088", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("agent.yaml", []byte("trust_domain: example.org\nhealth_addr: \""+tt.addr+"\"\ndebug:\n  pprof: true\n"))
			if tt.wantErr != (err != nil) || (err != nil && !strings.Contains(err.Error(), "agent.yaml:4: debug.pprof: needs health_addr on loopback")) {
				t.Fatalf("health_addr %s with pprof: %v", tt.addr, err)
			}
		})
	}
}

// TestReissueSpread: unset, rotation.reissue_spread is the cache's
// default; an explicit 0 turns the spread off rather than reading as
// unset.
func TestReissueSpread(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want time.Duration
	}{
		{name: "unset", yaml: "", want: cache.DefaultReissueSpread},
		{name: "zero turns it off", yaml: "rotation:\n  reissue_spread: 0s\n", want: 0},
		{name: "set", yaml: "rotation:\n  reissue_spread: 3s\n", want: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("agent.yaml", []byte("trust_domain: example.org\n"+tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Rotation.Spread(); got != tt.want {
				t.Fatalf("rotation.reissue_spread = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestManyDecodingProblemsAreCountedNotAllListed(t *testing.T) {
	var b strings.Builder
	b.WriteString("trust_domain: example.org\nrules:\n")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "  - spiffe_id: spiffe://example.org/w%d\n    selectorz: [a]\n", i)
	}
	_, err := config.Parse("agent.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("accepted 500 unknown fields")
	}
	msg := err.Error()
	if got := strings.Count(msg, "unknown field"); got != 20 || !strings.Contains(msg, "and 480 more problems like these") {
		t.Fatalf("%d problems listed (want 20) and the rest counted: ...%s", got, msg[max(0, len(msg)-200):])
	}
}

func TestClusterSPIFFEIDsConfigErrorsNameTheLine(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	tests := []struct {
		name, yaml, want string
	}{
		{name: "without kubernetes", yaml: "trust_domain: example.org\nkubernetes:\n  cluster_spiffeids:\n    enabled: true\n",
			want: "agent.yaml:4: kubernetes.cluster_spiffeids.enabled: needs kubernetes.enabled: true"},
		{name: "with the kubelet pod source", yaml: "trust_domain: example.org\nkubernetes:\n  enabled: true\n  pod_source: kubelet\n  cluster_spiffeids:\n    enabled: true\n",
			want: "agent.yaml:6: kubernetes.cluster_spiffeids.enabled: needs kubernetes.pod_source: apiserver"},
		{name: "bad namespace pattern", yaml: "trust_domain: example.org\nkubernetes:\n  enabled: true\n  cluster_spiffeids:\n    enabled: true\n    ignore_namespaces: [kube-system, \"team-(\"]\n",
			want: "kubernetes.cluster_spiffeids.ignore_namespaces[1]: error parsing regexp"},
		{name: "status delay too long", yaml: "trust_domain: example.org\nkubernetes:\n  enabled: true\n  cluster_spiffeids:\n    enabled: true\n    status_delay: 1h\n",
			want: "agent.yaml:6: kubernetes.cluster_spiffeids.status_delay:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("agent.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want %q", err, tt.want)
			}
		})
	}
	c, err := config.Parse("agent.yaml", []byte("trust_domain: example.org\nkubernetes:\n  enabled: true\n  cluster_spiffeids:\n    enabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Kubernetes.ClusterSPIFFEIDs; strings.Join(got.IgnoreNamespaces, ",") != "kube-system,kube-public,spire-system" || got.ClusterDomain != "cluster.local" || got.StatusDelay == nil || *got.StatusDelay != 5*time.Second {
		t.Fatalf("defaults = %+v", got)
	}
}
