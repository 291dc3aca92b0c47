package vault_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// signLoad signs SVIDs from a few goroutines until stopped, and records
// when each call started and ended and how it failed.
type signLoad struct {
	mu    sync.Mutex
	calls []signCall
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type signCall struct {
	start, end time.Time
	err        error
}

func startSignLoad(t *testing.T, c ca.Authority, workers int) *signLoad {
	t.Helper()
	l := &signLoad{stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				start := time.Now()
				err := signWithin(t, c, 2*time.Second)
				l.mu.Lock()
				l.calls = append(l.calls, signCall{start, time.Now(), err})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// Stop ends the load and returns every call made.
func (l *signLoad) Stop() []signCall {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	return l.calls
}

// firstSuccessAfter returns the end of the first successful call that
// started after t0, or the zero time.
func (l *signLoad) firstSuccessAfter(t0 time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, c := range l.calls {
		if c.err == nil && c.start.After(t0) && (first.IsZero() || c.end.Before(first)) {
			first = c.end
		}
	}
	return first
}

func (l *signLoad) successes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.calls {
		if c.err == nil {
			n++
		}
	}
	return n
}

// agentToken creates a token with the agents' policy, as an operator
// would hand one to an agent.
func agentToken(t *testing.T, c *api.Client) string {
	t.Helper()
	s, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{vault.DefaultPolicy}, TTL: "1h"})
	if err != nil {
		t.Fatalf("create agent token: %v", err)
	}
	return s.Auth.ClientToken
}

// A 3-node Raft cluster loses its active node while an agent signs:
// every call succeeds or is an outage (the cache keeps serving the SVIDs
// it holds), signing resumes once a standby takes over, and the agent's
// token, replicated by Raft, keeps working without a new login.
func TestSigningRidesThroughAVaultLeaderFailover(t *testing.T) {
	cl := vaulttest.StartCluster(t, 3)
	active := cl.Active(t)
	// `sworn vault setup` through a standby, which forwards to the active node.
	standby := cl.Client((active + 1) % 3)
	if _, err := vault.NewAdmin(standby, "", "").Setup(context.Background(), vault.SetupOptions{TrustDomain: td}); err != nil {
		t.Fatalf("Setup through a standby: %v", err)
	}
	addrs := cl.Addrs()
	// The active node first: the agent's calls go to it until it dies.
	addrs[0], addrs[active] = addrs[active], addrs[0]
	token := agentToken(t, standby)
	c := newCA(t, vault.Config{Addresses: addrs, Auth: vault.Auth{TokenFile: tokenFile(t, token)}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Run(ctx) }()

	load := startSignLoad(t, c, 4)
	defer load.Stop()
	testutil.Eventually(t, "signing before the failover", func() bool { return load.successes() >= 20 })
	killed := time.Now()
	cl.Kill(active)
	var resumed time.Time
	testutil.EventuallyWithin(t, 30*time.Second, "signing to resume after the active node was killed", func() bool {
		resumed = load.firstSuccessAfter(killed)
		return !resumed.IsZero()
	})
	calls := load.Stop()
	failed := 0
	for _, call := range calls {
		if call.err != nil && !errors.Is(call.err, ca.ErrUnavailable) {
			t.Errorf("call at %v after the kill: %v, want success or ca.ErrUnavailable", call.start.Sub(killed), call.err)
		}
		if call.err != nil {
			failed++
		}
	}
	if n := c.Logins(); n != 1 {
		t.Errorf("%d logins, want 1: the agent's token should keep working on the new active node", n)
	}
	// The killed node comes back from its own data, rejoins as a standby
	// and serves the same token.
	cl.Restart(t, active)
	back := newCA(t, vault.Config{Address: cl.Nodes[active].Addr, Auth: vault.Auth{TokenFile: tokenFile(t, token)}})
	if err := signWithin(t, back, 5*time.Second); err != nil {
		t.Errorf("sign through the restarted node: %v", err)
	}
	t.Logf("failover gap (SIGKILL of the active node to the first SVID signed after it): %v; %d of %d calls (4 loops without backoff) failed as outages; new active node: %s",
		resumed.Sub(killed).Round(time.Millisecond), failed, len(calls), cl.Nodes[cl.Active(t)].ID)
}
