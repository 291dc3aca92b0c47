package cache

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/agent/telemetry"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/rotation"
)

// Signer is what the cache needs from a CA.
type Signer interface {
	SignX509SVID(ctx context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error)
}

// Defaults of Config, which are also the agent file's defaults of
// rotation.max_concurrent and svid.idle_timeout.
const (
	DefaultMaxConcurrent = 4
	DefaultIdleTimeout   = 10 * time.Minute
	// DefaultSignTimeout bounds one CA call. A hung CA (a paused Vault)
	// would otherwise hold a worker until its HTTP client gives up, and
	// only then be reported unreachable; 30 s is far under the half of an
	// SVID's life that renewal leaves as margin at the default ttl. A
	// renewal gets less when its SVID has less left (see signTimeout).
	DefaultSignTimeout = 30 * time.Second
	// DefaultRemoteMaxPerSecond is the agent file's default of
	// rotation.max_per_second for a CA that other agents share (Vault
	// signing each SVID, step-ca). A node seldom holds more than a few
	// hundred identities: 20 a second re-issues 600 in 30 s after a CA
	// change, while 100 nodes ask a shared CA for at most 2,000 a second.
	// The embedded CA (and Vault's intermediate mode, which signs in the
	// agent) have no default cap: their calls never leave the process.
	DefaultRemoteMaxPerSecond = 20
	// DefaultReissueSpread is the agent file's default of
	// rotation.reissue_spread: after a CA change, 100 SVIDs are re-issued
	// over 5 s, 20 a second, the pace DefaultRemoteMaxPerSecond allows, so
	// the spread, not the cap's burst, sets when each call goes.
	DefaultReissueSpread = 5 * time.Second
	// minSignTimeout is the least time a CA call is given, however little
	// is left of the SVID being renewed.
	minSignTimeout = time.Second
)

// errSignTimeout is the cause given to a CA call's context when it ends
// for taking longer than SignTimeout.
var errSignTimeout = errors.New("cache: CA call timed out")

// Config configures a Cache.
type Config struct {
	Signer  Signer
	KeyType ca.KeyType
	// MaxConcurrent bounds CA calls in flight; 0 means DefaultMaxConcurrent.
	MaxConcurrent int
	// Rate caps CA calls per second, timed on Clock; 0 means no cap.
	Rate float64
	// IdleTimeout is how long an SVID nobody holds is kept; 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	Backoff     rotation.Backoff
	Clock       clock.WithTicker
	Logger      *slog.Logger
	Metrics     *telemetry.Metrics
	// SignTimeout bounds each CA call, timed on Clock; 0 means
	// DefaultSignTimeout. A renewal gets at most a quarter of what is left
	// of the SVID it replaces (never under a second). A call that runs out
	// is ca.ErrUnavailable.
	SignTimeout time.Duration
	// OnCAResult, if set, is told whether each CA call reached the CA.
	OnCAResult func(err error)
	// Dir, if set, is where issued SVIDs are persisted (see Restore).
	Dir string
	// ReissueSpread paces RotateAndWait, the re-issue of every SVID after
	// a signing-CA change: its n renewals are spread over ReissueSpread ×
	// n/100 (see rotation.Scheduler.Spread), so agents that see the change
	// in the same second do not all ask the CA in it; 0 means all at once.
	// RetryFailed, the renewals owed after an outage, goes at the same pace.
	ReissueSpread time.Duration
	// Rand returns uniform numbers in [0,1): renewal jitter and the
	// spread's phase. nil means math/rand/v2.
	Rand func() float64
}

// Requester says who caused an issuance, for the audit line.
type Requester struct {
	PID int32
	UID uint32
}

// SVID is an issued X.509-SVID as the Workload API sends it, so serving it
// to many workloads costs no further work. It keeps the encodings and,
// of the leaf, what renewal and expiry need; not the parsed certificates
// or key (about half of an identity's memory, and a parsed ECDSA key pins
// a cached FIPS copy of itself): Certificates and PrivateKey parse them
// for the rare caller that needs them.
type SVID struct {
	Entry    registry.Entry
	ChainDER []byte // concatenated DER, leaf first
	KeyDER   []byte // PKCS#8
	// Of the leaf:
	Serial              string // hex, for the audit line and the admin API
	NotBefore, NotAfter time.Time
}

