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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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

	"github.com/sworn-id/sworn/deploy/testbin"
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
	dir, err := os.MkdirTemp("", "k8s")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })

	etcdClient, etcdPeer := testbin.FreePort(tb), testbin.FreePort(tb)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	run(tb, dir, "etcd", testbin.Path(tb, "etcd", "SWORN_ETCD_BIN", "kube"),
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", etcdPeer),
		"--unsafe-no-fsync", "--log-level", "error")

	pki := newPKI(tb, dir)
	port := testbin.FreePort(tb)
	c := &Cluster{Host: fmt.Sprintf("https://127.0.0.1:%d", port), CAFile: pki.caFile, Kubectl: testbin.Path(tb, "kubectl", "SWORN_KUBECTL_BIN", "kube"), dir: dir}
	run(tb, dir, "kube-apiserver", testbin.Path(tb, "kube-apiserver", "SWORN_KUBE_APISERVER_BIN", "kube"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--tls-cert-file", pki.serverCert, "--tls-private-key-file", pki.serverKey,
		"--client-ca-file", pki.caFile,
		"--authorization-mode", "RBAC",
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
	c.Admin, err = kubernetes.NewForConfig(c.AdminConfig)
	if err != nil {
		tb.Fatal(err)
	}
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
	write := func(name string, blocks ...*pem.Block) string {
		var data []byte
		for _, b := range blocks {
			data = append(data, pem.EncodeToMemory(b)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			tb.Fatal(err)
		}
		return path
	}
	key := func() (*ecdsa.PrivateKey, *pem.Block) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return k, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	now := time.Now()
	caKey, _ := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "k8stest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, tmpl *x509.Certificate) (*pem.Block, *pem.Block) {
		k, kb := key()
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(serial), now.Add(-time.Hour), now.Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			tb.Fatal(err)
		}
		return &pem.Block{Type: "CERTIFICATE", Bytes: der}, kb
	}
	serverCert, serverKey := leaf(2, &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost", "kubernetes.default.svc"}})
	adminCert, adminKey := leaf(3, &x509.Certificate{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	saKey, saKeyBlock := key()
	saPubDER, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	return pki{
		caFile:     write("ca.crt", &pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		serverCert: write("server.crt", serverCert),
		serverKey:  write("server.key", serverKey),
		adminCert:  write("admin.crt", adminCert),
		adminKey:   write("admin.key", adminKey),
		saKey:      write("sa.key", saKeyBlock),
		saPub:      write("sa.pub", &pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
	}
}
