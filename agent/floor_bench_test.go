package agent_test

import (
	"context"
	"crypto/x509"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sworn-id/sworn/agent"
	"github.com/sworn-id/sworn/agent/admin/adminpb"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/internal/notify"
	"github.com/sworn-id/sworn/internal/testutil"
)

// The Workload API benchmarks run every load twice in one run with the
// same client code: against the agent (server=sworn) and against the floor
// (server=floor), a gRPC server on the same kind of socket with the
// agent's transport options that answers FetchX509SVID with a response
// built once: no peer credentials, no attestation, no rules, no cache.
// sworn's sub-benchmark reports its figure as a ratio to the floor's of
// the same run (floor-ratio, or p50/p99-vs-floor for latencies), so a
// loaded machine moves both and the ratio stays readable.
//
// The floor listens with a plain net.Listen("unix"), not the agent's
// peer.Listener: reading SO_PEERCRED and opening the caller's pidfd at
// accept is attestation work, which the floor exists to leave out.

// floorServer is the transport floor. A stream gets the current response
// at once and again after every push, as an agent stream gets the full
// state on every change.
type floorServer struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	socket string

	mu      sync.Mutex
	resp    *workload.X509SVIDResponse
	changed notify.Notifier // notified under mu when resp changes
}

func startFloor(tb testing.TB) *floorServer {
	tb.Helper()
	f := &floorServer{socket: filepath.Join(testutil.ShortTempDir(tb, "floor"), "workload.sock"), resp: floorResponse(tb)}
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(agent.WorkloadTransportOptions(config.DefaultMaxStreamsPerConnection)...)
	workload.RegisterSpiffeWorkloadAPIServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(srv.Stop)
	return f
}

// floorResponse is what the agent sends a caller with one identity: a
// P-256 X.509-SVID under a P-256 CA, its PKCS#8 key and the bundle.
func floorResponse(tb testing.TB) *workload.X509SVIDResponse {
	tb.Helper()
	id := spiffeid.RequireFromString("spiffe://example.org/uid/0")
	root := testutil.NewCA(tb, &x509.Certificate{URIs: []*url.URL{spiffeid.RequireTrustDomainFromString("example.org").ID().URL()}})
	leaf := root.Issue(tb, &x509.Certificate{
		URIs:        []*url.URL{id.URL()},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	key, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		tb.Fatal(err)
	}
	return &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId: id.String(), X509Svid: leaf.Cert.Raw, X509SvidKey: key, Bundle: root.Cert.Raw,
	}}}
}

// FetchX509SVID checks the security header (a map lookup, as cheap as
// anything the floor could skip) and sends the current response.
func (f *floorServer) FetchX509SVID(_ *workload.X509SVIDRequest, stream workload.SpiffeWorkloadAPI_FetchX509SVIDServer) error {
	if md, _ := metadata.FromIncomingContext(stream.Context()); len(md.Get("workload.spiffe.io")) != 1 || md.Get("workload.spiffe.io")[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	for {
		f.mu.Lock()
		resp, changed := f.resp, f.changed.Changed()
		f.mu.Unlock()
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

// push replaces the response with a new SVID and sends it on every open
// stream, as a rotation does.
func (f *floorServer) push(tb testing.TB) {
	tb.Helper()
	resp := floorResponse(tb)
	f.mu.Lock()
	f.resp = resp
	f.changed.Notify()
	f.mu.Unlock()
}

// target is a Workload API server under benchmark: the agent or the floor.
type target struct {
	socket string
	rotate func(tb testing.TB) // re-issues the SVID every caller holds
}

func (t target) addr() string { return "unix://" + t.socket }

// servers are the two sides every Workload API benchmark compares.
var servers = []string{"floor", "sworn"}

// startTarget starts the floor, or an agent with cfg (newConfig's if nil).
func startTarget(tb testing.TB, server string, cfg *config.Config) target {
	tb.Helper()
	if server == "floor" {
		f := startFloor(tb)
		return target{socket: f.socket, rotate: f.push}
	}
	if cfg == nil {
		cfg = newConfig(tb)
	}
	ta := startAgent(tb, cfg)
	return target{socket: ta.Config.SocketPath, rotate: func(tb testing.TB) { rotateAll(tb, ta.Config.AdminSocketPath) }}
}

// rotateAll is `sworn rotate svids --all` over the admin socket.
func rotateAll(tb testing.TB, adminSocket string) {
	tb.Helper()
	conn, err := grpc.NewClient("unix://"+adminSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adminpb.NewAdminClient(conn).RotateSVIDs(ctx, &adminpb.RotateSVIDsRequest{All: true}); err != nil {
		tb.Fatal(err)
	}
}

// workloadCtx carries the Workload API's security header.
func workloadCtx(ctx context.Context) context.Context {
	return metadata.NewOutgoingContext(ctx, metadata.Pairs("workload.spiffe.io", "true"))
}

// dial opens a gRPC client connection to t, closed when the benchmark ends.
func dial(tb testing.TB, t target) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(t.addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// quantiles returns the p50 and p99 of d in milliseconds, sorting d.
func quantiles(d []time.Duration) (p50, p99 float64) {
	slices.Sort(d)
	at := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Nanoseconds()) / 1e6
	}
	return at(0.50), at(0.99)
}

// floorFigures remembers the floor's figures of the current run, per
// parent benchmark, for the ratio sworn's sub-benchmark reports beside it.
type floorFigures struct {
	mu   sync.Mutex
	figs map[string]map[string]float64
}

var floors floorFigures

// record stores the floor's metric, or reports sworn's as a ratio to the
// floor's of the same parent, as unit. The floor runs first in every
// parent; with -bench selecting sworn alone there is no ratio.
func (f *floorFigures) record(b *testing.B, server, metric string, value float64, unit string) {
	parent := filepath.Dir(b.Name())
	f.mu.Lock()
	defer f.mu.Unlock()
	if server == "floor" {
		if f.figs == nil {
			f.figs = map[string]map[string]float64{}
		}
		if f.figs[parent] == nil {
			f.figs[parent] = map[string]float64{}
		}
		f.figs[parent][metric] = value
		return
	}
	if floor, ok := f.figs[parent][metric]; ok && floor > 0 {
		b.ReportMetric(value/floor, unit)
	}
}
