package agent_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/k8stest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// manifest is one object of a rendered or built set of manifests.
type manifest struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec struct {
				Tolerations []map[string]string `yaml:"tolerations"`
				Containers  []struct {
					Name         string   `yaml:"name"`
					Image        string   `yaml:"image"`
					Args         []string `yaml:"args"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name     string `yaml:"name"`
					HostPath *struct {
						Path string `yaml:"path"`
					} `yaml:"hostPath"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// id is how kubectl names an object in its output: kind[.group]/name.
func (m manifest) id() *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(strings.ToLower(m.Kind)) + `(\.[a-z0-9.-]+)?/` +
		regexp.QuoteMeta(m.Metadata.Name) + ` (created|configured|unchanged) \(server dry run\)$`)
}

// manifests decodes a multi-document YAML stream, skipping empty documents.
func manifests(t *testing.T, stream string) []manifest {
	t.Helper()
	var out []manifest
	dec := yaml.NewDecoder(strings.NewReader(stream))
	for {
		var m manifest
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode manifests: %v\n%s", err, stream)
		}
		if m.Kind != "" {
			out = append(out, m)
		}
	}
}

// find returns the object of the kind and name, or fails the test.
func find(t *testing.T, objs []manifest, kind, name string) manifest {
	t.Helper()
	for _, m := range objs {
		if m.Kind == kind && m.Metadata.Name == name {
			return m
		}
	}
	t.Fatalf("no %s %s among the manifests", kind, name)
	return manifest{}
}

// etcSworn is a file agent.yaml names inside the ConfigMap's mount; a
// commented-out line does not count.
var etcSworn = regexp.MustCompile(`(?m)^[^#\n]*?/etc/sworn/([A-Za-z0-9._-]+)`)

// checkAgentConfig loads the agent.yaml of the sworn-agent ConfigMap as the
// agent does, requires rules and the default identity, and requires every
// file it names under /etc/sworn to be a key of the ConfigMap with content
// (an empty CA PEM stops the agent: a crash loop).
func checkAgentConfig(t *testing.T, objs []manifest) *config.Config {
	t.Helper()
	t.Setenv("NODE_NAME", "node-a")
	cm := find(t, objs, "ConfigMap", "sworn-agent")
	agentYAML := cm.Data["agent.yaml"]
	c, err := config.Parse("ConfigMap sworn-agent:agent.yaml", []byte(agentYAML))
	if err != nil {
		t.Fatalf("%v\n%s", err, agentYAML)
	}
	if w := c.Warnings(); len(w) > 0 {
		t.Errorf("agent.yaml warnings: %v", w)
	}
	rules, err := c.CompileRules()
	if err != nil || len(rules) == 0 || !c.Kubernetes.WantsDefaultIdentity() {
		t.Fatalf("rules %d, default identity %v, %v", len(rules), c.Kubernetes.WantsDefaultIdentity(), err)
	}
	for _, m := range etcSworn.FindAllStringSubmatch(agentYAML, -1) {
		if strings.TrimSpace(cm.Data[m[1]]) == "" {
			t.Errorf("agent.yaml names /etc/sworn/%s, but the ConfigMap has no content for key %q", m[1], m[1])
		}
	}
	return c
}

// dryRun has the cluster's API server accept every object on server-side
// dry-run: kubectl names each one "created (server dry run)".
func dryRun(t *testing.T, c *k8stest.Cluster, stream string, objs []manifest) {
	t.Helper()
	out := kubectl(t, c, stream, "apply", "--dry-run=server", "-f", "-")
	for _, m := range objs {
		if !m.id().MatchString(out) {
			t.Errorf("%s %s not accepted:\n%s", m.Kind, m.Metadata.Name, out)
		}
	}
}

// testKubeVersion is the version of the kube-apiserver k8stest runs (built
// from the module proxy, it reports v0.0.0 itself), as `helm template
// --kube-version` would be given it.
const testKubeVersion = "v1.37.2"

