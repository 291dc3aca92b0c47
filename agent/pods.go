package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sworn-id/sworn/agent/attest"
	"github.com/sworn-id/sworn/agent/config"
)

// podSource builds the configured pod source. run, if not nil, must run
// for the source to stay current; synced reports when it has its first
// view of the node's pods. rc, with the apiserver source, is the API
// server's config, for whoever else watches it (the ClusterSPIFFEID
// controller), so the credentials are read once.
func podSource(k config.Kubernetes) (src attest.PodSource, run func(context.Context), synced func() bool, rc *rest.Config, err error) {
	switch k.PodSource {
	case "apiserver":
		rc, err := restConfig(k.Kubeconfig)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("agent: kubernetes client: %w", err)
		}
		inf, err := attest.NewInformerSource(client, k.NodeName)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		return inf, inf.Run, inf.HasSynced, rc, nil
	case "kubelet":
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.Kubelet.InsecureSkipVerify} //nolint:gosec // opt-in, documented
		if k.Kubelet.CAFile != "" {
			pem, err := os.ReadFile(k.Kubelet.CAFile)
			if err != nil {
				return nil, nil, nil, nil, fmt.Errorf("agent: kubelet ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, nil, nil, fmt.Errorf("agent: kubelet ca_file %s has no certificate", k.Kubelet.CAFile)
			}
			tlsCfg.RootCAs = pool
		}
		src := &attest.KubeletSource{
			URL:       k.Kubelet.URL,
			Client:    &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}},
			TokenFile: k.Kubelet.TokenFile,
			TTL:       k.Kubelet.CacheTTL,
		}
		return src, nil, func() bool { return true }, nil, nil
	}
	return nil, nil, nil, nil, fmt.Errorf("agent: unknown pod source %q", k.PodSource)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("agent: kubeconfig: %w", err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("agent: in-cluster kubernetes config (set kubernetes.kubeconfig outside a pod): %w", err)
	}
	return c, nil
}
