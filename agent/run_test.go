package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/internal/testutil"
)

// runConfig is a validated config with sockets and data in a short
// temporary directory (Unix socket paths are limited to 108 bytes).
func runConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := testutil.ShortTempDir(t, "sworn")
	cfg := &config.Config{
		TrustDomain:     "example.org",
		SocketPath:      filepath.Join(dir, "workload.sock"),
		AdminSocketPath: filepath.Join(dir, "admin.sock"),
		DataDir:         filepath.Join(dir, "data"),
		HealthAddr:      "127.0.0.1:0",
		Rules:           []config.Rule{{SPIFFEID: "spiffe://example.org/uid/{unix:uid}"}},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// stopState is what a background task sees when it is cancelled.
type stopState struct {
	listening    bool
	adminDialErr error
	socketExists bool
}

// A failing task stops the agent with its error, named after the task, and
// the shutdown keeps its order: /ready and gRPC health go not-serving
// first, the other tasks are cancelled only after both servers stopped,
// and the socket files go last. A gRPC health watch the test holds open
// keeps the workload server's GracefulStop waiting (10 s, then a hard
// stop) while the admin server still serves: a task cancelled before the
// servers stopped would find the admin socket answering.
func TestRunStopsInOrderWhenATaskFails(t *testing.T) {
	cfg := runConfig(t)
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	fail := make(chan struct{})
	a.runCA = func(ctx context.Context) error {
		select {
		case <-fail:
			return boom
		case <-ctx.Done():
			return nil
		}
	}
	seen := make(chan stopState, 1)
	a.runPods = func(ctx context.Context) {
		<-ctx.Done()
		_, statErr := os.Stat(cfg.SocketPath)
		c, err := net.DialTimeout("unix", cfg.AdminSocketPath, time.Second)
		if err == nil {
			c.Close()
		}
		seen <- stopState{listening: a.listening.Load(), adminDialErr: err, socketExists: statErr == nil}
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	if err := a.readiness(); err != nil {
		t.Fatalf("ready while serving: %v", err)
	}
	watch := healthWatch(t, cfg.SocketPath)
	close(fail)
	if st, err := watch.Recv(); err != nil || st.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after a task failed: %v, %v; want NOT_SERVING", st, err)
	}
	st := <-seen
	if st.listening || st.adminDialErr == nil || !st.socketExists {
		t.Fatalf("when the tasks were cancelled: listening=%v, admin dial error %v, socket file there=%v; want both servers stopped and the socket not yet removed", st.listening, st.adminDialErr, st.socketExists)
	}
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after a task failed")
	}
	if !errors.Is(err, boom) || err.Error() != "agent: ca: boom" {
		t.Fatalf("Run = %v, want agent: ca: boom", err)
	}
	for _, path := range []string{cfg.SocketPath, cfg.AdminSocketPath} {
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after Run: %v, want removed", path, err)
		}
	}
	if err := a.readiness(); err == nil || err.Error() != "workload API not listening yet" {
		t.Fatalf("readiness after Run: %v", err)
	}
}

// healthWatch opens a gRPC health watch on the workload socket and reads
// its first answer, SERVING.
func healthWatch(t *testing.T, socket string) healthpb.Health_WatchClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := w.Recv(); err != nil || st.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health while serving: %v, %v", st, err)
	}
	return w
}

// A federation that cannot start stops Run before anything serves, and
// what it had opened is closed.
func TestRunFailsBeforeServingWhenTheBundleEndpointCannotListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := runConfig(t)
	cfg.HealthAddr = testutil.FreeAddr(t)
	cfg.Federation.BundleEndpoint = config.BundleEndpoint{Listen: taken.Addr().String(), Profile: "https_spiffe", RefreshHint: time.Minute}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "agent: bundle endpoint: listen tcp "+taken.Addr().String()) {
		t.Fatalf("Run = %v, want the bundle endpoint's listen error", err)
	}
	select {
	case <-a.Ready():
		t.Fatal("Ready was closed although nothing served")
	default:
	}
	for _, path := range []string{cfg.SocketPath, cfg.AdminSocketPath} {
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after a failed Run: %v, want removed", path, err)
		}
	}
	l, err := net.Listen("tcp", cfg.HealthAddr)
	if err != nil {
		t.Fatalf("health address still held after a failed Run: %v", err)
	}
	l.Close()
}
