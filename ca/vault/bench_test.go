package vault_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
)

// BenchmarkVaultSVIDs compares, against one Vault dev server in one run and
// with 4 requests in flight (the agent's default rotation.max_concurrent):
//
//	raw-sign:     bare <mount>/sign/<role> calls with a prepared CSR;
//	sign:         what the agent does per SVID in sign mode: P-256 keygen,
//	              CSR, the Vault call, parsing and the X.509-SVID profile
//	              check;
//	intermediate: the same in intermediate mode, where the agent signs with
//	              its Vault-issued intermediate and Vault is not called.
func BenchmarkVaultSVIDs(b *testing.B) {
	srv := vaulttest.Start(b)
	if cpu := os.Getenv("SWORN_BENCH_VAULT_CPU"); cpu != "" {
		// Give Vault a core of its own, as on a separate machine; run the
		// benchmark itself under `taskset -c <other core>`.
		if out, err := exec.Command("taskset", "-a", "-p", "-c", cpu, strconv.Itoa(srv.PID())).CombinedOutput(); err != nil {
			b.Fatalf("taskset: %v\n%s", err, out)
		}
	}
	admin := vault.NewAdmin(srv.Client, "", "")
	if _, err := admin.Setup(context.Background(), vault.SetupOptions{TrustDomain: td, Intermediate: true}); err != nil {
		b.Fatal(err)
	}
	id := spiffeid.RequireFromPath(td, "/bench")
	token := b.TempDir() + "/token"
	if err := writeFile(token, vaulttest.RootToken); err != nil {
		b.Fatal(err)
	}

	b.Run("raw-sign", func(b *testing.B) {
		key, _ := ca.KeyECP256.Generate()
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
		if err != nil {
			b.Fatal(err)
		}
		data := map[string]any{
			"csr":      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
			"uri_sans": id.String(), "ttl": "3600s", "format": "pem", "exclude_cn_from_sans": true,
		}
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := srv.Client.Logical().Write("pki/sign/sworn", data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	for _, mode := range []vault.Mode{vault.ModeSign, vault.ModeIntermediate} {
		b.Run(string(mode), func(b *testing.B) {
			c, err := vault.New(context.Background(), vault.Config{TrustDomain: td, Address: srv.Addr, Mode: mode, Auth: vault.Auth{TokenFile: token}})
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(2)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key, err := ca.KeyECP256.Generate()
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: id, Key: key, TTL: time.Hour}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
