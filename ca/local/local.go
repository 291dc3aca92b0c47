package local

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/notify"
)

// CA is the embedded certificate authority. It implements ca.Authority,
// ca.Rotator and ca.Describer.
type CA struct {
	cfg   Config
	store *store

	mu     sync.RWMutex
	cas    []*generation // by NotBefore, oldest first
	active *generation   // nil while no CA may sign
	next   *generation   // prepared successor, if any
	// signsFrom is when next, prepared while no CA was active, may start
	// signing: a CA that replaces a trust workloads already had is
	// published publishDelay before it signs, however it was prepared
	// (set by prepare). Zero: at once (first start).
	signsFrom time.Time
	// trusted: a CA of this directory was published before (state file or
	// CA files found, or one activated), so a replacement must be
	// published before it signs.
	trusted bool
	health  error           // why the last maintenance failed; nil if it did not
	changed notify.Notifier // Notify under mu, after the state changes
}

// publishDelay is how long a CA that replaces one workloads trusted (no
// live CA was left) is published before it signs, so that the agent has
// pushed the new bundle to every workload before the first SVID that
// needs it. A federated peer that polls less often than this still sees
// the new CA's SVIDs before its bundle.
const publishDelay = time.Minute

// Retry bounds for a failed maintenance step (a successor that could not
// be written or activated): the wait doubles from retryMin to retryMax.
const (
	retryMin = time.Second
	retryMax = time.Minute
)

// generation is one rotation period: a CA certificate and the JWT key that
// lives and rotates with it.
type generation struct {
	id     string // hex SubjectKeyId
	cert   *x509.Certificate
	key    crypto.Signer
	jwtKey crypto.Signer
	jwtKid string
}

var (
	_ ca.Authority = (*CA)(nil)
	_ ca.JWTSigner = (*CA)(nil)
	_ ca.Rotator   = (*CA)(nil)
	_ ca.Describer = (*CA)(nil)
)

// New loads the CAs persisted in cfg.Dir, dropping expired ones, or creates
// the first one.
func New(cfg Config) (*CA, error) {
	if cfg.TrustDomain.IsZero() {
		return nil, fmt.Errorf("local ca: trust domain is required")
	}
	if err := cfg.KeyType.Validate(); err != nil {
		return nil, fmt.Errorf("local ca: %w", err)
	}
	cfg.setDefaults()
	if cfg.TTL < minNewTTL {
		return nil, fmt.Errorf("local ca: ttl %v is shorter than the %v minimum", cfg.TTL, minNewTTL)
	}
	c := &CA{cfg: cfg, store: &store{dir: cfg.Dir}}
	cas, st, err := c.store.load()
	if err != nil {
		return nil, fmt.Errorf("local ca: %w", err)
	}
	for _, a := range cas {
		if a.jwtKey != nil {
			continue
		}
		// Written before CAs carried a JWT key: add one.
		if err := a.newJWTKey(); err != nil {
			return nil, fmt.Errorf("local ca: %w", err)
		}
		if err := c.store.save(a); err != nil {
			return nil, fmt.Errorf("local ca: %w", err)
		}
	}
	now := cfg.Clock.Now()
	for _, a := range cas {
		if a.cert.URIs[0].String() != cfg.TrustDomain.IDString() {
			return nil, fmt.Errorf("local ca: %s holds a CA for %s, not %s", cfg.Dir, a.cert.URIs[0], cfg.TrustDomain.ID())
		}
		switch {
		case !now.Before(a.cert.NotAfter):
		case a.id == st.Active:
			c.active = a
		case a.id == st.Prepared:
			c.next = a
		}
	}
	c.cas = cas
	c.trusted = st.found || len(cas) > 0
	if len(cas) > 0 {
		cfg.Logger.Info("loaded persisted CAs", "count", len(cas), "dir", cfg.Dir)
	}
	if err := c.recoverActive(now, st); err != nil {
		return nil, err
	}
	if err := c.maintain(now); err != nil {
		return nil, err
	}
	return c, nil
}

// Health returns nil when the last maintenance step succeeded, else its
// error, which says what to do. It wraps ca.ErrUnavailable when no CA can
// sign (none active, or the active one expired); otherwise the active CA
// still signs and the error is a warning with a deadline.
func (c *CA) Health() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.health
}