// helmRender renders deploy/helm/sworn with .bin/helm-render (the Helm SDK
// in its own module, `make .bin/helm-render`), returning the manifests or
// the renderer's error output. kubeVersion is the cluster's.
func helmRender(t *testing.T, kubeVersion string, args ...string) (string, error) {
	t.Helper()
	root := testutil.Root(t)
	bin := filepath.Join(root, ".bin", "helm-render")
	if p := os.Getenv("SWORN_HELM_RENDER_BIN"); p != "" {
		bin = p
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no %s: run `make .bin/helm-render` (make test builds it) or set SWORN_HELM_RENDER_BIN", bin)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, append(append([]string{"--kube-version", kubeVersion}, args...), filepath.Join(root, "deploy", "helm", "sworn"))...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// monitoringCRDs are the Prometheus Operator's PodMonitor and
// ServiceMonitor as bare CRDs (any spec accepted), so the API server knows
// the kinds the chart renders when monitoring.coreos.com/v1 is served.
const monitoringCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: podmonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, plural: podmonitors, singular: podmonitor, listKind: PodMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

// helmCase is one set of values the chart is rendered with.
type helmCase struct {
	name   string
	args   []string
	values string // a values file's content, if any
	// caType is the agent config's ca.type; want are objects that must be
	// rendered and absent objects that must not ("Kind name").
	caType       string
	want, absent []string
	check        func(t *testing.T, objs []manifest, c *config.Config)
}

func TestHelmChartPassesServerSideDryRun(t *testing.T) {
	if _, err := helmRender(t, testKubeVersion); err != nil {
		t.Fatal(err) // before the cluster starts, so a missing renderer skips at once
	}
	c := k8stest.Start(t)
	kubectl(t, c, "", "create", "namespace", "sworn")
	kubectl(t, c, monitoringCRDs, "apply", "-f", "-")
	kubectl(t, c, "", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/podmonitors.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com")
	for _, tc := range helmCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.values != "" {
				f := filepath.Join(t.TempDir(), "values.yaml")
				if err := os.WriteFile(f, []byte(tc.values), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append([]string{"-f", f}, args...)
			}
			out, err := helmRender(t, testKubeVersion, args...)
			if err != nil {
				t.Fatal(err)
			}
			objs := manifests(t, out)
			cfg := checkAgentConfig(t, objs)
			if cfg.CA.Type != tc.caType {
				t.Errorf("ca.type %q, want %q", cfg.CA.Type, tc.caType)
			}
			for _, w := range tc.want {
				kind, name, _ := strings.Cut(w, " ")
				find(t, objs, kind, name)
			}
			for _, a := range tc.absent {
				for _, m := range objs {
					if m.Kind+" "+m.Metadata.Name == a {
						t.Errorf("%s rendered", a)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, objs, cfg)
			}
			dryRun(t, c, out, objs)
		})
	}
}

// chartAppVersion is the chart's appVersion, the image tag by default.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.Root(t), "deploy", "helm", "sworn", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion %q: %v", chart.AppVersion, err)
	}
	return chart.AppVersion
}

