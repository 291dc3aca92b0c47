package agent

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/agent/config"
	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/agent/telemetry"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/vault"
	"github.com/sworn-id/sworn/ca/vault/vaulttest"
	"github.com/sworn-id/sworn/internal/testutil"
)

// The life tests run the agent's own renewal machinery (newAuthority,
// newCache, retryWhenCAReturns) on one fake clock that only the test moves.
const (
	lifeIdentities = 20
	// lifeRate is rotation.max_per_second; the cache's burst is
	// max(1, int(rate)).
	lifeRate = 5
	// lifeDenseStep is how far the clock moves while a renewal waits on
	// the rate cap. A call is made at most one step after its turn (the
	// step that fired its timer), or two if the test misses a goroutine
	// between two clock waits (see settle): under 1/(2*lifeRate), so no
	// fake second can hold more than rate+burst calls the cap allowed.
	lifeDenseStep = 50 * time.Millisecond
	// lifeSparseStep caps a step when nothing is due, so the CA's own
	// maintenance loop runs at least once a fake minute.
	lifeSparseStep = time.Minute
	// lifeIdleWaiters are the clock waiters when no CA call is waiting:
	// the cache's idle ticker and the backend's loop (the embedded CA's
	// maintenance, Vault's bundle refresh).
	lifeIdleWaiters = 2
	// The agent's backoff after a failed renewal (newCache).
	lifeBackoffMax = time.Minute
)

// lifeRecorder is the agent's CA as the cache sees it: every call is
// counted at its fake time, and every SVID the CA returns is checked
// against the CA certificate that signed it.
type lifeRecorder struct {
	ca.Authority
	clk            clock.PassiveClock
	started, ended atomic.Int64

	mu       sync.Mutex
	calls    []time.Time
	issuers  []*x509.Certificate // every CA certificate ever published
	latest   map[spiffeid.ID]*x509.Certificate
	signed   int
	clamped  int // SVIDs cut short to end with their issuer
	problems []string
}

func (r *lifeRecorder) SignX509SVID(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	r.started.Add(1)
	defer r.ended.Add(1)
	now := r.clk.Now()
	chain, err := r.Authority.SignX509SVID(ctx, req)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, now)
	if err == nil && len(chain) > 0 {
		r.checkLocked(req, chain, now)
	}
	return chain, err
}

// checkLocked records a problem unless chain's leaf lies within the
// validity of the CA certificate that signed it; r.mu must be held.
func (r *lifeRecorder) checkLocked(req ca.X509SVIDRequest, chain []*x509.Certificate, now time.Time) {
	for _, c := range append(slices.Clone(chain[1:]), r.Authorities().X509...) {
		if !slices.ContainsFunc(r.issuers, c.Equal) {
			r.issuers = append(r.issuers, c)
		}
	}
	leaf := chain[0]
	i := slices.IndexFunc(r.issuers, func(c *x509.Certificate) bool { return leaf.CheckSignatureFrom(c) == nil })
	if i < 0 {
		r.problems = append(r.problems, fmt.Sprintf("at %v: SVID for %s (serial %x) is signed by no CA certificate the CA published", now, req.ID, leaf.SerialNumber))
		return
	}
	issuer := r.issuers[i]
	if leaf.NotAfter.After(issuer.NotAfter) || leaf.NotBefore.Before(issuer.NotBefore) {
		r.problems = append(r.problems, fmt.Sprintf("at %v: SVID for %s valid %v..%v outside its issuer's %v..%v",
			now, req.ID, leaf.NotBefore, leaf.NotAfter, issuer.NotBefore, issuer.NotAfter))
	}
	if leaf.NotAfter.Equal(issuer.NotAfter) {
		r.clamped++
	}
	r.signed++
	if now.Before(leaf.NotAfter) { // an expired one is refused by the cache
		r.latest[req.ID] = leaf
	}
}

func (r *lifeRecorder) snapshot() (calls []time.Time, signed, clamped int, problems []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls = slices.Clone(r.calls)
	slices.SortFunc(calls, time.Time.Compare)
	return calls, r.signed, r.clamped, slices.Clone(r.problems)
}

func (r *lifeRecorder) latestFor(id spiffeid.ID) *x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest[id]
}

// lifeSub is one workload's subscription and the SVID it was last seen
// holding.
type lifeSub struct {
	id   spiffeid.ID
	sub  *cache.Subscription
	held *x509.Certificate
}

// lifeRig drives the agent's CA backend and SVID cache through fake time.
type lifeRig struct {
	t       *testing.T
	clk     *clocktesting.FakeClock
	a       *Agent
	rec     *lifeRecorder
	subs    []*lifeSub
	want    int // identities subscribed (or being subscribed)
	workers int
}

