package config_test

import (
	"os"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sworn-id/sworn/agent/config"
)

// TestShippedKubernetesConfigsLoad parses the agent.yaml of each shipped
// ConfigMap, so a manifest can never carry a config the agent refuses, and
// checks that every file it names under /etc/sworn (the ConfigMap's mount)
// is a key of the same ConfigMap with content: an empty one (a CA PEM left
// to fill in) stops the agent at start, a crash loop. overlays/csi has no
// ConfigMap of its own (it is the base's); the Helm chart's and every
// overlay's as built are checked in agent's dry-run tests.
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
			for _, m := range mountedFile.FindAllStringSubmatch(cm.Data["agent.yaml"], -1) {
				if cm.Data[m[1]] == "" {
					t.Errorf("agent.yaml names /etc/sworn/%s, but the ConfigMap has no content for key %q", m[1], m[1])
				}
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

// mountedFile is a path agent.yaml names inside the ConfigMap's mount; a
// commented-out line does not count.
var mountedFile = regexp.MustCompile(`(?m)^[^#\n]*?(?:/etc/sworn/)([A-Za-z0-9._-]+)`)
