package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/clusterspiffeid"
	"github.com/sworn-id/sworn/agent/config"
)

// clusterSPIFFEIDs starts the ClusterSPIFFEID controller beside the pod
// watch it shares, on the pod source's API server config: run runs both,
// synced is true once both have their first view.
func (a *Agent) clusterSPIFFEIDs(k config.Kubernetes, rc *rest.Config, pods *attest.InformerSource) (run func(context.Context), synced func() bool, err error) {
	c := k.ClusterSPIFFEIDs
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: kubernetes client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: kubernetes client: %w", err)
	}
	ignored, err := c.IgnoredNamespaces()
	if err != nil {
		return nil, nil, fmt.Errorf("agent: kubernetes.cluster_spiffeids.ignore_namespaces: %w", err)
	}
	m := a.metrics.ClusterSPIFFEIDs
	ctl, err := clusterspiffeid.New(clusterspiffeid.Config{
		Options: clusterspiffeid.Options{TrustDomain: a.cfg.TrustDomainID(), ClusterName: c.ClusterName, ClusterDomain: c.ClusterDomain, JWTTTL: a.cfg.SVID.JWTTTL},
		Dynamic: dyn, Kube: kube, NodeName: k.NodeName, Pods: pods, Sink: a.registry,
		DefaultTTL: a.cfg.SVID.TTL, ClassName: c.ClassName, WatchClassless: c.WatchClassless, IgnoreNamespaces: ignored,
		StatusDelay: *c.StatusDelay, Rand: rand.Float64, Logger: a.log.With("component", "clusterspiffeid"),
		Observe: func(s clusterspiffeid.Stats) {
			m.WithLabelValues("accepted").Set(float64(s.Accepted))
			m.WithLabelValues("refused").Set(float64(s.Refused))
			m.WithLabelValues("rules").Set(float64(s.Rules))
			m.WithLabelValues("render_failures").Set(float64(s.RenderFailures))
			m.WithLabelValues("other_class").Set(float64(s.OtherClass))
			m.WithLabelValues("masked").Set(float64(s.Masked))
		},
		OnStatus: func(result string) { a.metrics.ClusterSPIFFEIDStatus.WithLabelValues(result).Inc() },
	})
	if err != nil {
		return nil, nil, err
	}
	run = func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() { ctl.Run(ctx) })
		pods.Run(ctx)
		wg.Wait()
	}
	return run, ctl.HasSynced, nil
}