// setHealth records the result of a maintenance step and tells OnHealth
// when it changes (the error text included), so a loop retrying the same
// failure does not flood the receiver.
func (c *CA) setHealth(err error) {
	c.mu.Lock()
	prev := c.health
	c.health = err
	c.mu.Unlock()
	same := (prev == nil) == (err == nil) && (err == nil || prev.Error() == err.Error())
	if !same && c.cfg.OnHealth != nil {
		c.cfg.OnHealth(err)
	}
}

// signer returns the active CA, or a ca.ErrUnavailable error that says
// why none is and what to do about it. Whether the active CA's life lets
// it sign now is checked once per signature, by the caller: ca.SignLeaf
// for an X.509-SVID, ca.CheckIssuerLife for a JWT-SVID; refused names the
// CA in that refusal.
func (c *CA) signer() (*generation, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	why := c.why()
	switch {
	case c.active != nil:
		return c.active, nil
	case c.next != nil:
		return nil, fmt.Errorf("local ca: %w: CA %s is published and starts signing at %s, once workloads trust it%s",
			ca.ErrUnavailable, c.next.id, c.signsFrom.UTC().Format(time.RFC3339), why)
	default:
		// No live CA left: an operator must act (ErrExpired), and a
		// later call may succeed once a successor signs (ErrUnavailable).
		return nil, fmt.Errorf("local ca: %w (%w): no CA is active%s", ca.ErrExpired, ca.ErrUnavailable, why)
	}
}

// why is what the last maintenance failed with, to add to a refusal;
// c.mu must be held.
func (c *CA) why() string {
	if c.health == nil {
		return ""
	}
	return "; " + c.health.Error()
}