// newSVID is the SVID of e for chain (leaf first) and the leaf's key.
func newSVID(e registry.Entry, chain []*x509.Certificate, keyDER []byte) *SVID {
	var chainDER []byte
	for _, cert := range chain {
		chainDER = append(chainDER, cert.Raw...)
	}
	leaf := chain[0]
	return &SVID{Entry: e, ChainDER: chainDER, KeyDER: keyDER, Serial: leaf.SerialNumber.Text(16), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
}

// Certificates parses the chain, leaf first.
func (s *SVID) Certificates() ([]*x509.Certificate, error) {
	return x509.ParseCertificates(s.ChainDER)
}

// PrivateKey parses the leaf's key.
func (s *SVID) PrivateKey() (crypto.Signer, error) { return ca.ParsePrivateKey(s.KeyDER) }

// Cache issues, holds and renews SVIDs.
type Cache struct {
	cfg     Config
	sched   *rotation.Scheduler
	sem     chan struct{}
	limiter *rate.Limiter
	base    context.Context
	stop    context.CancelFunc

	mu    sync.Mutex
	items map[string]*item
	files writer // the SVID files, written off the renewal path

	// reissues are the RotateAndWait calls in progress, each told (under
	// mu) as each of its SVIDs is replaced or dropped.
	reissues map[*reissue]struct{}
}

// reissue is one RotateAndWait: the SVIDs it waits to see replaced, and a
// channel closed when none is left.
type reissue struct {
	left map[*item]*SVID
	done chan struct{}
}

// replacedLocked tells every RotateAndWait waiting for it that its SVID is no longer
// served; c.mu must be held. O(1) per waiter, so a mass re-issue of N
// SVIDs costs O(N), not a rescan of all N at each renewal.
func (c *Cache) replacedLocked(it *item) {
	for r := range c.reissues {
		if _, ok := r.left[it]; ok {
			delete(r.left, it)
			if len(r.left) == 0 {
				close(r.done)
				delete(c.reissues, r)
			}
		}
	}
}

type item struct {
	key   string
	entry registry.Entry
	ready chan struct{} // closed when the first issuance returns
	err   error         // of the first issuance; set before ready closes

	// A failed first issuance stays cached until retryAt, so that workloads
	// asking for it meanwhile get its error without a CA call each; the
	// next ask after retryAt starts attempt+1. Set before ready closes.
	attempt int
	retryAt time.Time

	// guarded by Cache.mu
	svid      *SVID
	subs      map[*Subscription]struct{}
	idleSince time.Time
}

// New returns a Cache; call Run to renew and expire its SVIDs.
func New(cfg Config) *Cache {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.SignTimeout <= 0 {
		cfg.SignTimeout = DefaultSignTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = telemetry.New()
	}
	c := &Cache{cfg: cfg, sem: make(chan struct{}, cfg.MaxConcurrent), items: map[string]*item{}}
	if cfg.Rate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate)))
	}
	c.base, c.stop = context.WithCancel(context.Background())
	c.sched = rotation.New(rotation.Config{
		Renewer: rotation.RenewFunc(c.renew),
		Backoff: cfg.Backoff,
		Workers: cfg.MaxConcurrent,
		Clock:   cfg.Clock,
		Rand:    cfg.Rand,
		OnFailure: func(key string, attempt int, next time.Time, err error) {
			cfg.Metrics.RotationFailures.Inc()
			cfg.Logger.Warn("SVID renewal failed; the current SVID is still served", "key", key, "attempt", attempt, "retry_at", next, "error", err)
		},
	})
	cfg.Metrics.WatchCache(c.Len, c.EarliestExpiry)
	return c
}

