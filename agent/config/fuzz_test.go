package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/agent/config"
)

// FuzzParse feeds the config file. Whatever Parse returns is either an
// error that names the file, or a config whose rules all compile and that
// Validate accepts again, so that nothing passes the loader that the agent
// then fails on.
func FuzzParse(f *testing.F) {
	shipped, _ := filepath.Glob("../../deploy/systemd/*.yaml")
	for _, p := range shipped {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/uid/{unix:uid}\n"))
	f.Add([]byte("trust_domain: example.org\nrules:\n  - spiffe_id: spiffe://example.org/a\n    selectors: [any]\n    hint: a\n    federates_with: [other.org]\n"))
	f.Add([]byte("trust_domain: example.org\nca:\n  type: vault\n  vault:\n    address: https://v:8200\n    auth: {method: approle, role_id: x, secret_id_file: /s}\n"))
	f.Add([]byte("trust_domain: example.org\nkubernetes: {enabled: true, node_name: n}\nrules: [{spiffe_id: 'spiffe://example.org/x', selectors: ['k8s:pod-label:a:']}]\n"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("agent.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: agent.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if _, err := c.CompileRules(); err != nil {
			t.Fatalf("Parse accepted rules that do not compile: %v", err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate refuses: %v", err)
		}
	})
}
