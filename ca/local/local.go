package local

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
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
	wake  chan struct{}

	mu      sync.RWMutex
	cas     []*generation // by NotBefore, oldest first
	active  *generation
	next    *generation     // prepared successor, if any
	changed notify.Notifier // Notify under mu, after the state changes
}

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
	c := &CA{cfg: cfg, store: &store{dir: cfg.Dir}, wake: make(chan struct{}, 1)}
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

// recoverActive handles a state file that is missing or names no live CA
// while live CAs are on disk. Creating and activating a new CA then (as a
// first start does) would sign SVIDs that no workload trusts yet; the
// newest persisted CA was published before, so it is activated instead,
// with a warning, since a lost state file can also mean someone tampered
// with the directory.
func (c *CA) recoverActive(now time.Time, st stateFile) error {
	if c.active != nil || c.next != nil {
		return nil
	}
	var newest *generation
	for _, a := range c.cas {
		if now.Before(a.cert.NotAfter) {
			newest = a // c.cas is sorted by NotBefore
		}
	}
	if newest == nil {
		return nil // nothing live: maintain creates the first CA
	}
	path := c.store.statePath()
	var what string
	switch {
	case !st.found:
		what = "CA state file " + path + " is missing"
	case st.Active == "":
		what = "CA state file " + path + " names no active CA"
	default:
		what = fmt.Sprintf("CA state file %s names active CA %q", path, st.Active)
		if slices.ContainsFunc(c.cas, func(a *generation) bool { return a.id == st.Active }) {
			what += ", which has expired"
		} else {
			what += ", which is not in " + c.cfg.Dir
		}
	}
	c.cfg.Logger.Warn(what+"; activating the newest persisted CA "+newest.id+
		" (already in the trust bundle workloads were given) instead of creating one they do not trust yet;"+
		" if nobody removed or edited the state file, check who can write "+c.cfg.Dir,
		"ca", newest.id, "not_after", newest.cert.NotAfter, "file", path)
	return c.activate(newest)
}

// SignX509SVID signs a leaf for req.Key's public key with the active CA.
func (c *CA) SignX509SVID(_ context.Context, req ca.X509SVIDRequest) ([]*x509.Certificate, error) {
	if req.ID.IsZero() || req.ID.TrustDomain() != c.cfg.TrustDomain {
		return nil, fmt.Errorf("local ca: %w: %q is not in trust domain %q", ca.ErrInvalidRequest, req.ID, c.cfg.TrustDomain)
	}
	c.mu.RLock()
	active := c.active
	c.mu.RUnlock()
	leaf, err := ca.SignLeaf(active.cert, active.key, req, c.cfg.Clock.Now())
	if err != nil {
		return nil, fmt.Errorf("local ca: %w", err)
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
	return ca.Authorities{X509: certs, Signing: c.active.id, JWT: jwtKeys}
}

// SignJWTSVID signs with the active period's JWT key; a token never
// outlives that key's period, and the key stays published until then.
func (c *CA) SignJWTSVID(_ context.Context, req ca.JWTSVIDRequest) (string, time.Time, error) {
	if req.ID.IsZero() || req.ID.TrustDomain() != c.cfg.TrustDomain {
		return "", time.Time{}, fmt.Errorf("local ca: %w: %q is not in trust domain %q", ca.ErrInvalidRequest, req.ID, c.cfg.TrustDomain)
	}
	c.mu.RLock()
	active := c.active
	c.mu.RUnlock()
	token, exp, err := ca.SignJWT(active.jwtKey, active.jwtKid, req, c.cfg.Clock.Now(), active.cert.NotAfter)
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
		return ca.StateRetired
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
// has been prepared, so that no CA ever signs before it was published.
func (c *CA) ActivateCA(context.Context) (ca.Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.next
	if p == nil {
		return ca.Info{}, fmt.Errorf("local ca: %w: no CA is prepared; prepare one first so workloads trust it before it signs", ca.ErrInvalidRequest)
	}
	if err := c.activate(p); err != nil {
		return ca.Info{}, err
	}
	c.notify()
	return ca.Info{ID: p.id, State: ca.StateActive, Certificate: p.cert}, nil
}

// Run rotates the CA on schedule until ctx ends.
func (c *CA) Run(ctx context.Context) error {
	for {
		now := c.cfg.Clock.Now()
		if err := c.maintain(now); err != nil {
			c.cfg.Logger.Error("CA maintenance failed; retrying in a minute", "error", err)
		}
		wait := time.Minute
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

// maintain prunes expired CAs and prepares or activates on schedule.
func (c *CA) maintain(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	c.cas = live
	if c.next != nil && !now.Before(c.next.cert.NotAfter) {
		c.next = nil
	}
	if c.active != nil && !now.Before(c.active.cert.NotAfter) {
		c.active = nil
	}
	if c.active == nil {
		// First start, or the agent was off past the active CA's life.
		if c.next == nil {
			if _, err := c.prepare(now); err != nil {
				return err
			}
		}
		if err := c.activate(c.next); err != nil {
			return err
		}
		changed = true
	}
	prepareAt, activateAt := c.schedule()
	p := c.next
	if p == nil && !now.Before(prepareAt) {
		var err error
		if p, err = c.prepare(now); err != nil {
			return err
		}
		changed = true
	}
	if p != nil && !now.Before(activateAt) {
		if err := c.activate(p); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		c.notify()
	}
	return nil
}

// schedule returns when the active CA gets a successor and when that
// successor takes over; c.mu must be held.
func (c *CA) schedule() (prepareAt, activateAt time.Time) {
	nb := c.active.cert.NotBefore
	life := c.active.cert.NotAfter.Sub(nb)
	return nb.Add(life / 2), nb.Add(life * 5 / 6)
}

func (c *CA) nextEvent() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	prepareAt, activateAt := c.schedule()
	next := activateAt
	if c.next == nil {
		next = prepareAt
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
		return nil, fmt.Errorf("local ca: %w", err)
	}
	c.next = a
	c.cas = append(c.cas, a)
	slices.SortStableFunc(c.cas, func(x, y *generation) int { return x.cert.NotBefore.Compare(y.cert.NotBefore) })
	c.cfg.Logger.Info("prepared CA", "ca", a.id, "not_before", a.cert.NotBefore, "not_after", a.cert.NotAfter)
	return a, nil
}

// activate makes a the signing CA; c.mu must be held.
func (c *CA) activate(a *generation) error {
	if err := c.store.saveState(c.stateFile(a, nil)); err != nil {
		return fmt.Errorf("local ca: %w", err)
	}
	c.active, c.next = a, nil
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