func helmCases(t *testing.T) []helmCase {
	t.Helper()
	caPEM := string(testutil.NewCA(t, nil).CertPEM())
	fingerprint := strings.Repeat("ab", 32)
	return []helmCase{
		{name: "default", caType: "local",
			want:   []string{"ServiceAccount sworn-agent", "ClusterRole sworn-agent", "ClusterRoleBinding sworn-agent", "DaemonSet sworn-agent", "CustomResourceDefinition clusterspiffeids.spire.spiffe.io"},
			absent: []string{"ServiceAccount sworn-vault-reviewer", "CSIDriver csi.spiffe.io", "PodMonitor sworn-agent"},
			check: func(t *testing.T, objs []manifest, cfg *config.Config) {
				if c := cfg.Kubernetes.ClusterSPIFFEIDs; !c.Enabled || strings.Join(c.IgnoreNamespaces, ",") != "kube-system,kube-public,spire-system" {
					t.Errorf("kubernetes.cluster_spiffeids = %+v, want enabled, ignoring kube-system, kube-public and spire-system", c)
				}
				ds := find(t, objs, "DaemonSet", "sworn-agent").Spec.Template.Spec
				if want := "ghcr.io/sworn-id/sworn:" + chartAppVersion(t); ds.Containers[0].Image != want {
					t.Errorf("image %q, want %q (the appVersion)", ds.Containers[0].Image, want)
				}
				if len(ds.Tolerations) != 1 || len(ds.Tolerations[0]) != 1 || ds.Tolerations[0]["operator"] != "Exists" {
					t.Errorf("tolerations %v, want [{operator: Exists}]", ds.Tolerations)
				}
			}},
		{name: "cluster spiffeids of one class", caType: "local",
			args: []string{"--set", "kubernetes.clusterSPIFFEIDs.className=team-a", "--set", "kubernetes.clusterSPIFFEIDs.clusterName=prod-1"},
			check: func(t *testing.T, _ []manifest, cfg *config.Config) {
				if c := cfg.Kubernetes.ClusterSPIFFEIDs; c.ClassName != "team-a" || c.WatchClassless || c.ClusterName != "prod-1" {
					t.Errorf("kubernetes.cluster_spiffeids = %+v", c)
				}
			}},
		{name: "vault kubernetes auth", caType: "vault",
			values: "ca:\n  backend: vault\n  vault:\n    address: https://vault.vault.svc:8200\n    caCert: |\n" + indent(caPEM, "      "),
			want:   []string{"ServiceAccount sworn-vault-reviewer", "ClusterRoleBinding sworn-vault-reviewer"},
			check: func(t *testing.T, objs []manifest, c *config.Config) {
				v := c.CA.Vault
				if v.Auth.Method != "kubernetes" || v.Auth.JWTFile != "/var/run/secrets/tokens/vault" || v.CACertFile != "/etc/sworn/vault-ca.pem" {
					t.Errorf("vault config %+v", v)
				}
				if got := find(t, objs, "ConfigMap", "sworn-agent").Data["vault-ca.pem"]; strings.TrimSpace(got) != strings.TrimSpace(caPEM) {
					t.Errorf("vault-ca.pem %q, want the caCert value", got)
				}
			}},
		{name: "vault approle", caType: "vault",
			args: []string{"--set", "ca.backend=vault,ca.vault.address=https://vault.example.org:8200,ca.vault.auth.method=approle," +
				"ca.vault.auth.roleID=sworn-agent,ca.vault.auth.existingSecret=sworn-approle"},
			absent: []string{"ServiceAccount sworn-vault-reviewer"},
			check: func(t *testing.T, _ []manifest, c *config.Config) {
				if a := c.CA.Vault.Auth; a.RoleID != "sworn-agent" || a.SecretIDFile != "/var/run/secrets/sworn/secret-id" || c.CA.Vault.CACertFile != "" {
					t.Errorf("vault config %+v", c.CA.Vault)
				}
			}},
		{name: "vault HA nodes", caType: "vault",
			args: []string{"--set", "ca.backend=vault,ca.vault.addresses={https://vault-0.vault:8200,https://vault-1.vault:8200,https://vault-2.vault:8200}"},
			check: func(t *testing.T, _ []manifest, c *config.Config) {
				if a := c.CA.Vault.Addresses; len(a) != 3 || a[2] != "https://vault-2.vault:8200" || c.CA.Vault.Address != "" {
					t.Errorf("vault addresses %v, address %q; want the three nodes and no address", a, c.CA.Vault.Address)
				}
			}},
		{name: "stepca", caType: "stepca",
			args: []string{"--set", "ca.backend=stepca,ca.stepca.url=https://ca.example.org:9000,ca.stepca.rootFingerprint=" + fingerprint +
				",ca.stepca.provisioner=sworn,ca.stepca.passwordSecret=sworn-stepca"},
			check: func(t *testing.T, _ []manifest, c *config.Config) {
				if s := c.CA.StepCA; s.RootFingerprint != fingerprint || s.PasswordFile != "/var/run/secrets/sworn/password" {
					t.Errorf("stepca config %+v", s)
				}
			}},
		{name: "csi", caType: "local", args: []string{"--set", "csi.enabled=true,socketHostDir=/run/sworn-x"},
			want: []string{"CSIDriver csi.spiffe.io", "DaemonSet sworn-spiffe-csi-driver"}, check: checkCSI},
		{name: "monitors and values", caType: "local", args: []string{"--api-versions", "monitoring.coreos.com/v1"},
			values: helmValuesFile, want: []string{"PodMonitor sworn-agent", "ServiceMonitor sworn-agent", "Service sworn-agent-metrics"},
			check: checkValues},
	}
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+prefix) + "\n"
}