// Run renews SVIDs and drops idle ones until ctx ends.
func (c *Cache) Run(ctx context.Context) error {
	defer c.stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.sched.Run(ctx)
	}()
	tick := c.cfg.Clock.NewTicker(max(c.cfg.IdleTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			c.stop()
			<-done
			c.Flush()
			return nil
		case <-tick.C():
			c.dropIdle()
		}
	}
}

// Subscribe returns a subscription holding an SVID for each entry, issuing
// those not cached yet. It fails if any cannot be issued.
func (c *Cache) Subscribe(ctx context.Context, entries []registry.Entry, who Requester) (*Subscription, error) {
	s := &Subscription{c: c, updates: make(chan struct{}, 1)}
	if err := s.Update(ctx, entries, who); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// acquire returns the items for entries, registering s as a holder and
// starting issuance of any that are missing.
func (c *Cache) acquire(s *Subscription, entries []registry.Entry, who Requester) []*item {
	c.mu.Lock()
	defer c.mu.Unlock()
	items := make([]*item, 0, len(entries))
	for _, e := range entries {
		k := e.Key()
		it, ok := c.items[k]
		if !ok || c.retryDue(it) {
			attempt := 0
			if ok {
				attempt = it.attempt // a failed one: never tracked nor persisted
			}
			it = &item{key: k, entry: e, ready: make(chan struct{}), subs: map[*Subscription]struct{}{}, attempt: attempt}
			c.items[k] = it
			go c.issueFirst(it, who)
		}
		it.subs[s] = struct{}{}
		items = append(items, it)
	}
	return items
}

// release drops s as a holder of items.
func (c *Cache) release(s *Subscription, items []*item) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Clock.Now()
	for _, it := range items {
		delete(it.subs, s)
		if len(it.subs) == 0 {
			it.idleSince = now
		}
	}
}

// retryDue reports whether it is a failed first issuance whose backoff has
// passed, to be replaced by a new attempt; c.mu must be held.
func (c *Cache) retryDue(it *item) bool {
	select {
	case <-it.ready:
	default:
		return false // still issuing
	}
	return it.svid == nil && !c.cfg.Clock.Now().Before(it.retryAt)
}

func (c *Cache) issueFirst(it *item, who Requester) {
	svid, err := c.issue(c.base, it.entry, "new", who, c.cfg.SignTimeout)
	c.mu.Lock()
	if err != nil {
		it.attempt++
		it.retryAt = c.cfg.Clock.Now().Add(c.cfg.Backoff.Delay(it.attempt, 0, rand.Float64()))
		err = fmt.Errorf("%w (attempt %d; the next request after %s tries again)", err, it.attempt, it.retryAt.Format(time.RFC3339))
	} else {
		it.svid = svid
	}
	it.err = err
	c.mu.Unlock()
	if err == nil {
		// Tracked before anyone can see it, so a Rotate right after
		// Subscribe returns always reaches it.
		c.sched.Track(it.key, validity(svid))
	}
	close(it.ready)
}

func (c *Cache) renew(ctx context.Context, key string) (rotation.Validity, error) {
	c.mu.Lock()
	it, ok := c.items[key]
	idle := ok && len(it.subs) == 0 && !c.cfg.Clock.Now().Before(it.idleSince.Add(c.cfg.IdleTimeout))
	if idle {
		c.dropLocked(it)
	}
	c.mu.Unlock()
	if !ok || idle {
		return rotation.Validity{}, fmt.Errorf("cache: %s is no longer cached", key)
	}
	c.mu.Lock()
	left := it.svid.NotAfter.Sub(c.cfg.Clock.Now())
	c.mu.Unlock()
	svid, err := c.issue(ctx, it.entry, "renewal", Requester{}, c.signTimeout(left))
	if err != nil {
		return rotation.Validity{}, err
	}
	c.mu.Lock()
	it.svid = svid
	c.replacedLocked(it)
	subs := make([]*Subscription, 0, len(it.subs))
	for s := range it.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.notify()
	}
	return validity(svid), nil
}

