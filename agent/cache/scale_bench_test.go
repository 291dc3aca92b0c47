package cache_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
)

// BenchmarkMassReissue re-issues every cached SVID at once (RotateAndWait,
// what `sworn rotate svids --all` starts, waiting until each is replaced)
// with 2,000 and 10,000 distinct identities cached, each held by a
// subscription of its own as a workload's stream holds it. The cache is
// configured as the agent configures it for the embedded CA: the default
// max_concurrent (4), no rate cap, SVIDs persisted in a directory. It
// reports issuances/s, inflight-peak (the most CA calls seen at once: the
// bound must hold), and its rate over two floors of the same run, each n
// issuances on every core at once: floor-ratio over kind=floor, one P-256
// key generation and one signature over a digest (ca/local's
// BenchmarkRawECDSAKeygenAndSign), and ca-ratio over kind=ca, a P-256 key
// and the embedded CA's SignX509SVID called directly (what the cache
// cannot do without). 10,000 is skipped in -short.
func BenchmarkMassReissue(b *testing.B) {
	for _, n := range []int{2000, 10000} {
		b.Run(fmt.Sprintf("ids=%d", n), func(b *testing.B) {
			if n > 2000 && testing.Short() {
				b.Skip("10,000 first issuances take a while; skipped in -short")
			}
			var raw, direct float64
			b.Run("kind=floor", func(b *testing.B) { raw = issuanceFloor(b, n, rawIssuance(b)) })
			b.Run("kind=ca", func(b *testing.B) { direct = issuanceFloor(b, n, caIssuance(b)) })
			c, signer, stop := holdIdentities(b, n, b.TempDir())
			b.Cleanup(stop)
			b.Run("kind=cache", func(b *testing.B) {
				signer.peak.Store(0)
				for b.Loop() {
					if _, err := c.RotateAndWait(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				rate := float64(n) * float64(b.N) / b.Elapsed().Seconds()
				b.ReportMetric(rate, "issuances/s")
				b.ReportMetric(float64(signer.peak.Load()), "inflight-peak")
				if raw > 0 && direct > 0 {
					b.ReportMetric(rate/raw, "floor-ratio")
					b.ReportMetric(rate/direct, "ca-ratio")
				}
			})
		})
	}
}

// rawIssuance is one P-256 key generation and one signature over a
// digest, ca/local's BenchmarkRawECDSAKeygenAndSign.
func rawIssuance(b *testing.B) func() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256(make([]byte, 512))
	return func() error {
		if _, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return err
		}
		_, err := ecdsa.SignASN1(rand.Reader, caKey, digest[:])
		return err
	}
}

// caIssuance is what the cache asks of the embedded CA per SVID, and
// nothing else: a P-256 key and SignX509SVID (template, signature, Go's
// check of it, parse).
func caIssuance(b *testing.B) func() error {
	authority, err := local.New(local.Config{TrustDomain: td})
	if err != nil {
		b.Fatal(err)
	}
	id := spiffeid.RequireFromPath(td, "/floor")
	return func() error {
		key, err := ca.KeyECP256.Generate()
		if err != nil {
			return err
		}
		_, err = authority.SignX509SVID(context.Background(), ca.X509SVIDRequest{ID: id, Key: key, TTL: time.Hour})
		return err
	}
}

// issuanceFloor makes, per iteration, n issuances split over GOMAXPROCS
// goroutines, and returns (and reports) its rate. A batch of n rather
// than b.RunParallel's b.N, so that the floor stays a real measurement
// when the slow cache side is run with -benchtime=1x.
func issuanceFloor(b *testing.B, n int, issue func() error) float64 {
	procs := runtime.GOMAXPROCS(0)
	for b.Loop() {
		var wg sync.WaitGroup
		for p := range procs {
			count := n / procs
			if p < n%procs {
				count++
			}
			wg.Go(func() {
				for range count {
					if err := issue(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	rate := float64(n) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "issuances/s")
	return rate
}

// BenchmarkMemoryPerIdentity reports the Go heap in use (after GC) per
// cached identity, with 1,000 and 10,000 identities each held by a
// subscription of its own: B/identity, the heap after issuing them less
// the heap before, over their number. The cache is the agent's for the
// embedded CA, as in BenchmarkMassReissue.
func BenchmarkMemoryPerIdentity(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("ids=%d", n), func(b *testing.B) {
			if n > 1000 && testing.Short() {
				b.Skip("10,000 first issuances take a while; skipped in -short")
			}
			var perID float64
			for b.Loop() {
				before := heapInUse()
				c, _, stop := holdIdentities(b, n, b.TempDir())
				perID += float64(heapInUse()-before) / float64(n)
				writeHeapProfile(b)
				runtime.KeepAlive(c)
				stop()
			}
			b.ReportMetric(perID/float64(b.N), "B/identity")
		})
	}
}

// heapProfile names a file for a heap profile taken while the identities
// are held (-test.memprofile is written at the end, when they are gone):
// go tool pprof -sample_index=inuse_space -top says what a held identity
// is made of.
var heapProfile = flag.String("cache.heapprofile", "", "write a heap profile here while BenchmarkMemoryPerIdentity holds its identities")

func writeHeapProfile(b *testing.B) {
	b.Helper()
	if *heapProfile == "" {
		return
	}
	f, err := os.Create(*heapProfile)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// peakSigner is the embedded CA, recording the most calls seen at once.
type peakSigner struct {
	ca       *local.CA
	inflight atomic.Int32
	peak     atomic.Int32
}

func (s *peakSigner) SignX509SVID(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	return s.ca.SignX509SVID(ctx, req)
}

// holdIdentities returns a running cache, configured as the agent's for
// the embedded CA and persisting to dir, holding n identities
// (spiffe://example.org/id/<i>, one-hour TTL) each by a subscription of
// its own, and the function that closes them and stops the cache.
func holdIdentities(b *testing.B, n int, dir string) (c *cache.Cache, signer *peakSigner, stop func()) {
	b.Helper()
	authority, err := local.New(local.Config{TrustDomain: td})
	if err != nil {
		b.Fatal(err)
	}
	signer = &peakSigner{ca: authority}
	c = cache.New(cache.Config{Signer: signer, Dir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	subs := make([]*cache.Subscription, n)
	stop = func() {
		for _, s := range subs {
			if s != nil {
				s.Close()
			}
		}
		cancel()
		<-done
	}
	// Subscribed from many goroutines, as many workloads would arrive.
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := atomic.Int64{}
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				e := registry.Entry{ID: spiffeid.RequireFromPathf(td, "/id/%d", i), TTL: time.Hour}
				s, err := c.Subscribe(ctx, []registry.Entry{e}, cache.Requester{})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				subs[i] = s
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		stop()
		b.Fatal(err)
	default:
	}
	if got := c.Len(); got != n {
		stop()
		b.Fatalf("cache holds %d SVIDs, want %d", got, n)
	}
	return c, signer, stop
}
