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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
)

// benchInFlight is how many requests BenchmarkVaultSVIDs keeps in flight:
// agent/config.DefaultMaxConcurrent, the agent's default
// rotation.max_concurrent (ca never imports agent, so it is repeated here).
const benchInFlight = 4

// BenchmarkVaultSVIDs compares, against one Vault dev server in one run and
// with benchInFlight requests in flight whatever GOMAXPROCS is (reported as
// the "inflight" metric, the peak actually observed):
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
		inFlight(b, benchInFlight, func() error {
			_, err := srv.Client.Logical().Write("pki/sign/sworn", data)
			return err
		})
	})
	for _, mode := range []vault.Mode{vault.ModeSign, vault.ModeIntermediate} {
		b.Run(string(mode), func(b *testing.B) {
			c, err := vault.New(context.Background(), vault.Config{TrustDomain: td, Address: srv.Addr, Mode: mode, Auth: vault.Auth{TokenFile: token}})
			if err != nil {
				b.Fatal(err)
			}
			inFlight(b, benchInFlight, func() error {
				key, err := ca.KeyECP256.Generate()
				if err != nil {
					return err
				}
				_, err = c.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: id, Key: key, TTL: time.Hour})
				return err
			})
		})
	}
}

// inFlight runs op b.N times in all from exactly n goroutines, so n calls
// are in flight however many cores the benchmark may use. (RunParallel
// starts SetParallelism × GOMAXPROCS goroutines, and GOMAXPROCS follows the
// CPU affinity: under `taskset -c 0` SetParallelism(2) meant 2 in flight,
// not the 4 the figures claimed.) It reports n as "workers" and the peak
// number of calls seen in flight at once as "inflight", so the claim is
// measured, not assumed: a call that never blocks (intermediate mode) runs
// to completion on its core, so with one core its peak is 1.
func inFlight(b *testing.B, n int, op func() error) {
	b.Helper()
	var next, now, peak atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				raise(&peak, now.Add(1))
				err := op()
				now.Add(-1)
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(n), "workers")
	b.ReportMetric(float64(peak.Load()), "inflight")
}

// raise sets peak to v if v is higher.
func raise(peak *atomic.Int64, v int64) {
	for p := peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
	}
}
