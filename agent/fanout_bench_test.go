package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"

	"github.com/sworn-id/sworn/agent/config"
	wl "github.com/sworn-id/sworn/agent/workload"
)

// BenchmarkRotationFanOut opens N FetchX509SVID streams of one identity
// (the benchmark's uid), 100 per connection (the agent's default
// max_streams_per_connection, so N/100 connections), and measures the time
// from a forced rotation (`rotate svids --all` over the admin socket; for
// the floor, swapping its response) until every stream has received the
// new SVID: fanout-ms, one rotation per iteration. The agent's
// max_streams_per_uid (1,024 by default) is raised to N+100. The
// descriptors needed (N/100 connections, each a socket at both ends and a
// pidfd) stay far under the usual open-file limit, and the agent raises
// its own to the hard limit anyway. 10,000 streams is skipped in -short.
func BenchmarkRotationFanOut(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			if n > 1000 && testing.Short() {
				b.Skip("10,000 streams take a few seconds to open; skipped in -short")
			}
			for _, server := range servers {
				cfg := newConfig(b)
				cfg.Limits.MaxStreamsPerUID = n + 100
				t := startTarget(b, server, cfg)
				streams := openStreams(b, t, n)
				b.Run("server="+server, func(b *testing.B) {
					var total time.Duration
					for b.Loop() {
						total += streams.rotate(b, t)
					}
					ms := float64(total.Nanoseconds()) / 1e6 / float64(b.N)
					b.ReportMetric(ms, "fanout-ms")
					floors.record(b, server, "fanout-ms", ms, "vs-floor")
				})
			}
		})
	}
}

// fanOut is N open streams and what each holds.
type fanOut struct {
	n int

	mu      sync.Mutex
	current []byte // the leaf DER every stream held after the last round
	round   int
	held    []int // per stream, the last round it got the new SVID in
	left    int   // streams still to get this round's SVID
	done    chan struct{}
	err     error
}

// openStreams opens n streams on t and returns once each got its first
// SVID.
func openStreams(b *testing.B, t target, n int) *fanOut {
	b.Helper()
	f := &fanOut{n: n, held: make([]int, n), left: n, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(workloadCtx(context.Background()))
	b.Cleanup(cancel)
	perConn := config.DefaultMaxStreamsPerConnection
	var conn *grpc.ClientConn
	for i := range n {
		if i%perConn == 0 {
			conn = dial(b, t)
		}
		stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
		if err != nil {
			b.Fatal(err)
		}
		go f.watch(ctx, i, func() ([]byte, error) {
			resp, err := stream.Recv()
			if err == nil && len(resp.Svids) != 1 {
				err = fmt.Errorf("%d SVIDs, want 1", len(resp.Svids))
			}
			if err != nil {
				return nil, err
			}
			return resp.Svids[0].X509Svid, nil
		})
	}
	f.waitFirst(b)
	return f
}

// waitFirst waits until every stream got its first SVID.
func (f *fanOut) waitFirst(b *testing.B) {
	b.Helper()
	select {
	case <-f.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("%d of %d streams got no first SVID in 2 minutes", f.left, f.n)
	}
	if f.err != nil {
		b.Fatal(f.err)
	}
}

// watch reads stream i through recv (which returns the SVID it holds),
// counting it in once per round when it gets an SVID other than the one
// all held before the round.
func (f *fanOut) watch(ctx context.Context, i int, recv func() ([]byte, error)) {
	for {
		svid, err := recv()
		f.mu.Lock()
		switch {
		case ctx.Err() != nil:
		case err != nil:
			f.fail(fmt.Errorf("stream %d: %w", i, err))
		case f.held[i] < f.round+1 && !bytes.Equal(svid, f.current):
			f.held[i] = f.round + 1
			f.left--
			if f.left == 0 {
				f.current = svid
				close(f.done)
			}
		}
		f.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// fail ends the round with err; f.mu must be held.
func (f *fanOut) fail(err error) {
	if f.err == nil && f.left > 0 {
		f.err = err
		f.left = 0
		close(f.done)
	}
}

// rotate forces one rotation and returns how long it took to reach every
// stream.
func (f *fanOut) rotate(b *testing.B, t target) time.Duration {
	f.mu.Lock()
	f.round++
	f.left = f.n
	f.done = make(chan struct{})
	done := f.done
	f.mu.Unlock()
	start := time.Now()
	t.rotate(b)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("%d of %d streams still without the new SVID after 2 minutes", f.left, f.n)
	}
	took := time.Since(start)
	if f.err != nil {
		b.Fatal(f.err)
	}
	return took
}

// BenchmarkSDSRotationFanOut is BenchmarkRotationFanOut over Envoy's SDS:
// N StreamSecrets streams of one identity asking for "default", 100 per
// connection, and the time from a forced rotation until every stream has
// been pushed the new SVID (fanout-ms). The floor serves no SDS: compare
// with BenchmarkRotationFanOut's floor of the same N.
func BenchmarkSDSRotationFanOut(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			if n > 1000 && testing.Short() {
				b.Skip("10,000 streams take a few seconds to open; skipped in -short")
			}
			cfg := newConfig(b)
			cfg.Limits.MaxStreamsPerUID = n + 100
			t := startTarget(b, "sworn", cfg)
			streams := openSDSStreams(b, t, n)
			var total time.Duration
			for b.Loop() {
				total += streams.rotate(b, t)
			}
			b.ReportMetric(float64(total.Nanoseconds())/1e6/float64(b.N), "fanout-ms")
		})
	}
}

// openSDSStreams opens n SDS streams on t, each asking for "default" as an
// Envoy 1.30 would, and returns once each got its first SVID.
func openSDSStreams(b *testing.B, t target, n int) *fanOut {
	b.Helper()
	f := &fanOut{n: n, held: make([]int, n), left: n, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	node := &corev3.Node{Id: "bench", UserAgentName: "envoy", UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{
		UserAgentBuildVersion: &corev3.BuildVersion{Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 30}},
	}}
	var conn *grpc.ClientConn
	for i := range n {
		if i%config.DefaultMaxStreamsPerConnection == 0 {
			conn = dial(b, t)
		}
		stream, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
		if err == nil {
			err = stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: wl.SecretTypeURL, ResourceNames: []string{"default"}})
		}
		if err != nil {
			b.Fatal(err)
		}
		go f.watch(ctx, i, func() ([]byte, error) {
			resp, err := stream.Recv()
			if err != nil {
				return nil, err
			}
			if len(resp.GetResources()) != 1 {
				return nil, fmt.Errorf("%d secrets, want default", len(resp.GetResources()))
			}
			secret := &tlsv3.Secret{}
			if err := resp.GetResources()[0].UnmarshalTo(secret); err != nil {
				return nil, err
			}
			return secret.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), nil
		})
	}
	f.waitFirst(b)
	return f
}
