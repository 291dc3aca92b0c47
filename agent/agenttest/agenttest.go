// Package agenttest runs a real sworn agent (embedded CA, real Unix
// sockets) inside a test, for tests of the agent and of the clients that
// talk to it (the proxy, the CLI, the examples).
package agenttest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/sworn-id/sworn/agent"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/internal/testutil"
)

// Agent is an agent running in the test process.
type Agent struct {
	Config *config.Config
	Agent  *agent.Agent

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	runErr error
}

// Config returns a validated config for trust domain example.org with
// sockets and data in a short temporary directory (Unix socket paths are
// limited to 108 bytes). Without rules, every uid gets
// spiffe://example.org/uid/<uid>.
func Config(tb testing.TB, rules ...config.Rule) *config.Config {
	tb.Helper()
	dir := testutil.ShortTempDir(tb, "sworn")
	if len(rules) == 0 {
		rules = []config.Rule{{SPIFFEID: "spiffe://example.org/uid/{unix:uid}"}}
	}
	cfg := &config.Config{
		TrustDomain:     "example.org",
		SocketPath:      filepath.Join(dir, "workload.sock"),
		AdminSocketPath: filepath.Join(dir, "admin.sock"),
		DataDir:         filepath.Join(dir, "data"),
		HealthAddr:      "127.0.0.1:0",
		Rules:           rules,
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// Start runs an agent until the test ends.
func Start(tb testing.TB, cfg *config.Config) *Agent {
	tb.Helper()
	return StartLogging(tb, cfg, io.Discard)
}

// StartLogging is Start with the agent's log (text, debug and above)
// written to w, for tests of what the agent logs.
func StartLogging(tb testing.TB, cfg *config.Config, w io.Writer) *Agent {
	tb.Helper()
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		tb.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &Agent{Config: cfg, Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-ta.done:
		tb.Fatalf("agent exited: %v", err)
	}
	tb.Cleanup(func() {
		if err := ta.Stop(tb); err != nil {
			tb.Errorf("agent.Run: %v", err)
		}
	})
	return ta
}

// Addr is the Workload API address, as SPIFFE_ENDPOINT_SOCKET spells it.
func (a *Agent) Addr() string { return "unix://" + a.Config.SocketPath }

// Stop cancels the agent and returns what Run returned; later calls return
// the same.
func (a *Agent) Stop(tb testing.TB) error {
	tb.Helper()
	a.once.Do(func() {
		a.cancel()
		select {
		case a.runErr = <-a.done:
		case <-time.After(30 * time.Second):
			a.runErr = errors.New("agent did not stop within 30s")
		}
	})
	return a.runErr
}

// Source opens a go-spiffe X509Source on the agent, closed when the test
// ends.
func (a *Agent) Source(tb testing.TB, opts ...workloadapi.X509SourceOption) *workloadapi.X509Source {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts = append([]workloadapi.X509SourceOption{workloadapi.WithClientOptions(workloadapi.WithAddr(a.Addr()))}, opts...)
	src, err := workloadapi.NewX509Source(ctx, opts...)
	if err != nil {
		tb.Fatalf("NewX509Source: %v", err)
	}
	tb.Cleanup(func() { src.Close() })
	return src
}