// refused names a in err, a refusal of a signature by a's life
// (ca.ErrExpired), and adds what the last maintenance failed with; any
// other err only gets the package prefix.
func (c *CA) refused(a *generation, err error) error {
	if !errors.Is(err, ca.ErrExpired) {
		return fmt.Errorf("local ca: %w", err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return fmt.Errorf("local ca: CA %s: %w%s", a.id, err, c.why())
}

// recoverActive handles a state file that is missing or names no live CA
// while this directory held CAs before. Creating and activating a new CA
// then (as a first start does) would sign SVIDs that no workload trusts
// yet. A prepared CA, or else the newest persisted live CA, was published
// before, so it is activated instead; with none left, maintain publishes
// a new CA and holds its signing for publishDelay. Each case logs a
// warning naming what was missing and what was done, since a lost file
// can also mean someone tampered with the directory.
func (c *CA) recoverActive(now time.Time, st stateFile) error {
	if c.active != nil || !c.trusted {
		return nil
	}
	what := c.missing(st)
	check := "; if nobody removed or edited these files, check who can write " + c.cfg.Dir
	if p := c.next; p != nil {
		c.cfg.Logger.Warn(what+"; activating the prepared CA "+p.id+" (already in the trust bundle workloads were given)"+check,
			"ca", p.id, "not_after", p.cert.NotAfter, "file", c.store.statePath())
		return c.activate(p)
	}
	var newest *generation
	for _, a := range c.cas {
		if now.Before(a.cert.NotAfter) {
			newest = a // c.cas is sorted by NotBefore
		}
	}
	if newest == nil {
		c.cfg.Logger.Warn(what+"; no live CA is left, so a new CA is published now and signs only "+publishDelay.String()+
			" later, once workloads trust it; SVIDs of the old CA no longer verify"+check, "file", c.store.statePath())
		return nil
	}
	c.cfg.Logger.Warn(what+"; activating the newest persisted CA "+newest.id+
		" (already in the trust bundle workloads were given) instead of creating one they do not trust yet"+check,
		"ca", newest.id, "not_after", newest.cert.NotAfter, "file", c.store.statePath())
	return c.activate(newest)
}

// missing says why no CA is active after loading: which file is missing
// or what the state file names instead of a live CA.
func (c *CA) missing(st stateFile) string {
	path := c.store.statePath()
	switch {
	case !st.found:
		return "CA state file " + path + " is missing"
	case st.Active == "":
		return "CA state file " + path + " names no active CA"
	}
	what := fmt.Sprintf("CA state file %s names active CA %q", path, st.Active)
	if slices.ContainsFunc(c.cas, func(a *generation) bool { return a.id == st.Active }) {
		return what + ", which has expired"
	}
	return what + ", but its file " + c.store.path(st.Active) + " is missing"
}

// SignX509SVID signs a leaf for req.Key's public key with the active CA.
func (c *CA) SignX509SVID(_ context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	if req.ID.IsZero() || req.ID.TrustDomain() != c.cfg.TrustDomain {
		return nil, fmt.Errorf("local ca: %w: %q is not in trust domain %q", ca.ErrInvalidRequest, req.ID, c.cfg.TrustDomain)
	}
	now := c.cfg.Clock.Now()
	active, err := c.signer()
	if err != nil {
		return nil, err
	}
	leaf, err := ca.SignLeaf(active.cert, active.key, req, now) // checks active's life
	if err != nil {
		return nil, c.refused(active, err)
	}
	return []*x509.Certificate{leaf}, nil
}

// Authorities returns every CA certificate that is not expired.
func (c *CA) Authorities() ca.Authorities {
	c.mu.RLock()
	defer c.mu.RUnlock()
	certs := make([]*x509.Certificate, len(c.cas))
	jwtKeys := make(map[string]crypto.PublicKey, len(c.cas))
	for i, a := range c.cas {
		certs[i] = a.cert
		jwtKeys[a.jwtKid] = a.jwtKey.Public()
	}
	var signing string // none while no CA is active
	if c.active != nil {
		signing = c.active.id
	}
	return ca.Authorities{X509: certs, Signing: signing, JWT: jwtKeys}
}

// SignJWTSVID signs with the active period's JWT key; a token never
// outlives that key's period, and the key stays published until then.
func (c *CA) SignJWTSVID(_ context.Context, req ca.JWTSVIDRequest) (string, time.Time, error) {
	if req.ID.IsZero() || req.ID.TrustDomain() != c.cfg.TrustDomain {
		return "", time.Time{}, fmt.Errorf("local ca: %w: %q is not in trust domain %q", ca.ErrInvalidRequest, req.ID, c.cfg.TrustDomain)
	}
	now := c.cfg.Clock.Now()
	active, err := c.signer()
	if err != nil {
		return "", time.Time{}, err
	}
	if err := ca.CheckIssuerLife(active.cert, now); err != nil {
		return "", time.Time{}, c.refused(active, err)
	}
	token, exp, err := ca.SignJWT(active.jwtKey, active.jwtKid, req, now, active.cert.NotAfter)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("local ca: %w", err)
	}
	return token, exp, nil
}

// Changed is closed at the next change of Authorities.
func (c *CA) Changed() <-chan struct{} {
	return c.changed.Changed()
}

// DescribeCAs lists the CAs, oldest first.
func (c *CA) DescribeCAs(context.Context) ([]ca.Info, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	infos := make([]ca.Info, len(c.cas))
	for i, a := range c.cas {
		infos[i] = ca.Info{ID: a.id, State: c.stateOf(a), Certificate: a.cert}
	}
	return infos, nil
}

// stateOf needs c.mu held.
func (c *CA) stateOf(a *generation) ca.State {
	switch a {
	case c.active:
		return ca.StateActive
	case c.next:
		return ca.StatePrepared
	default:
		return ca.StateOld
	}
}

// PrepareCA publishes a successor CA now, unless one is already prepared,
// in which case that one is returned.
func (c *CA) PrepareCA(context.Context) (ca.Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.next; p != nil {
		return ca.Info{ID: p.id, State: ca.StatePrepared, Certificate: p.cert}, nil
	}
	p, err := c.prepare(c.cfg.Clock.Now())
	if err != nil {
		return ca.Info{}, err
	}
	c.notify()
	return ca.Info{ID: p.id, State: ca.StatePrepared, Certificate: p.cert}, nil
}

// ActivateCA makes the prepared CA the signing one. It refuses when no CA
// has been prepared, so that no CA ever signs before it was published, and
// while a CA prepared with no live CA left is held (publishDelay): Run
// activates that one itself once workloads trust it.
func (c *CA) ActivateCA(context.Context) (ca.Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.next
	if p == nil {
		return ca.Info{}, fmt.Errorf("local ca: %w: no CA is prepared; prepare one first so workloads trust it before it signs", ca.ErrInvalidRequest)
	}
	if c.active == nil && c.cfg.Clock.Now().Before(c.signsFrom) {
		return ca.Info{}, fmt.Errorf("local ca: %w: CA %s is published and starts signing at %s, once workloads trust it; it is activated then without you",
			ca.ErrInvalidRequest, p.id, c.signsFrom.UTC().Format(time.RFC3339))
	}
	if err := c.activate(p); err != nil {
		return ca.Info{}, err
	}
	c.notify()
	return ca.Info{ID: p.id, State: ca.StateActive, Certificate: p.cert}, nil
}

// Run rotates the CA on schedule until ctx ends. A failed step (a
// successor that could not be written, say) is logged with what to do,
// reported through Health and OnHealth, and retried with a backoff that
// doubles from a second to a minute.
func (c *CA) Run(ctx context.Context) error {
	failures := 0
	for {
		now := c.cfg.Clock.Now()
		err := c.maintain(now)
		c.setHealth(err)
		wait := time.Minute
		if err != nil {
			failures++
			wait = retryDelay(failures)
			c.cfg.Logger.Error("CA maintenance failed", "error", err, "retry_in", wait)
		} else {
			failures = 0
		}
		if next := c.nextEvent(); next.After(now) && next.Sub(now) < wait {
			wait = next.Sub(now)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.cfg.Clock.After(wait):
		}
	}
}

// retryDelay is the wait after the n-th failure in a row.
func retryDelay(n int) time.Duration {
	// The shift stops at 6 (64 s, past retryMax), so it never overflows.
	return min(retryMin<<min(n-1, 6), retryMax)
}

// maintain prunes expired CAs and prepares or activates on schedule. It
// notifies about what changed even when a later step fails, and reports
// a failure with what to do about it.
func (c *CA) maintain(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := c.prune(now)
	err := c.advance(now, &changed)
	if changed {
		c.notify()
	}
	if err != nil {
		return c.explain(now, err)
	}
	return nil
}

// prune drops expired CAs from memory and disk; c.mu must be held.
func (c *CA) prune(now time.Time) bool {
	changed := false
	live := c.cas[:0]
	for _, a := range c.cas {
		if now.Before(a.cert.NotAfter) {
			live = append(live, a)
			continue
		}
		changed = true
		if err := c.store.remove(a); err != nil {
			c.cfg.Logger.Warn("could not remove expired CA", "ca", a.id, "error", err)
		}
		c.cfg.Logger.Info("removed expired CA", "ca", a.id, "not_after", a.cert.NotAfter)
	}
	clear(c.cas[len(live):])
	c.cas = live
	if c.next != nil && !now.Before(c.next.cert.NotAfter) {
		c.next = nil
	}
	if c.active != nil && !now.Before(c.active.cert.NotAfter) {
		c.active = nil
	}
	return changed
}

// advance prepares and activates on schedule; c.mu must be held.
func (c *CA) advance(now time.Time, changed *bool) error {
	if c.active == nil {
		// First start, or the agent was off (or could not write its
		// successor) past the active CA's life.
		if c.next == nil {
			if _, err := c.prepare(now); err != nil {
				return err
			}
			*changed = true
		}
		if now.Before(c.signsFrom) {
			return nil
		}
		if err := c.activate(c.next); err != nil {
			return err
		}
		*changed = true
	}
	prepareAt, activateAt := c.schedule()
	p := c.next
	if p == nil && !now.Before(prepareAt) {
		var err error
		if p, err = c.prepare(now); err != nil {
			return err
		}
		*changed = true
	}
	if p != nil && !now.Before(activateAt) {
		if err := c.activate(p); err != nil {
			return err
		}
		*changed = true
	}
	return nil
}

// explain adds to a failed step what it puts at stake and what to do;
// c.mu must be held. The result wraps ca.ErrUnavailable when no CA can
// sign.
func (c *CA) explain(now time.Time, err error) error {
	fix := "make " + c.cfg.Dir + " writable and give it free space"
	if c.cfg.Dir == "" {
		fix = "check the key type"
	}
	if c.active == nil {
		return fmt.Errorf("local ca: %w: no CA can sign: the successor could not be made: %w; %s", ca.ErrUnavailable, err, fix)
	}
	return fmt.Errorf("local ca: the successor CA could not be made: %w; %s before the active CA %s expires at %s",
		err, fix, c.active.id, c.active.cert.NotAfter.UTC().Format(time.RFC3339))
}

// schedule returns when the active CA gets a successor and when that
// successor takes over; c.mu must be held.
func (c *CA) schedule() (prepareAt, activateAt time.Time) {
	if c.active == nil {
		return time.Time{}, time.Time{}
	}
	nb := c.active.cert.NotBefore
	life := c.active.cert.NotAfter.Sub(nb)
	return nb.Add(life / 2), nb.Add(life * 5 / 6)
}

func (c *CA) nextEvent() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var next time.Time
	switch prepareAt, activateAt := c.schedule(); {
	case c.active == nil:
		next = c.signsFrom
	case c.next == nil:
		next = prepareAt
	default:
		next = activateAt
	}
	for _, a := range c.cas {
		if a.cert.NotAfter.Before(next) {
			next = a.cert.NotAfter
		}
	}
	return next
}

