package fetchloop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Fetcher makes client i's fetches against one Workload API address.
type Fetcher struct {
	addr  string
	conns []*grpc.ClientConn // per client; nil with a new connection per fetch
}

// New returns a Fetcher for clients clients at addr ("unix:///path"), each
// keeping a connection of its own, or, with newConn, dialling a new one
// per fetch. It does not fetch; Warm does.
func New(addr string, clients int, newConn bool) (*Fetcher, error) {
	f := &Fetcher{addr: addr}
	if newConn {
		return f, nil
	}
	f.conns = make([]*grpc.ClientConn, clients)
	for i := range f.conns {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("fetchloop: %w", err)
		}
		f.conns[i] = conn
	}
	return f, nil
}

// Close closes the kept connections.
func (f *Fetcher) Close() {
	for _, c := range f.conns {
		if c != nil {
			c.Close()
		}
	}
}

// Warm makes one fetch per client, so the caller's SVID is issued and
// every kept connection is up before a measured loop starts.
func (f *Fetcher) Warm(ctx context.Context, clients int) error {
	for i := range clients {
		if err := f.Fetch(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// Fetch opens a FetchX509SVID stream as client i and waits for its first
// message.
func (f *Fetcher) Fetch(ctx context.Context, i int) error {
	if f.conns != nil {
		return firstResponse(ctx, f.conns[i])
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("fetchloop: %w", err)
	}
	defer conn.Close()
	return firstResponse(ctx, conn)
}

// firstResponse opens a FetchX509SVID stream on conn, with the Workload
// API's security header, and waits for its first message.
func firstResponse(ctx context.Context, conn grpc.ClientConnInterface) error {
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, metadata.Pairs("workload.spiffe.io", "true")))
	defer cancel()
	stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		return fmt.Errorf("fetchloop: %w", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("fetchloop: %w", err)
	}
	if len(resp.Svids) == 0 {
		return errors.New("fetchloop: a response with no SVID")
	}
	return nil
}

// Result is one closed loop's latencies and its wall time, as command
// loopclient prints it (JSON).
type Result struct {
	LatenciesNS []int64 `json:"latencies_ns"`
	ElapsedNS   int64   `json:"elapsed_ns"`
}

// Latencies returns the latencies as durations.
func (r Result) Latencies() []time.Duration {
	d := make([]time.Duration, len(r.LatenciesNS))
	for i, ns := range r.LatenciesNS {
		d[i] = time.Duration(ns)
	}
	return d
}

// Rate is the fetches per second over the loop's wall time.
func (r Result) Rate() float64 {
	if r.ElapsedNS <= 0 {
		return 0
	}
	return float64(len(r.LatenciesNS)) / time.Duration(r.ElapsedNS).Seconds()
}

// Run makes n fetches from clients goroutines, each starting its next
// fetch when its last one returns (a closed loop), and returns every
// latency and the wall time. The first error stops every client and is
// returned.
func Run(ctx context.Context, f *Fetcher, clients, n int) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	var (
		mu       sync.Mutex
		res      = Result{LatenciesNS: make([]int64, 0, n)}
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			mine := make([]int64, 0, n/clients+1)
			var err error
			for range work {
				t0 := time.Now()
				if err = f.Fetch(ctx, i); err != nil {
					cancel()
					break
				}
				mine = append(mine, time.Since(t0).Nanoseconds())
			}
			mu.Lock()
			defer mu.Unlock()
			res.LatenciesNS = append(res.LatenciesNS, mine...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	res.ElapsedNS = time.Since(start).Nanoseconds()
	return res, firstErr
}