// checkCSI: the driver's -workload-api-socket-dir is where its container
// mounts the node directory sworn's DaemonSet puts its socket in.
func checkCSI(t *testing.T, objs []manifest, _ *config.Config) {
	t.Helper()
	checkCSIDriver(t, objs, "sworn-spiffe-csi-driver", "/run/sworn-x")
}

// checkCSIDriver checks that the CSI driver DaemonSet csiName hands pods
// hostDir, the node directory of sworn's socket.
func checkCSIDriver(t *testing.T, objs []manifest, csiName, hostDir string) {
	t.Helper()
	find(t, objs, "CSIDriver", "csi.spiffe.io")
	nodeDir := func(spec manifest, volume string) string {
		for _, v := range spec.Spec.Template.Spec.Volumes {
			if v.Name == volume && v.HostPath != nil {
				return v.HostPath.Path
			}
		}
		return ""
	}
	agent, csi := find(t, objs, "DaemonSet", "sworn-agent"), find(t, objs, "DaemonSet", csiName)
	if got := nodeDir(agent, "sockets"); got != hostDir {
		t.Fatalf("agent's socket directory %q, want %s", got, hostDir)
	}
	driver := csi.Spec.Template.Spec.Containers[0]
	i := slices.Index(driver.Args, "-workload-api-socket-dir")
	if i < 0 || i+1 == len(driver.Args) {
		t.Fatalf("driver args %v have no -workload-api-socket-dir", driver.Args)
	}
	for _, m := range driver.VolumeMounts {
		if m.MountPath == driver.Args[i+1] {
			if got := nodeDir(csi, m.Name); got != hostDir {
				t.Errorf("-workload-api-socket-dir %s is node directory %q, want sworn's %s", m.MountPath, got, hostDir)
			}
			return
		}
	}
	t.Errorf("-workload-api-socket-dir %s is no volume mount of the driver", driver.Args[i+1])
}

const helmValuesFile = `
image: {repository: registry.example/sworn, tag: v9.9.9}
trustDomain: prod.example.org
rules:
  - spiffe_id: spiffe://prod.example.org/app/{k8s:pod-label:app}
    selectors: ["k8s:ns:prod"]
tolerations: [{key: dedicated, operator: Equal, value: sworn, effect: NoSchedule}]
nodeSelector: {pool: general}
priorityClassName: ""
extraVolumes: [{name: extra, emptyDir: {}}]
extraVolumeMounts: [{name: extra, mountPath: /extra}]
agentConfig: {limits: {max_connections_per_uid: 64}}
metrics: {serviceMonitor: {enabled: true}}
`

