package config_test

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sworn-id/sworn/agent/config"
)

// TestShippedKubernetesConfigsLoad parses the agent.yaml of each shipped
// ConfigMap, so a manifest can never carry a config the agent refuses.
func TestShippedKubernetesConfigsLoad(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	for _, path := range []string{
		"../../deploy/kubernetes/base/configmap.yaml",
		"../../deploy/kubernetes/overlays/vault/configmap.yaml",
		"../../deploy/kubernetes/overlays/istio/configmap.yaml",
	} {
		t.Run(path, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var cm struct {
				Data map[string]string `yaml:"data"`
			}
			if err := yaml.Unmarshal(data, &cm); err != nil {
				t.Fatal(err)
			}
			c, err := config.Parse(path+":agent.yaml", []byte(cm.Data["agent.yaml"]))
			if err != nil {
				t.Fatal(err)
			}
			rules, err := c.CompileRules()
			if err != nil || len(rules) == 0 || !c.Kubernetes.WantsDefaultIdentity() {
				t.Fatalf("rules %d, default identity %v, %v", len(rules), c.Kubernetes.WantsDefaultIdentity(), err)
			}
		})
	}
}
