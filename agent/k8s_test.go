package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sworn-id/sworn/agent/clusterspiffeid"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/k8stest"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

const testContainerID = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961"

// kubectl runs the cluster's kubectl as admin.
func kubectl(t *testing.T, c *k8stest.Cluster, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.Kubectl, append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func kustomize(t *testing.T, c *k8stest.Cluster, dir string) string {
	t.Helper()
	return kubectl(t, c, "", "kustomize", filepath.Join("..", "deploy", "kubernetes", dir))
}

// TestManifestsPassServerSideDryRun builds the kustomize base and every
// overlay, loads each one's agent config as the agent would, checks the
// agent tolerates every taint and the CSI overlays carry the driver, and
// has the API server accept every object.
func TestManifestsPassServerSideDryRun(t *testing.T) {
	c := k8stest.Start(t)
	kubectl(t, c, "", "create", "namespace", "sworn")
	for _, tc := range []struct {
		dir string
		csi bool
	}{{"base", false}, {"overlays/vault", false}, {"overlays/csi", true}, {"overlays/istio", true}} {
		t.Run(tc.dir, func(t *testing.T) {
			out := kustomize(t, c, tc.dir)
			objs := manifests(t, out)
			checkAgentConfig(t, objs)
			ds := find(t, objs, "DaemonSet", "sworn-agent").Spec.Template.Spec
			if len(ds.Tolerations) != 1 || len(ds.Tolerations[0]) != 1 || ds.Tolerations[0]["operator"] != "Exists" {
				t.Errorf("tolerations %v, want [{operator: Exists}]", ds.Tolerations)
			}
			if tc.csi {
				checkCSIDriver(t, objs, "spiffe-csi-driver", "/run/sworn")
			}
			dryRun(t, c, out, objs)
		})
	}
	workload, err := os.ReadFile("../deploy/kubernetes/examples/workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, string(workload), "apply", "--dry-run=server", "-f", "-")
}

// agentClient applies the base RBAC for real and returns a client and a
// kubeconfig that act as the agent's service account.
func agentClient(t *testing.T, c *k8stest.Cluster) (kubernetes.Interface, string) {
	t.Helper()
	objs := kustomize(t, c, "base")
	kubectl(t, c, objs, "apply", "-f", "-", "--selector", "app.kubernetes.io/name=sworn-agent", "--prune=false")
	kubeconfig := c.Kubeconfig(t, "sworn-agent", c.Token(t, "sworn", "sworn-agent"))
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return client, kubeconfig
}

func TestAgentRBACIsLeastPrivilege(t *testing.T) {
	c := k8stest.Start(t)
	client, kubeconfig := agentClient(t, c)
	kubectl(t, c, "", "wait", "--for=condition=Established", "crd/clusterspiffeids.spire.spiffe.io", "--timeout=60s")
	ctx := context.Background()
	if _, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"}); err != nil {
		t.Fatalf("the agent cannot list its node's pods: %v", err)
	}
	if _, err := client.CoreV1().Secrets("sworn").List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("the agent can read secrets")
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, metav1.CreateOptions{}); err == nil {
		t.Fatal("the agent can create pods")
	}
	// ClusterSPIFFEIDs: read, and write the status; never the spec.
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(clusterspiffeid.Resource).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("the agent cannot list ClusterSPIFFEIDs: %v", err)
	}
	if _, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("the agent cannot list namespaces: %v", err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID",
		"metadata": map[string]any{"name": "x"}, "spec": map[string]any{"spiffeIDTemplate": "spiffe://example.org/x"}}}
	if _, err := dyn.Resource(clusterspiffeid.Resource).Create(ctx, obj, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the agent creating a ClusterSPIFFEID: %v, want Forbidden", err)
	}
}

// podProcRoot makes a fixture /proc in which this test process's cgroup
// names the pod uid and the test container.
func podProcRoot(t testing.TB, uid string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/cri-containerd-%s.scope\n",
		strings.ReplaceAll(uid, "-", "_"), testContainerID)
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// runPod creates a pod on node-a and sets its container's ID through the
// status subresource, as the kubelet would.
func runPod(t testing.TB, c *k8stest.Cluster, ns, name, sa string, labels map[string]string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	_, _ = c.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	pod, err := c.Admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "node-a", ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "registry.example/app:1", ContainerID: "containerd://" + testContainerID}}
	if pod, err = c.Admin.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return pod
}

