package agent_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc/metadata"
)

// BenchmarkFetchX509SVIDFirstResponse measures, with 1, 10 and 100
// concurrent clients, the time from opening a fresh FetchX509SVID stream to
// its first message: attestation, rule matching and the response, with the
// SVID already cached (as it is for every caller after the first). Each
// client keeps its gRPC connection and opens a new stream per request, the
// way a workload re-fetching does. Reports p50 and p99 latency and the
// aggregate rate; clients and agent share the machine's cores.
func BenchmarkFetchX509SVIDFirstResponse(b *testing.B) {
	for _, clients := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			cfg := newConfig(b)
			ta := startAgent(b, cfg)
			streamClients := make([]workload.SpiffeWorkloadAPIClient, clients)
			for i := range streamClients {
				streamClients[i] = rawClient(b, ta)
			}
			ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("workload.spiffe.io", "true"))
			fetch := func(c workload.SpiffeWorkloadAPIClient) (time.Duration, error) {
				sctx, cancel := context.WithCancel(ctx)
				defer cancel()
				start := time.Now()
				stream, err := c.FetchX509SVID(sctx, &workload.X509SVIDRequest{})
				if err != nil {
					return 0, err
				}
				if _, err := stream.Recv(); err != nil {
					return 0, err
				}
				return time.Since(start), nil
			}
			// Warm the cache and every connection.
			for _, c := range streamClients {
				if _, err := fetch(c); err != nil {
					b.Fatal(err)
				}
			}

			var mu sync.Mutex
			latencies := make([]time.Duration, 0, b.N)
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for _, c := range streamClients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for range work {
						d, err := fetch(c)
						if err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, d)
					}
					mu.Lock()
					latencies = append(latencies, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(latencies)
			if len(latencies) == 0 {
				return
			}
			pct := func(p float64) float64 {
				return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "fetches/s")
		})
	}
}
