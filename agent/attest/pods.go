package attest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

const uidIndex = "uid"

// InformerSource knows this node's pods from a watch on the API server
// limited to spec.nodeName, so a pod is known the moment it is scheduled,
// before any of its containers can call the agent.
type InformerSource struct {
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
}

// NewInformerSource watches the pods of nodeName.
func NewInformerSource(client kubernetes.Interface, nodeName string) (*InformerSource, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", nodeName).String()
	}))
	inf := f.Core().V1().Pods().Informer()
	if err := inf.AddIndexers(cache.Indexers{uidIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			return []string{string(p.UID)}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("attest: k8s: %w", err)
	}
	return &InformerSource{factory: f, informer: inf}, nil
}

// Run watches until ctx ends.
func (s *InformerSource) Run(ctx context.Context) {
	s.factory.Start(ctx.Done())
	<-ctx.Done()
	s.factory.Shutdown()
}

// WaitForSync waits for the first list of pods.
func (s *InformerSource) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.informer.HasSynced)
}

// Pod implements PodSource.
func (s *InformerSource) Pod(_ context.Context, uid string) (*corev1.Pod, bool, error) {
	objs, err := s.informer.GetIndexer().ByIndex(uidIndex, uid)
	if err != nil || len(objs) == 0 {
		return nil, false, err
	}
	return objs[0].(*corev1.Pod), true, nil
}

// KubeletSource asks the kubelet's /pods endpoint (secure port, bearer
// token), keeping the answer for TTL and sharing one request among
// concurrent callers. A pod missing from a cached answer causes a fresh
// request, at most every MinRefresh, since it may have just started.
type KubeletSource struct {
	URL        string // e.g. https://$NODE_NAME:10250
	Client     *http.Client
	TokenFile  string // read at every request: projected tokens rotate
	TTL        time.Duration
	MinRefresh time.Duration
	Clock      clock.Clock

	group   singleflight.Group
	mu      sync.Mutex
	pods    map[string]*corev1.Pod
	fetched time.Time
	stale   bool
}

// MarkStale makes the next lookup ask the kubelet again (at most every
// MinRefresh), for a container that started after the cached answer.
func (s *KubeletSource) MarkStale() {
	s.mu.Lock()
	s.stale = true
	s.mu.Unlock()
}

// Pod implements PodSource.
func (s *KubeletSource) Pod(ctx context.Context, uid string) (*corev1.Pod, bool, error) {
	clk := s.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	ttl, minRefresh := s.TTL, s.MinRefresh
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	if minRefresh <= 0 {
		minRefresh = 100 * time.Millisecond
	}
	s.mu.Lock()
	pod, ok := s.pods[uid]
	age := clk.Since(s.fetched)
	fresh := s.pods != nil && (age < minRefresh || (ok && !s.stale && age < ttl))
	s.mu.Unlock()
	if fresh {
		return pod, ok, nil
	}
	_, err, _ := s.group.Do("pods", func() (any, error) { return nil, s.fetch(ctx, clk) })
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pod, ok = s.pods[uid]
	return pod, ok, nil
}

func (s *KubeletSource) fetch(ctx context.Context, clk clock.Clock) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.URL, "/")+"/pods", nil)
	if err != nil {
		return err
	}
	if s.TokenFile != "" {
		token, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return fmt.Errorf("kubelet token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("kubelet /pods: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("kubelet /pods: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var list corev1.PodList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return fmt.Errorf("kubelet /pods: %w", err)
	}
	pods := make(map[string]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[string(list.Items[i].UID)] = &list.Items[i]
	}
	s.mu.Lock()
	s.pods, s.fetched, s.stale = pods, clk.Now(), false
	s.mu.Unlock()
	return nil
}

// Pods returns the node's pods as last seen. They are the watch's own
// objects: callers must not change them.
func (s *InformerSource) Pods() []*corev1.Pod {
	objs := s.informer.GetStore().List()
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

// OnChange calls f after every change to the node's pods, for whoever
// derives state from them (the ClusterSPIFFEID controller).
func (s *InformerSource) OnChange(f func()) error {
	_, err := s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { f() },
		UpdateFunc: func(any, any) { f() },
		DeleteFunc: func(any) { f() },
	})
	if err != nil {
		return fmt.Errorf("attest: k8s: %w", err)
	}
	return nil
}

// HasSynced reports whether the first list of pods is in.
func (s *InformerSource) HasSynced() bool { return s.informer.HasSynced() }