func k8sAgentConfig(t testing.TB, kubeconfig, procRoot string, rules ...config.Rule) *config.Config {
	t.Helper()
	cfg := newConfig(t, rules...)
	if len(rules) == 0 {
		cfg.Rules = nil
	}
	cfg.Kubernetes = config.Kubernetes{Enabled: true, NodeName: "node-a", Kubeconfig: kubeconfig, ProcRoot: procRoot}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPodGetsItsNamespaceAndServiceAccountIdentity(t *testing.T) {
	c := k8stest.Start(t)
	_, kubeconfig := agentClient(t, c)
	pod := runPod(t, c, "prod", "api-0", "api", map[string]string{"app": "orders"})
	cfg := k8sAgentConfig(t, kubeconfig, podProcRoot(t, string(pod.UID)),
		config.Rule{SPIFFEID: "spiffe://example.org/app/{k8s:pod-label:app}", Selectors: []string{"k8s:ns:prod"}})
	ta := startAgent(t, cfg)

	x509ctx, err := fetchX509(t, ta)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range x509ctx.SVIDs {
		ids = append(ids, s.ID.String())
	}
	if strings.Join(ids, " ") != "spiffe://example.org/ns/prod/sa/api spiffe://example.org/app/orders" {
		t.Fatalf("pod process got %v; want the default ns/sa identity and the label rule's", ids)
	}

	// Deleting the pod takes its identities away from new callers.
	if err := c.Admin.CoreV1().Pods("prod").Delete(context.Background(), "api-0", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the deleted pod to lose its identity", func() bool {
		_, err := fetchX509(t, ta)
		return err != nil && strings.Contains(err.Error(), "PermissionDenied")
	})
}

func TestVaultKubernetesAuthReviewsTheAgentsToken(t *testing.T) {
	c := k8stest.Start(t)
	kubectl(t, c, kustomize(t, c, "overlays/vault"), "apply", "-f", "-", "--selector", "app.kubernetes.io/name=sworn-agent")
	srv := vaulttest.Start(t)
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := vault.NewAdmin(srv.Client, "", "")
	if _, err := admin.Setup(context.Background(), vault.SetupOptions{
		TrustDomain: td, AuthMethod: vault.AuthKubernetes, BoundServiceAccount: "sworn/sworn-agent", Audience: "vault",
		KubernetesHost: c.Host, KubernetesCACert: string(caPEM), KubernetesReviewerJWT: c.Token(t, "sworn", "sworn-vault-reviewer"),
	}); err != nil {
		t.Fatal(err)
	}
	jwtFile := func(ns, sa string) string {
		p := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(p, []byte(c.Token(t, ns, sa, "vault")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v, err := vault.New(context.Background(), vault.Config{TrustDomain: td, Address: srv.Addr,
		Auth: vault.Auth{Method: vault.AuthKubernetes, Role: "sworn-agent", JWTFile: jwtFile("sworn", "sworn-agent")}})
	if err != nil {
		t.Fatalf("login with the agent's projected token: %v", err)
	}
	if v.Logins() != 1 || v.Health() != nil {
		t.Fatalf("logins %d, health %v: the agent's token was refused", v.Logins(), v.Health())
	}
	// Another service account's token passes the TokenReview but is not
	// bound to the role: Vault refuses it (403). That is a refusal, which
	// an operator must fix, and must not read as Vault being down.
	intruder, err := vault.New(context.Background(), vault.Config{TrustDomain: td, Address: srv.Addr,
		Auth: vault.Auth{Method: vault.AuthKubernetes, Role: "sworn-agent", JWTFile: jwtFile("default", "intruder")}})
	if err != nil {
		t.Fatalf("vault.New with a refused login: %v, want a CA that reports the refusal in Health", err)
	}
	if intruder.Logins() != 0 {
		t.Fatal("another service account's token logged in")
	}
	if h := intruder.Health(); !errors.Is(h, ca.ErrRefused) || errors.Is(h, ca.ErrUnavailable) {
		t.Fatalf("Health after the intruder's login: %v, want ca.ErrRefused and not ca.ErrUnavailable", h)
	}
}
