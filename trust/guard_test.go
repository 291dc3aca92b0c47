package trust_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/internal/testutil"
	"github.com/sworn-id/sworn/trust"
)

func TestGuardReportsEveryDecision(t *testing.T) {
	p, _ := trust.NewPolicy([]string{"spiffe://td/ok"}, nil)
	var seen []trust.Decision
	g := trust.NewGuard(p, trust.WithObserver(func(d trust.Decision) { seen = append(seen, d) }))
	authorize := g.Authorizer()

	if err := authorize(spiffeid.RequireFromString("spiffe://td/ok"), nil); err != nil {
		t.Fatal(err)
	}
	err := authorize(spiffeid.RequireFromString("spiffe://td/other"), nil)
	if !errors.Is(err, trust.ErrNotAuthorized) {
		t.Fatalf("refused peer: %v, want ErrNotAuthorized", err)
	}
	if len(seen) != 2 || !seen[0].Allowed || seen[0].Rule != "allow spiffe://td/ok" || seen[1].Allowed || seen[1].ID.Path() != "/other" {
		t.Fatalf("observed %+v", seen)
	}
}

func TestWatchPolicyFileReloadsAndKeepsThePolicyOnABadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(s string) {
		t.Helper()
		// Written beside and renamed in, as a ConfigMap update is swapped in.
		tmp := filepath.Join(dir, "tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("allow: [spiffe://td/a]\n")
	p, err := trust.LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	g := trust.NewGuard(p)
	var mu sync.Mutex
	var errs []error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go trust.WatchPolicyFile(ctx, path, 10*time.Millisecond, g.SetPolicy, func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	})
	allowed := func(id string) bool { return g.Decide(spiffeid.RequireFromString(id)).Allowed }

	write("allow: [spiffe://td/b]\n")
	testutil.Eventually(t, "the rewritten policy to allow td/b and not td/a", func() bool { return allowed("spiffe://td/b") && !allowed("spiffe://td/a") })

	write("allow: [spiffe://td/b*]\n# a typo\n")
	testutil.Eventually(t, "the typo to be reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(errs) > 0
	})
	if len(errs) != 1 {
		t.Fatalf("errors: %v", errs)
	}
	if !allowed("spiffe://td/b") {
		t.Fatal("a bad file replaced the policy in force")
	}
}
