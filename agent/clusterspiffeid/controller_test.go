package clusterspiffeid_test

import (
	"context"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/clusterspiffeid"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/internal/testutil"
)

// fakePods stands in for the attestor's pod watch: a list the test sets,
// handed out in a new random order on every call, as client-go's store
// hands out its map.
type fakePods struct {
	mu     sync.Mutex
	pods   []*corev1.Pod
	change func()
}

func (f *fakePods) Pods() []*corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]*corev1.Pod(nil), f.pods...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
func (f *fakePods) OnChange(fn func()) error { f.change = fn; return nil }
func (f *fakePods) HasSynced() bool          { return true }

func (f *fakePods) set(pods ...*corev1.Pod) {
	f.mu.Lock()
	f.pods = pods
	f.mu.Unlock()
	f.change()
}

func pod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: labels},
		Spec: corev1.PodSpec{ServiceAccountName: "sa", NodeName: "node-a"}}
}

func cspiffeid(name string, created time.Time, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID",
		"metadata": map[string]any{"name": name, "uid": "uid-" + name, "generation": int64(1), "creationTimestamp": created.UTC().Format(time.RFC3339)},
		"spec":     spec,
	}}
}

// TestReconcileMasksFallsBackIgnoresAndKeepsStill runs the controller on
// fake API clients (a stand-in: the rules of one reconcile are what is
// under test here; the real API server's are in the agent's tests).
func TestReconcileMasksFallsBackIgnoresAndKeepsStill(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kube := kubefake.NewSimpleClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"env": "prod"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}})
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{clusterspiffeid.Resource: "ClusterSPIFFEIDList"},
		cspiffeid("named", t0, map[string]any{"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/named/{{ .PodMeta.Name }}", "podSelector": map[string]any{"matchLabels": map[string]any{"app": "x"}}}),
		cspiffeid("same-id-later", t0.Add(time.Hour), map[string]any{"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/named/{{ .PodMeta.Name }}", "ttl": "10m", "podSelector": map[string]any{"matchLabels": map[string]any{"app": "x"}}}),
		cspiffeid("catch-all", t0, map[string]any{"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/fallback", "fallback": true}))
	pods := &fakePods{}
	reg := registry.New(opts.TrustDomain, nil)
	var reconciles atomic.Int32
	var last atomic.Pointer[clusterspiffeid.Stats]
	ctl, err := clusterspiffeid.New(clusterspiffeid.Config{Options: opts, Dynamic: dyn, Kube: kube, NodeName: "node-a", Pods: pods, Sink: reg,
		DefaultTTL: time.Hour, IgnoreNamespaces: ignore(t, "kube-system"),
		Observe: func(s clusterspiffeid.Stats) { last.Store(&s); reconciles.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	pods.pods = []*corev1.Pod{pod("prod", "a", map[string]string{"app": "x"}), pod("prod", "b", nil), pod("kube-system", "k", map[string]string{"app": "x"})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ctl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	testutil.Eventually(t, "the first reconcile", func() bool { return reconciles.Load() > 0 })
	for name, want := range map[string]string{"a": "/named/a ttl=1h0m0s", "b": "/fallback ttl=1h0m0s", "k": ""} {
		if got := idsOf(t, reg, "uid-"+name); got != want {
			t.Errorf("pod %s: %q, want %q", name, got, want)
		}
	}
	if s := last.Load(); s.Masked != 1 || s.Accepted != 3 {
		t.Errorf("stats %+v, want 3 accepted and 1 masked (same-id-later for pod a)", *s)
	}

	// Events that change no rule, in a new order each time, tell no one.
	for i := range 5 {
		changed := reg.Changed()
		n := reconciles.Load()
		b := pod("prod", "b", nil)
		b.Status.Phase = corev1.PodPhase([]string{"Pending", "Running"}[i%2])
		pods.set(pods.pods[0], b, pods.pods[2])
		testutil.Eventually(t, "the reconcile after the pod event", func() bool { return reconciles.Load() > n })
		select {
		case <-changed:
			t.Fatalf("event %d changed no rule but woke every stream", i)
		default:
		}
	}
}

func ignore(t *testing.T, names ...string) []*regexp.Regexp {
	t.Helper()
	var out []*regexp.Regexp
	for _, n := range names {
		out = append(out, regexp.MustCompile("^(?:"+n+")$"))
	}
	return out
}

// idsOf is what a workload in the pod with uid gets, "path ttl=…" joined.
func idsOf(t *testing.T, reg *registry.Registry, uid string) string {
	t.Helper()
	entries, errs := reg.Match(attest.NewSet(attest.Selector{Type: "k8s", Value: "pod-uid:" + uid}))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.ID.Path()+" ttl="+e.TTL.String())
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
