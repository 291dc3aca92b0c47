package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sworn-id/sworn/agent/config"
)

func TestLoadNamesFileLineAndField(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error, after the file name
	}{
		{
			name: "unknown key",
			yaml: "trust_domain: example.org\nsvid:\n  tll: 1h\n",
			want: []string{"line 3: field tll not found"},
		},
		{
			name: "wrong type",
			yaml: "trust_domain: example.org\nrotation:\n  max_concurrent: many\n",
			want: []string{"line 3: cannot unmarshal !!str `many` into int"},
		},
		{
			name: "bad duration",
			yaml: "trust_domain: example.org\nsvid:\n  ttl: fast\n",
			want: []string{"line 3: cannot unmarshal !!str `fast` into time.Duration"},
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
			name: "relative socket path",
			yaml: "trust_domain: example.org\nsocket_path: run/w.sock\n",
			want: []string{":2: socket_path: \"run/w.sock\" is not an absolute path"},
		},
	}
	for _, tt := range tests {
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