// signTimeout is how long a renewal's CA call may take: SignTimeout, cut
// to a quarter of what is left of the SVID it replaces (never under
// minSignTimeout), so that a hung CA still leaves time for retries before
// the SVID expires. A 1-minute SVID renewed at half-life gets 7.5 s, not
// the 30 s that would use up its margin in one call.
func (c *Cache) signTimeout(left time.Duration) time.Duration {
	if left <= 0 {
		return c.cfg.SignTimeout // nothing left to protect
	}
	return min(c.cfg.SignTimeout, max(left/4, minSignTimeout))
}

// issue generates a key and has the CA sign it within timeout, and within
// the concurrency and rate bounds.
func (c *Cache) issue(ctx context.Context, e registry.Entry, reason string, who Requester, timeout time.Duration) (*SVID, error) {
	start := time.Now()
	svid, err := c.callCA(ctx, e, timeout)
	if err != nil {
		c.cfg.Metrics.IssueFailures.WithLabelValues(reason).Inc()
		if errors.Is(err, ca.ErrBadCertificate) {
			c.cfg.Metrics.BadCertificates.Inc()
		}
		return nil, fmt.Errorf("cache: issue %s: %w", e.ID, err)
	}
	c.cfg.Metrics.IssueLatency.Observe(time.Since(start).Seconds())
	c.cfg.Metrics.SVIDsIssued.WithLabelValues(reason).Inc()
	attrs := []any{"spiffe_id", e.ID.String(), "serial", svid.Serial, "not_after", svid.NotAfter, "reason", reason}
	if who.PID != 0 {
		attrs = append(attrs, "pid", who.PID, "uid", who.UID)
	}
	c.cfg.Logger.Info("issued X.509-SVID", attrs...)
	c.persist(svid)
	return svid, nil
}

// callCA has the CA sign an SVID for e, within the concurrency and rate
// bounds, and tells OnCAResult how it went. Only the call holds a slot:
// logging and persisting the result happen after it is given back.
func (c *Cache) callCA(ctx context.Context, e registry.Entry, timeout time.Duration) (*SVID, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	if err := c.waitRate(ctx); err != nil {
		return nil, err
	}
	svid, err := c.signWithin(ctx, e, timeout)
	if c.cfg.OnCAResult != nil {
		c.cfg.OnCAResult(err)
	}
	return svid, err
}

// waitRate waits, on the cache's clock, until the rate cap allows one more
// CA call.
func (c *Cache) waitRate(ctx context.Context) error {
	if c.limiter == nil {
		return nil
	}
	now := c.cfg.Clock.Now()
	r := c.limiter.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	timer := c.cfg.Clock.NewTimer(time.Hour) // set by ArmAt below
	defer timer.Stop()
	// Armed for the instant the reservation allows (see rotation.ArmAt).
	if !rotation.ArmAt(c.cfg.Clock, timer, now.Add(d)) {
		return nil
	}
	select {
	case <-timer.C():
		return nil
	case <-ctx.Done():
		r.CancelAt(c.cfg.Clock.Now())
		return ctx.Err()
	}
}

// signWithin is sign bounded by timeout on the cache's clock. A call that
// runs out is an outage (ca.ErrUnavailable), whatever error the backend
// made of its cancelled context, so the agent reports the CA unreachable
// at the first timeout and the call is retried with backoff.
func (c *Cache) signWithin(ctx context.Context, e registry.Entry, timeout time.Duration) (*SVID, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := c.cfg.Clock.NewTimer(timeout)
	defer timer.Stop()
	go func() {
		select {
		case <-timer.C():
			cancel(errSignTimeout)
		case <-ctx.Done():
		}
	}()
	svid, err := c.sign(ctx, e)
	if err != nil && errors.Is(context.Cause(ctx), errSignTimeout) && !errors.Is(err, ca.ErrUnavailable) {
		err = fmt.Errorf("%w: the CA did not answer within %v: %w", ca.ErrUnavailable, timeout, err)
	}
	return svid, err
}

