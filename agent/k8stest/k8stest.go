// Package k8stest runs a real Kubernetes control plane for tests: etcd
// v3.7.3 and kube-apiserver v1.37.2 on loopback, with RBAC enforced,
// service-account tokens signed by the API server (TokenRequest) and
// validated by it (TokenReview). There is no kubelet, scheduler or
// controller manager: tests create pods with spec.nodeName set, patch their
// status through the status subresource, and delete them with grace
// period 0.
//
// The binaries are the ones `make kube` builds into .bin (pinned in
// deploy/kubernetes/testbin); SWORN_ETCD_BIN, SWORN_KUBE_APISERVER_BIN and
// SWORN_KUBECTL_BIN override them. A missing binary fails the test.
package k8stest

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sworn-id/sworn/internal/testutil"
)

// Cluster is a running control plane.
type Cluster struct {
	Host   string // https://127.0.0.1:port
	CAFile string // verifies the API server
	Admin  kubernetes.Interface
	// AdminConfig is system:masters, for anything a test needs.
	AdminConfig *rest.Config
	// Kubectl is the path of a kubectl of the same version.
	Kubectl string
	// AdminKubeconfig is a kubeconfig file for AdminConfig.
	AdminKubeconfig string
	dir             string
}

// Start runs etcd and kube-apiserver until the test ends.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	dir := testutil.ShortTempDir(tb, "k8s")

	etcdClient, etcdPeer := testutil.FreePort(tb), testutil.FreePort(tb)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	run(tb, dir, "etcd", testutil.Bin(tb, "etcd", "SWORN_ETCD_BIN", "kube"),
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", etcdPeer),
		"--unsafe-no-fsync", "--log-level", "error")

	pki := newPKI(tb, dir)
	port := testutil.FreePort(tb)
	c := &Cluster{Host: fmt.Sprintf("https://127.0.0.1:%d", port), CAFile: pki.caFile, Kubectl: testutil.Bin(tb, "kubectl", "SWORN_KUBECTL_BIN", "kube"), dir: dir}
	run(tb, dir, "kube-apiserver", testutil.Bin(tb, "kube-apiserver", "SWORN_KUBE_APISERVER_BIN", "kube"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--tls-cert-file", pki.serverCert, "--tls-private-key-file", pki.serverKey,
		"--client-ca-file", pki.caFile,
		"--authorization-mode", "RBAC",
		// As kubeadm and managed clusters run it: CSI node plugins such as
		// the SPIFFE CSI driver (overlays/istio) need privileged pods.
		"--allow-privileged=true",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", pki.saPub,
		"--service-account-signing-key-file", pki.saKey,
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false",
		"--disable-admission-plugins", "ServiceAccount",
		"--cert-dir", filepath.Join(dir, "certs"),
		"-v", "0")

	c.AdminConfig = &rest.Config{
		Host:            c.Host,
		TLSClientConfig: rest.TLSClientConfig{CAFile: pki.caFile, CertFile: pki.adminCert, KeyFile: pki.adminKey},
		QPS:             100, Burst: 200,
	}
	admin, err := kubernetes.NewForConfig(c.AdminConfig)
	if err != nil {
		tb.Fatal(err)
	}
	c.Admin = admin
	c.AdminKubeconfig = c.writeKubeconfig(tb, "admin", fmt.Sprintf("client-certificate: %s\n    client-key: %s", pki.adminCert, pki.adminKey))
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		body, err := c.Admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil && bytes.Equal(bytes.TrimSpace(body), []byte("ok")) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kube-apiserver not ready: %v %s\n%s", err, body, tail(filepath.Join(dir, "kube-apiserver.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

// Token returns a service-account token from the TokenRequest API.
func (c *Cluster) Token(tb testing.TB, namespace, name string, audiences ...string) string {
	tb.Helper()
	ctx := context.Background()
	_, _ = c.Admin.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	exp := int64(3600)
	tr, err := c.Admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("token for %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// Kubeconfig writes a kubeconfig that authenticates with token.
func (c *Cluster) Kubeconfig(tb testing.TB, name, token string) string {
	tb.Helper()
	return c.writeKubeconfig(tb, name, "token: "+token)
}

func (c *Cluster) writeKubeconfig(tb testing.TB, name, user string) string {
	tb.Helper()
	path := filepath.Join(c.dir, name+".kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    %s
contexts:
- name: test
  context: {cluster: test, user: %s}
current-context: test
`, c.Host, c.CAFile, name, user, name)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func run(tb testing.TB, dir, name, bin string, args ...string) {
	tb.Helper()
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		log.Close()
	})
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// pki holds the test cluster's certificates and keys, as files.
type pki struct {
	caFile, serverCert, serverKey, adminCert, adminKey, saKey, saPub string
}

func newPKI(tb testing.TB, dir string) pki {
	tb.Helper()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			tb.Fatal(err)
		}
		return path
	}
	ca := testutil.NewCA(tb, &x509.Certificate{Subject: pkix.Name{CommonName: "k8stest CA"}})
	server := ca.Issue(tb, &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost", "kubernetes.default.svc"}})
	admin := ca.Issue(tb, &x509.Certificate{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	sa := &testutil.Cert{Key: testutil.NewKey(tb)}
	saPubDER, err := x509.MarshalPKIXPublicKey(&sa.Key.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return pki{
		caFile:     write("ca.crt", ca.CertPEM()),
		serverCert: write("server.crt", server.CertPEM()),
		serverKey:  write("server.key", server.KeyPEM(tb)),
		adminCert:  write("admin.crt", admin.CertPEM()),
		adminKey:   write("admin.key", admin.KeyPEM(tb)),
		saKey:      write("sa.key", sa.KeyPEM(tb)),
		saPub:      write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER})),
	}
}
