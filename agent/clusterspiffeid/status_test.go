package clusterspiffeid_test

import (
	"context"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/clusterspiffeid"
	"github.com/sworn-id/sworn/agent/k8stest"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/internal/testutil"
)

// countingDynamic counts UpdateStatus calls: what each agent costs the
// API server.
type countingDynamic struct {
	dynamic.Interface
	n *atomic.Int32
}

func (c countingDynamic) Resource(r schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return countingResource{c.Interface.Resource(r), c.n}
}

type countingResource struct {
	dynamic.NamespaceableResourceInterface
	n *atomic.Int32
}

func (c countingResource) UpdateStatus(ctx context.Context, u *unstructured.Unstructured, o metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	c.n.Add(1)
	return c.NamespaceableResourceInterface.UpdateStatus(ctx, u, o)
}

type noPods struct{}

func (noPods) Pods() []*corev1.Pod   { return nil }
func (noPods) OnChange(func()) error { return nil }
func (noPods) HasSynced() bool       { return true }

type nullSink struct{}

func (nullSink) SetCluster([]registry.Compiled) {}

// TestOneAgentOfManyWritesTheStatus: four agents reach the same verdict
// on a malformed object; the one whose random delay ends first writes it,
// and the others, waking later, find it written and do not write.
func TestOneAgentOfManyWritesTheStatus(t *testing.T) {
	c := k8stest.Start(t)
	for _, args := range [][]string{
		{"apply", "-f", "../../deploy/kubernetes/base/crd-clusterspiffeid.yaml"},
		{"wait", "--for=condition=Established", "crd/clusterspiffeids.spire.spiffe.io", "--timeout=60s"},
	} {
		if out, err := exec.Command(c.Kubectl, append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	dyn, err := dynamic.NewForConfig(c.AdminConfig)
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	var updates atomic.Int32
	results := make(chan string, 16)
	reconciles := make([]atomic.Int32, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := range 4 {
		ctl, err := clusterspiffeid.New(clusterspiffeid.Config{
			Options: opts, Dynamic: countingDynamic{dyn, &updates}, Kube: c.Admin, NodeName: "node-a", Pods: noPods{}, Sink: nullSink{},
			DefaultTTL: time.Hour, StatusDelay: 8 * time.Second, Rand: func() float64 { return float64(i) / 4 }, Clock: clk,
			Observe:  func(clusterspiffeid.Stats) { reconciles[i].Add(1) },
			OnStatus: func(r string) { results <- r },
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { ctl.Run(ctx) })
	}
	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID", "metadata": map[string]any{"name": "bad"},
		"spec": map[string]any{"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/x", "ttl": "10s"},
	}}
	if _, err := dyn.Resource(clusterspiffeid.Resource).Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every agent waits on the clock: the first for 0 s, the others 2, 4, 6.
	testutil.Eventually(t, "all four agents to wait to write", func() bool { return clk.Waiters() >= 4 })
	// The write's watch event makes every agent reconcile again, which
	// shows its view holds the status.
	seen := make([]int32, 4)
	for i := range reconciles {
		seen[i] = reconciles[i].Load()
	}
	clk.Step(time.Millisecond)
	if r := result(t, results); r != "written" {
		t.Fatalf("the first agent's write: %s", r)
	}
	u, err := dyn.Resource(clusterspiffeid.Resource).Get(ctx, "bad", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	if len(conds) != 1 || conds[0].(map[string]any)["reason"] != clusterspiffeid.ReasonInvalid {
		t.Fatalf("status conditions = %v, want one InvalidSpec", conds)
	}
	testutil.Eventually(t, "every agent to see the written status", func() bool {
		for i := range reconciles {
			if reconciles[i].Load() <= seen[i] {
				return false
			}
		}
		return true
	})
	clk.Step(8 * time.Second)
	for range 3 {
		if r := result(t, results); r != "skipped" {
			t.Fatalf("a later agent's write: %s, want skipped (it was written)", r)
		}
	}
	if n := updates.Load(); n != 1 {
		t.Fatalf("%d status writes reached the API server, want 1", n)
	}
}

func result(t *testing.T, results <-chan string) string {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("no status write ended")
		return ""
	}
}