func (c *Cache) sign(ctx context.Context, e registry.Entry) (*SVID, error) {
	key, err := c.cfg.KeyType.Generate()
	if err != nil {
		return nil, err
	}
	chain, err := c.cfg.Signer.SignX509SVID(ctx, ca.X509SVIDRequest{ID: e.ID, Key: key, TTL: e.TTL, DNSNames: e.DNSNames})
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: the CA returned no certificate", ca.ErrBadCertificate)
	}
	// An SVID already expired by the agent's clock would be due for
	// renewal at once, and again after that: refuse it, so it is retried
	// with backoff instead of in a loop.
	if now := c.cfg.Clock.Now(); !now.Before(chain[0].NotAfter) {
		return nil, fmt.Errorf("%w: the CA returned an SVID that expired at %s, before the agent's time %s (check the clocks of the CA and this node)",
			ca.ErrBadCertificate, chain[0].NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return newSVID(e, chain, keyDER), nil
}

func (c *Cache) dropIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Clock.Now()
	cutoff := now.Add(-c.cfg.IdleTimeout)
	for _, it := range c.items {
		switch {
		case len(it.subs) > 0:
		case it.svid != nil && !it.idleSince.After(cutoff):
			c.dropLocked(it)
		case c.retryDue(it) && !it.retryAt.After(cutoff):
			delete(c.items, it.key) // a failed first issuance, long past its retry
		}
	}
}

// dropLocked needs c.mu held.
func (c *Cache) dropLocked(it *item) {
	delete(c.items, it.key)
	c.replacedLocked(it)
	c.sched.Untrack(it.key)
	c.unpersist(it.key)
	c.cfg.Logger.Debug("dropped idle SVID", "spiffe_id", it.entry.ID.String())
}

// RetryFailed renews every SVID whose renewal failed, paced as a re-issue
// is (ReissueSpread per 100, most urgent first, none past half its
// remaining life, an expired one at once), and returns how many. Call it
// when the CA is known to answer again, so an SVID that expired during an
// outage does not wait out its backoff. The pace matters after a Vault
// leader failover: every agent's renewals failed from the same instant and
// every agent sees the new leader within the same second, so backlogs sent
// at once would reach it together.
func (c *Cache) RetryFailed() int { return c.sched.RetryFailed(c.cfg.ReissueSpread / 100) }

// Rotate re-issues now every cached SVID for one of ids, or every cached
// SVID if ids is empty, and returns how many were scheduled.
func (c *Cache) Rotate(ids ...spiffeid.ID) int {
	if len(ids) == 0 {
		return c.sched.Force()
	}
	c.mu.Lock()
	var keys []string
	for k, it := range c.items {
		if slices.Contains(ids, it.entry.ID) {
			keys = append(keys, k)
		}
	}
	c.mu.Unlock()
	if len(keys) == 0 {
		return 0
	}
	return c.sched.Force(keys...)
}

// RotateAndWait re-issues every cached SVID, as Rotate does but paced over
// ReissueSpread per 100 SVIDs, and returns once each SVID cached at the
// call has been replaced or dropped, with how many there were; or when ctx
// ends. It takes up to that window. Renewals that fail are retried with
// backoff meanwhile, so with the CA down it waits until the CA returns.
func (c *Cache) RotateAndWait(ctx context.Context) (int, error) {
	r := &reissue{left: map[*item]*SVID{}, done: make(chan struct{})}
	c.mu.Lock()
	for _, it := range c.items {
		if it.svid != nil {
			r.left[it] = it.svid
		}
	}
	n := len(r.left)
	if n == 0 {
		c.mu.Unlock()
		return 0, nil
	}
	if c.reissues == nil {
		c.reissues = map[*reissue]struct{}{}
	}
	c.reissues[r] = struct{}{}
	c.mu.Unlock()
	c.sched.Spread(reissueWindow(c.cfg.ReissueSpread, n))
	select {
	case <-r.done:
		return n, nil
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(r.left) == 0 {
			return n, nil
		}
		delete(c.reissues, r)
		return n, fmt.Errorf("cache: %d of %d SVIDs not re-issued yet: %w", len(r.left), n, ctx.Err())
	}
}

