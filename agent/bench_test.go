package agent_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// BenchmarkFetchX509SVIDFirstResponse measures, with 1, 10 and 100
// concurrent clients back to back (closed loop), the time from opening a
// FetchX509SVID stream to its first message, with the caller's SVID
// already cached (as it is for every caller after the first), against the
// agent and against the floor (floor_bench_test.go) in the same run:
//
//   - conn=kept: each client keeps its gRPC connection and opens a new
//     stream per fetch, the way a workload re-fetching does; the agent
//     attests every call.
//   - conn=new: a new connection per fetch (dial, HTTP/2 set-up, one
//     stream, close), the way a short-lived process fetches once.
//
// Reports p50 and p99 latency and the aggregate rate, and for sworn
// floor-ratio, its rate over the floor's. Clients and server share the
// machine's cores.
func BenchmarkFetchX509SVIDFirstResponse(b *testing.B) {
	for _, conn := range []string{"kept", "new"} {
		for _, clients := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("conn=%s/clients=%d", conn, clients), func(b *testing.B) {
				for _, server := range servers {
					t := startTarget(b, server, nil)
					b.Run("server="+server, func(b *testing.B) {
						rate := closedLoop(b, clients, fetcher(b, t, clients, conn == "new"))
						floors.record(b, server, "fetches/s", rate, "floor-ratio")
					})
				}
			})
		}
	}
}

// fetcher returns the fetch client i makes, warmed: on a connection of its
// own kept for the benchmark, or on a new one each time.
func fetcher(b *testing.B, t target, clients int, newConn bool) func(i int) error {
	b.Helper()
	ctx := context.Background()
	var fetch func(i int) error
	if newConn {
		fetch = func(int) error {
			conn, err := grpc.NewClient(t.addr(), grpc.WithTransportCredentials(insecureCreds()))
			if err != nil {
				return err
			}
			defer conn.Close()
			return firstResponse(ctx, conn)
		}
	} else {
		conns := make([]*grpc.ClientConn, clients)
		for i := range conns {
			conns[i] = dial(b, t)
		}
		fetch = func(i int) error { return firstResponse(ctx, conns[i]) }
	}
	// Warm the cache and every connection.
	for i := range clients {
		if err := fetch(i); err != nil {
			b.Fatal(err)
		}
	}
	return fetch
}

// closedLoop runs b.N fetches from clients goroutines, each starting its
// next fetch when the last one returns, reports p50-ms, p99-ms and
// fetches/s, and returns the rate.
func closedLoop(b *testing.B, clients int, fetch func(i int) error) float64 {
	b.Helper()
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
	for i := range clients {
		wg.Go(func() {
			var mine []time.Duration
			for range work {
				t0 := time.Now()
				if err := fetch(i); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return 0
	}
	p50, p99 := quantiles(latencies)
	rate := float64(len(latencies)) / elapsed.Seconds()
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(rate, "fetches/s")
	return rate
}