// newLifeRig builds the agent's CA backend (newAuthority) and SVID cache
// (newCache) from cfg, both on clk, and runs them with the agent's
// retry-when-the-CA-returns loop until the test ends.
func newLifeRig(t *testing.T, cfg *config.Config, clk *clocktesting.FakeClock) *lifeRig {
	t.Helper()
	cfg.Rotation.MaxPerSecond = lifeRate
	cfg.SetDefaults()
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), metrics: telemetry.New(), clock: clk}
	auth, runCA, err := newAuthority(cfg, a.log, a.observeCA)
	if err != nil {
		t.Fatal(err)
	}
	rec := &lifeRecorder{Authority: auth, clk: clk, latest: map[spiffeid.ID]*x509.Certificate{}}
	a.auth = rec
	a.cache = a.newCache()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = runCA(ctx) })
	wg.Go(func() { _ = a.cache.Run(ctx) })
	wg.Go(func() { a.retryWhenCAReturns(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &lifeRig{t: t, clk: clk, a: a, rec: rec, workers: cfg.Rotation.MaxConcurrent}
}

// lifeConfig is an agent config for the example.org trust domain with its
// data dir under the test's temporary directory.
func lifeConfig(t *testing.T) *config.Config {
	t.Helper()
	return &config.Config{TrustDomain: "example.org", DataDir: filepath.Join(t.TempDir(), "data")}
}

// subscribe subscribes n workloads, one identity each with ttl, all at
// once, moving the clock while their first SVIDs wait on the rate cap.
func (r *lifeRig) subscribe(n int, ttl time.Duration) {
	r.t.Helper()
	type result struct {
		s   *lifeSub
		err error
	}
	td := spiffeid.RequireTrustDomainFromString(r.a.cfg.TrustDomain)
	results := make(chan result, n)
	r.want = n
	for i := range n {
		id, err := spiffeid.FromSegments(td, fmt.Sprintf("w%d", i))
		if err != nil {
			r.t.Fatal(err)
		}
		go func() {
			sub, err := r.a.cache.Subscribe(context.Background(), []registry.Entry{{ID: id, TTL: ttl}}, cache.Requester{})
			results <- result{&lifeSub{id: id, sub: sub}, err}
		}()
	}
	for len(r.subs) < n {
		select {
		case res := <-results:
			if res.err != nil {
				r.t.Fatalf("subscribe %s: %v", res.s.id, res.err)
			}
			r.t.Cleanup(res.s.sub.Close)
			r.subs = append(r.subs, res.s)
		default:
			r.step()
		}
	}
	r.settle()
	r.observe()
}

// state is how many identities are cached, how many of those are due
// (renewing, or queued for a worker), and the nearest renewal after now.
func (r *lifeRig) state(now time.Time) (cached, due int, next time.Time) {
	ids := r.a.cache.Identities()
	for _, id := range ids {
		switch {
		case !id.NextRenewal.After(now):
			due++
		case next.IsZero() || id.NextRenewal.Before(next):
			next = id.NextRenewal
		}
	}
	return len(ids), due, next
}

// quiet reports whether everything the last step made due has run and
// the agent waits on the clock alone: no CA call in flight, each
// issuance or renewal holding a worker waits on the rate cap's timer,
// and the scheduler's timer is set whenever a worker is free for a
// later renewal.
func (r *lifeRig) quiet() bool {
	if r.rec.started.Load() != r.rec.ended.Load() {
		return false
	}
	cached, due, _ := r.state(r.clk.Now())
	want := lifeIdleWaiters + min(r.want-cached+due, r.workers)
	if due < r.workers && cached > due {
		want++
	}
	return r.clk.Waiters() == want
}

// settle waits until the agent is quiet twice in a row with no CA call
// in between, so a goroutine passing from one clock wait to the next is
// not taken for quiet.
func (r *lifeRig) settle() {
	r.t.Helper()
	deadline := time.Now().Add(testutil.WaitTimeout)
	for {
		calls := r.rec.started.Load()
		if r.quiet() {
			time.Sleep(200 * time.Microsecond)
			if r.quiet() && r.rec.started.Load() == calls {
				return
			}
		}
		if time.Now().After(deadline) {
			cached, due, _ := r.state(r.clk.Now())
			r.t.Fatalf("at %v: the agent did not settle: %d clock waiters, %d of %d identities cached, %d due, %d CA calls in flight",
				r.clk.Now(), r.clk.Waiters(), cached, r.want, due, r.rec.started.Load()-r.rec.ended.Load())
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// step moves the clock once the agent is quiet: by lifeDenseStep while a
// call waits on the rate cap, else to the next renewal (at most
// lifeSparseStep away), so every renewal starts at its due time.
func (r *lifeRig) step() {
	r.t.Helper()
	r.settle()
	now := r.clk.Now()
	cached, due, next := r.state(now)
	d := lifeSparseStep
	switch {
	case due > 0 || cached < r.want:
		d = lifeDenseStep
	case !next.IsZero():
		d = min(d, next.Sub(now))
	}
	r.clk.Step(d)
}

// runUntil steps to end, checking what every subscription holds after
// each step.
func (r *lifeRig) runUntil(end time.Time) {
	r.t.Helper()
	for r.clk.Now().Before(end) {
		r.step()
		r.settle()
		r.observe()
	}
}

// observe fails on any problem the recorder found, and unless every
// subscription holds one SVID for its identity until the newest the CA
// issued for it expires, and that one: not expired when first handed
// out, announced on Updates when it replaced another.
func (r *lifeRig) observe() {
	r.t.Helper()
	now := r.clk.Now()
	if _, _, _, problems := r.rec.snapshot(); len(problems) > 0 {
		r.t.Fatalf("%d bad SVIDs, the first: %s", len(problems), problems[0])
	}
	for _, s := range r.subs {
		updated := false
		select {
		case <-s.sub.Updates():
			updated = true
		default:
		}
		svids, latest := s.sub.SVIDs(), r.rec.latestFor(s.id)
		if len(svids) == 0 && now.Before(latest.NotAfter) {
			r.t.Fatalf("at %v: %s's subscription holds no SVID, while its last one is valid until %v", now, s.id, latest.NotAfter)
		}
		if len(svids) > 1 {
			r.t.Fatalf("at %v: %s's subscription holds %d SVIDs, want 1", now, s.id, len(svids))
		}
		if len(svids) == 0 {
			continue
		}
		chain, err := svids[0].Certificates()
		if err != nil {
			r.t.Fatalf("at %v: %s's SVID does not parse: %v", now, s.id, err)
		}
		leaf := chain[0]
		if s.held != nil && leaf.Equal(s.held) {
			continue
		}
		if !leaf.Equal(latest) {
			r.t.Fatalf("at %v: %s's subscription holds serial %x, not the newest SVID the CA issued for it", now, s.id, leaf.SerialNumber)
		}
		if svids[0].Entry.ID != s.id || len(leaf.URIs) != 1 || leaf.URIs[0].String() != s.id.String() {
			r.t.Fatalf("at %v: %s's subscription holds an SVID for %v", now, s.id, leaf.URIs)
		}
		if !now.Before(leaf.NotAfter) {
			r.t.Fatalf("at %v: %s was handed an SVID that expired at %v", now, s.id, leaf.NotAfter)
		}
		if s.held != nil && !updated {
			r.t.Fatalf("at %v: %s's SVID changed without an update", now, s.id)
		}
		s.held = leaf
	}
}

// checkRate fails if any fake second holds more CA calls than the cap
// allows (rate + burst), or if none came near the cap, which would leave
// it untested.
func (r *lifeRig) checkRate() {
	r.t.Helper()
	calls, _, _, _ := r.rec.snapshot()
	bound := lifeRate + max(1, int(lifeRate))
	worst, at := 0, time.Time{}
	for i, j := 0, 0; i < len(calls); i++ {
		for calls[i].Sub(calls[j]) >= time.Second {
			j++
		}
		if n := i - j + 1; n > worst {
			worst, at = n, calls[j]
		}
	}
	if worst > bound {
		r.t.Fatalf("%d CA calls in the fake second from %v, want at most %d (rotation.max_per_second %d + burst)", worst, at, bound, lifeRate)
	}
	// Calls made exactly on their turns put at most bound-1 in a
	// half-open second (the burst, then one every 1/rate).
	if worst < bound-1 {
		r.t.Fatalf("at most %d CA calls in a fake second: the test never reached the cap of %d", worst, bound)
	}
	r.t.Logf("%d CA calls in all, at most %d in a fake second (from %v)", len(calls), worst, at)
}

// checkBackoff fails unless the CA calls in [from, to), when no CA can
// sign and every renewal has failed for minutes, keep to the agent's
// backoff: each identity waits between half of lifeBackoffMax (the
// jitter's least) and all of it between attempts.
func (r *lifeRig) checkBackoff(from, to time.Time) {
	r.t.Helper()
	calls, _, _, _ := r.rec.snapshot()
	n := 0
	for _, c := range calls {
		if !c.Before(from) && c.Before(to) {
			n++
		}
	}
	w := to.Sub(from)
	most := r.want * (int(w/(lifeBackoffMax/2)) + 1)
	least := r.want * (int(w/lifeBackoffMax) - 1)
	if n > most || n < least {
		r.t.Fatalf("%d CA calls for %d identities in the %v from %v, want %d..%d (one per %v..%v each)", n, r.want, w, from, least, most, lifeBackoffMax/2, lifeBackoffMax)
	}
	r.t.Logf("%d CA calls for %d identities in the %v after the CA was past use", n, r.want, w)
}

// lifeUnwritable replaces dir by a regular file, so every write under it
// fails with ENOTDIR, for root too (chmod would not stop root), as
// ca/local's life test does.
func lifeUnwritable(t *testing.T, dir string) {
	t.Helper()
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The embedded CA's whole life through the agent's cache, with the CA's
// data dir unwritable from the start so no successor is ever made: 20
// workloads subscribe at once; their SVIDs are renewed, cut short to end
// with the CA, then refused in its last minute; the cache keeps serving
// each workload the newest SVID until it expires and, after the CA's end,
// retries at the backoff's pace. No SVID outlives or predates its CA, none
// is handed out expired, and no fake second holds more CA calls than
// rotation.max_per_second allows.
func TestLifeOfTheEmbeddedCAWithAnUnwritableDataDir(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	cfg := lifeConfig(t)
	cfg.CA.Type = "local"
	cfg.CA.Local.TTL = time.Hour
	cfg.CA.Local.Clock = clk
	r := newLifeRig(t, cfg, clk)
	cas := r.rec.Authorities().X509
	if len(cas) != 1 {
		t.Fatalf("%d CAs at start, want 1", len(cas))
	}
	end := cas[0].NotAfter
	lifeUnwritable(t, filepath.Join(cfg.DataDir, "ca"))

	r.subscribe(lifeIdentities, 10*time.Minute)
	r.runUntil(end.Add(20 * time.Minute))

	_, signed, clamped, _ := r.rec.snapshot()
	if clamped == 0 {
		t.Fatalf("of %d SVIDs none was cut short to end with the CA: the test never reached the CA's last SVID lifetime", signed)
	}
	if got := r.rec.Authorities().X509; len(got) != 0 {
		t.Fatalf("%d CAs after the only one expired with no successor, want none", len(got))
	}
	r.checkRate()
	r.checkBackoff(end.Add(5*time.Minute), end.Add(20*time.Minute))
}

// A Vault root that expires soon, through the agent's cache: 20 workloads
// get SVIDs while the root covers them; once it cannot cover a full SVID
// lifetime every renewal is refused before Vault is asked; the cache
// serves each workload its SVID until it expires and, past the root's end,
// retries at the backoff's pace. No SVID outlives or predates its issuer,
// none is handed out expired, and no fake second holds more CA calls than
// rotation.max_per_second allows.
func TestLifeOfAnExpiringVaultRoot(t *testing.T) {
	const svidTTL = 5 * time.Minute
	srv := vaulttest.Start(t)
	admin := vault.NewAdmin(srv.Client, "", "")
	td := spiffeid.RequireTrustDomainFromString("example.org")
	// Vault signs by the real clock: the root covers a full SVID for only
	// 20 s, the first fake seconds, while the fake clock is close to it.
	if _, err := admin.Setup(context.Background(), vault.SetupOptions{TrustDomain: td, RootTTL: svidTTL + 20*time.Second}); err != nil {
		t.Fatal(err)
	}
	iss, err := admin.Issuers(context.Background())
	if err != nil || len(iss) != 1 {
		t.Fatalf("issuers: %v, %v", iss, err)
	}
	end := iss[0].Certificate.NotAfter
	clk := clocktesting.NewFakeClock(time.Now())
	cfg := lifeConfig(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(vaulttest.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.CA.Type = "vault"
	cfg.CA.Vault = vault.Config{Address: srv.Addr, BundleRefresh: 10 * time.Second, Clock: clk,
		Auth: vault.Auth{Method: "token", TokenFile: tokenFile}}
	r := newLifeRig(t, cfg, clk)

	r.subscribe(lifeIdentities, svidTTL)
	r.runUntil(end.Add(20 * time.Minute))

	if _, signed, _, _ := r.rec.snapshot(); signed < lifeIdentities {
		t.Fatalf("Vault signed %d SVIDs, want at least %d", signed, lifeIdentities)
	}
	r.checkRate()
	r.checkBackoff(end.Add(5*time.Minute), end.Add(20*time.Minute))
}
