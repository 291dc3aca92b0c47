package attest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/peer"
)

const (
	podUID = "2c48913c-b29f-11e7-9350-020968147796"
	cid    = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961"
)

// fakeKubelet is a stand-in for the kubelet's /pods endpoint: it serves a
// PodList built from k8s.io/api types, as the real one does, and counts
// requests. It is not a kubelet.
type fakeKubelet struct {
	mu       sync.Mutex
	pods     []corev1.Pod
	requests atomic.Int32
}

func (f *fakeKubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.URL.Path != "/pods" || r.Header.Get("Authorization") != "Bearer node-token" {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: f.pods}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

func (f *fakeKubelet) set(pods ...corev1.Pod) {
	f.mu.Lock()
	f.pods = pods
	f.mu.Unlock()
}

func webPod(node string, withContainer bool) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-7d4b9", Namespace: "prod", UID: types.UID(podUID),
			Labels:          map[string]string{"app": "web", "tier": "front"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-7d4b"}},
		},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "api", Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/acme/web:1.2"}}},
	}
	if withContainer {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "ghcr.io/acme/web:1.2", ContainerID: "containerd://" + cid}}
	}
	return p
}

// procRoot makes a fixture /proc with one pid whose cgroup file is fixture.
func procRoot(t *testing.T, pid int, fixture string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "cgroup", fixture))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func newKubelet(t *testing.T, pods ...corev1.Pod) (*fakeKubelet, *attest.KubeletSource) {
	t.Helper()
	fk := &fakeKubelet{}
	fk.set(pods...)
	srv := httptest.NewTLSServer(fk)
	t.Cleanup(srv.Close)
	token := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(token, []byte("node-token\n"), 0o600)
	return fk, &attest.KubeletSource{URL: srv.URL, Client: srv.Client(), TokenFile: token, TTL: time.Minute}
}

func TestKubernetesSelectors(t *testing.T) {
	_, src := newKubelet(t, webPod("node-a", true))
	k := &attest.Kubernetes{Source: src, NodeName: "node-a", ProcRoot: procRoot(t, 4242, "v2-systemd-containerd-burstable"), Retries: 1, RetryInterval: time.Millisecond}
	sel, err := k.Attest(context.Background(), peer.Caller{PID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	got := attest.NewSet(sel...).Strings()
	want := []string{
		"k8s:container-image:ghcr.io/acme/web:1.2", "k8s:container-name:app", "k8s:node-name:node-a", "k8s:ns:prod",
		"k8s:pod-label:app:web", "k8s:pod-label:tier:front", "k8s:pod-name:web-7d4b9", "k8s:pod-owner:ReplicaSet:web-7d4b",
		"k8s:pod-uid:" + podUID, "k8s:sa:api",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("selectors\n got %v\nwant %v", got, want)
	}
}

func TestKubernetesNoSelectors(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		pods    []corev1.Pod
	}{
		{name: "host process", fixture: "v2-host-process", pods: []corev1.Pod{webPod("node-a", true)}},
		{name: "CRI-O conmon", fixture: "v2-systemd-crio-conmon", pods: []corev1.Pod{webPod("node-a", true)}},
		{name: "pod of another node", fixture: "v1-cgroupfs-guaranteed", pods: []corev1.Pod{webPod("node-b", true)}},
		{name: "pod unknown to this node", fixture: "v1-cgroupfs-guaranteed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, src := newKubelet(t, tt.pods...)
			k := &attest.Kubernetes{Source: src, NodeName: "node-a", ProcRoot: procRoot(t, 7, tt.fixture), Retries: 2, RetryInterval: time.Millisecond}
			sel, err := k.Attest(context.Background(), peer.Caller{PID: 7})
			if err != nil || len(sel) != 0 {
				t.Fatalf("Attest = %v, %v; want no selectors and no error", sel, err)
			}
		})
	}
}

func TestKubernetesWaitsBrieflyForANewContainer(t *testing.T) {
	fk, src := newKubelet(t, webPod("node-a", false))
	src.MinRefresh = time.Millisecond
	k := &attest.Kubernetes{Source: src, NodeName: "node-a", ProcRoot: procRoot(t, 9, "v2-cgroupfs-containerd"), Retries: 3, RetryInterval: 5 * time.Millisecond}
	if _, err := k.Attest(context.Background(), peer.Caller{PID: 9}); !errors.Is(err, attest.ErrContainerNotListed) {
		t.Fatalf("container never listed: %v, want ErrContainerNotListed", err)
	}

	fk.set(webPod("node-a", false))
	go func() {
		time.Sleep(20 * time.Millisecond)
		fk.set(webPod("node-a", true))
	}()
	k.Retries, k.RetryInterval = 200, 5*time.Millisecond
	sel, err := k.Attest(context.Background(), peer.Caller{PID: 9})
	if err != nil || len(sel) == 0 {
		t.Fatalf("container listed after a moment: %v, %v", sel, err)
	}
}

func TestKubeletSourceSharesOneRequest(t *testing.T) {
	fk, src := newKubelet(t, webPod("node-a", true))
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, err := src.Pod(context.Background(), podUID); !ok || err != nil {
				t.Error(ok, err)
			}
		}()
	}
	wg.Wait()
	if n := fk.requests.Load(); n != 1 {
		t.Fatalf("20 concurrent lookups made %d kubelet requests, want 1", n)
	}
}

// A connection's cgroup is read on its first call only (a process cannot
// leave its pod's cgroup without privileges over the node), but its pod
// is looked up on every call, so a label change reaches the next call.
func TestKubernetesReadsTheCgroupOncePerConnection(t *testing.T) {
	fk, src := newKubelet(t, webPod("node-a", true))
	clk := clocktesting.NewFakeClock(time.Now())
	src.Clock = clk
	root := procRoot(t, 4242, "v2-systemd-containerd-burstable")
	k := &attest.Kubernetes{Source: src, NodeName: "node-a", ProcRoot: root, Retries: 1, RetryInterval: time.Millisecond}
	caller := peer.Caller{PID: 4242, Memo: &peer.Memo{}}
	if _, err := k.Attest(context.Background(), caller); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "4242", "cgroup")); err != nil {
		t.Fatal(err)
	}
	relabelled := webPod("node-a", true)
	relabelled.Labels["tier"] = "back"
	fk.set(relabelled)
	clk.Step(src.TTL) // the kubelet source's cached answer is too old
	sel, err := k.Attest(context.Background(), caller)
	if err != nil {
		t.Fatalf("second call on the connection read the cgroup again: %v", err)
	}
	if got := attest.NewSet(sel...).Strings(); !slices.Contains(got, "k8s:pod-label:tier:back") {
		t.Fatalf("second call's selectors %v lack the pod's new label", got)
	}
	if _, err := k.Attest(context.Background(), peer.Caller{PID: 4242, Memo: &peer.Memo{}}); err == nil {
		t.Fatal("a new connection did not read the cgroup")
	}
}