// checkValues: the values file's settings reach the DaemonSet and agent.yaml.
func checkValues(t *testing.T, objs []manifest, c *config.Config) {
	t.Helper()
	ds := find(t, objs, "DaemonSet", "sworn-agent").Spec.Template.Spec
	agent := ds.Containers[0]
	if agent.Image != "registry.example/sworn:v9.9.9" || len(ds.Tolerations) != 1 || ds.Tolerations[0]["key"] != "dedicated" {
		t.Errorf("image %q, tolerations %v", agent.Image, ds.Tolerations)
	}
	if !slices.ContainsFunc(agent.VolumeMounts, func(m struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	}) bool {
		return m.Name == "extra" && m.MountPath == "/extra"
	}) {
		t.Errorf("no extra volume mount in %v", agent.VolumeMounts)
	}
	if c.TrustDomain != "prod.example.org" || len(c.Rules) != 1 || c.Limits.MaxConnectionsPerUID != 64 {
		t.Errorf("trust domain %q, rules %v, max_connections_per_uid %d", c.TrustDomain, c.Rules, c.Limits.MaxConnectionsPerUID)
	}
}

func TestHelmChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  string
		want []string // in the renderer's error, in this order
	}{
		{name: "unknown backend", set: "ca.backend=nosuch", want: []string{"ca/backend", "local", "vault", "stepca"}},
		{name: "vault without address", set: "ca.backend=vault", want: []string{"ca/vault", "address"}},
		{name: "vault with address and addresses", set: "ca.backend=vault,ca.vault.address=https://lb:8200,ca.vault.addresses={https://n1:8200}", want: []string{"ca/vault"}},
		{name: "stepca with two roots", set: "ca.backend=stepca,ca.stepca.url=https://ca:9000,ca.stepca.provisioner=p,ca.stepca.passwordSecret=s," +
			"ca.stepca.rootFingerprint=" + strings.Repeat("0", 64) + ",ca.stepca.rootCert=-----BEGIN CERTIFICATE-----",
			want: []string{"give exactly one of rootFingerprint and rootCert"}},
		{name: "approle without secret", set: "ca.backend=vault,ca.vault.address=https://v:8200,ca.vault.auth.method=approle,ca.vault.auth.roleID=r",
			want: []string{"ca.vault.auth.existingSecret is required"}},
		{name: "trust domain", set: "trustDomain=Example.ORG", want: []string{"trustDomain"}},
		{name: "misspelt value", set: "tolerration=x", want: []string{"tolerration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helmRender(t, testKubeVersion, "--set", tc.set)
			if err == nil {
				t.Fatalf("rendered:\n%s", out)
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q does not say %q", msg, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

// TestHelmChartNotes: NOTES.txt tells the operator how to check the
// install and, for Vault's kubernetes auth, the reviewer token step.
func TestHelmChartNotes(t *testing.T) {
	notes, err := helmRender(t, testKubeVersion, "--notes", "--set", "ca.backend=vault,ca.vault.address=https://vault:8200")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kubectl -n sworn rollout status ds/sworn-agent",
		"kubectl -n sworn create token sworn-vault-reviewer",
		"--bound-service-account sworn/sworn-agent",
		"sworn debug attest --pid <pid>",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt does not say %q:\n%s", want, notes)
		}
	}
}

// TestHelmChartShipsTheBasesCRD: Helm installs CRDs only from the chart's
// crds/ and kustomize reads only inside its base, so the CRD is in both;
// they must stay one CRD.
func TestHelmChartShipsTheBasesCRD(t *testing.T) {
	root := testutil.Root(t)
	base, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", "base", "crd-clusterspiffeid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	chart, err := os.ReadFile(filepath.Join(root, "deploy", "helm", "sworn", "crds", "clusterspiffeid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(base) != string(chart) {
		t.Fatal("deploy/helm/sworn/crds/clusterspiffeid.yaml differs from deploy/kubernetes/base/crd-clusterspiffeid.yaml; copy the base's over it")
	}
}