// prepare creates, persists and publishes a new CA; c.mu must be held.
func (c *CA) prepare(now time.Time) (*generation, error) {
	a, err := newGeneration(c.cfg.TrustDomain, c.cfg.KeyType, now, c.cfg.TTL)
	if err != nil {
		return nil, fmt.Errorf("local ca: %w", err)
	}
	if err := c.store.save(a); err != nil {
		return nil, fmt.Errorf("local ca: %w", err)
	}
	if err := c.store.saveState(c.stateFile(c.active, a)); err != nil {
		// Without the state, a restart would take this CA for a retired
		// one; do not leave a file behind for each retry.
		if rerr := c.store.remove(a); rerr != nil {
			c.cfg.Logger.Warn("could not remove a CA file that was never recorded", "ca", a.id, "error", rerr)
		}
		return nil, fmt.Errorf("local ca: %w", err)
	}
	c.next = a
	c.cas = append(c.cas, a)
	slices.SortStableFunc(c.cas, func(x, y *generation) int { return x.cert.NotBefore.Compare(y.cert.NotBefore) })
	c.cfg.Logger.Info("prepared CA", "ca", a.id, "not_before", a.cert.NotBefore, "not_after", a.cert.NotAfter)
	if c.active == nil && c.trusted {
		// The hold is set here, not by the caller, so that a CA made on
		// any path (maintenance, PrepareCA) is published before it signs.
		c.signsFrom = now.Add(publishDelay)
		c.cfg.Logger.Warn("no live CA was left: published a new CA that workloads do not trust yet; it signs once they have it",
			"ca", a.id, "signs_from", c.signsFrom)
	}
	return a, nil
}