// reissueWindow is the window over which n SVIDs are re-issued at spread
// per 100.
func reissueWindow(spread time.Duration, n int) time.Duration {
	if spread <= 0 {
		return 0
	}
	return spread * time.Duration(n) / 100
}

// Len returns how many SVIDs are cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// EarliestExpiry returns when the first cached SVID expires.
func (c *Cache) EarliestExpiry() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var earliest time.Time
	for _, it := range c.items {
		if it.svid != nil && (earliest.IsZero() || it.svid.NotAfter.Before(earliest)) {
			earliest = it.svid.NotAfter
		}
	}
	return earliest, !earliest.IsZero()
}

// Identity describes one cached SVID.
type Identity struct {
	SVID        *SVID
	NextRenewal time.Time
	Holders     int
}

// Identities lists the cached SVIDs, by SPIFFE ID.
func (c *Cache) Identities() []Identity {
	c.mu.Lock()
	var out []Identity
	for _, it := range c.items {
		if it.svid != nil {
			out = append(out, Identity{SVID: it.svid, Holders: len(it.subs)})
		}
	}
	c.mu.Unlock()
	for i := range out {
		out[i].NextRenewal, _ = c.sched.Due(out[i].SVID.Entry.Key())
	}
	slices.SortFunc(out, func(a, b Identity) int {
		if c := compareStrings(a.SVID.Entry.ID.String(), b.SVID.Entry.ID.String()); c != 0 {
			return c
		}
		return compareStrings(a.SVID.Entry.Key(), b.SVID.Entry.Key())
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func validity(s *SVID) rotation.Validity {
	return rotation.Validity{NotBefore: s.NotBefore, NotAfter: s.NotAfter}
}

// Subscription holds SVIDs for one workload stream.
type Subscription struct {
	c       *Cache
	updates chan struct{}

	mu    sync.Mutex
	items []*item
}

// Updates receives a value whenever an SVID the subscription holds changes.
// Values coalesce: after a receive, read SVIDs for the full current set.
func (s *Subscription) Updates() <-chan struct{} { return s.updates }

func (s *Subscription) notify() {
	select {
	case s.updates <- struct{}{}:
	default:
	}
}

// SVIDs returns the current SVID of every held entry, in entry order,
// leaving out any that has expired (on the cache's clock): one the CA has
// not renewed in time is never handed out.
func (s *Subscription) SVIDs() []*SVID {
	s.mu.Lock()
	items := s.items
	s.mu.Unlock()
	now := s.c.cfg.Clock.Now()
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	out := make([]*SVID, 0, len(items))
	for _, it := range items {
		if it.svid != nil && now.Before(it.svid.NotAfter) {
			out = append(out, it.svid)
		}
	}
	return out
}

// Update makes the subscription hold exactly entries, issuing any SVIDs not
// cached yet. On error the previous set is kept.
func (s *Subscription) Update(ctx context.Context, entries []registry.Entry, who Requester) error {
	items := s.c.acquire(s, entries, who)
	for _, it := range items {
		select {
		case <-it.ready:
		case <-ctx.Done():
			s.c.release(s, s.notHeld(items))
			return fmt.Errorf("cache: waiting for %s: %w", it.entry.ID, ctx.Err())
		}
		if it.err != nil {
			s.c.release(s, s.notHeld(items))
			return it.err
		}
	}
	s.mu.Lock()
	old := s.items
	s.items = items
	s.mu.Unlock()
	var gone []*item
	for _, it := range old {
		if !slices.Contains(items, it) {
			gone = append(gone, it)
		}
	}
	s.c.release(s, gone)
	return nil
}

// notHeld returns the items of next that s does not already hold: on a
// failed Update, the ones it acquired for nothing and must give back.
func (s *Subscription) notHeld(next []*item) []*item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*item
	for _, it := range next {
		if !slices.Contains(s.items, it) {
			out = append(out, it)
		}
	}
	return out
}

// Close releases every SVID the subscription holds.
func (s *Subscription) Close() {
	s.mu.Lock()
	items := s.items
	s.items = nil
	s.mu.Unlock()
	s.c.release(s, items)
}