// activate makes a the signing CA; c.mu must be held.
func (c *CA) activate(a *generation) error {
	if err := c.store.saveState(c.stateFile(a, nil)); err != nil {
		return fmt.Errorf("local ca: %w", err)
	}
	c.active, c.next, c.signsFrom, c.trusted = a, nil, time.Time{}, true
	c.cfg.Logger.Info("activated CA", "ca", a.id, "not_after", a.cert.NotAfter)
	return nil
}

func (c *CA) stateFile(active, next *generation) stateFile {
	var st stateFile
	if active != nil {
		st.Active = active.id
	}
	if next != nil {
		st.Prepared = next.id
	}
	return st
}

// notify needs c.mu held for writing.
func (c *CA) notify() {
	c.changed.Notify()
}

func newGeneration(td spiffeid.TrustDomain, kt ca.KeyType, now time.Time, ttl time.Duration) (*generation, error) {
	key, err := kt.Generate()
	if err != nil {
		return nil, err
	}
	serial, err := ca.NewSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"sworn"}, CommonName: "sworn local CA " + serial.Text(16)[:8]},
		NotBefore:             now.Add(-ca.Backdate),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{td.ID().URL()},
		PermittedURIDomains:   []string{td.Name()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	a := &generation{id: hex.EncodeToString(cert.SubjectKeyId), cert: cert, key: key}
	if err := a.newJWTKey(); err != nil {
		return nil, err
	}
	return a, nil
}

// newJWTKey gives the generation a fresh ES256 key for JWT-SVIDs.
func (a *generation) newJWTKey() error {
	k, err := ca.KeyECP256.Generate()
	if err != nil {
		return err
	}
	kid, err := ca.KeyID(k.Public())
	if err != nil {
		return err
	}
	a.jwtKey, a.jwtKid = k, kid
	return nil
}
