package bundle

import (
	"crypto"
	"crypto/x509"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/internal/notify"
)

// Store keeps the X.509 and JWT bundles of each trust domain: the
// agent's own and the federated ones.
type Store struct {
	mu      sync.RWMutex
	snap    Snapshot
	changed notify.Notifier // Notify under mu, after the state changes
}

// Snapshot is an immutable view of a Store.
type Snapshot struct {
	// Seq increases with every change.
	Seq     uint64
	Bundles map[spiffeid.TrustDomain]*x509bundle.Bundle
	JWT     map[spiffeid.TrustDomain]*jwtbundle.Bundle
}

// JWTSet returns the JWT bundles as a go-spiffe bundle set.
func (s Snapshot) JWTSet() *jwtbundle.Set {
	return jwtbundle.NewSet(slices.Collect(maps.Values(s.JWT))...)
}

// SPIFFEBundle returns td's bundle from the snapshot in SPIFFE format
// (X.509 and JWT authorities), with the snapshot's sequence number, which
// grows with every change, and refreshHint.
func (s Snapshot) SPIFFEBundle(td spiffeid.TrustDomain, refreshHint time.Duration) (*spiffebundle.Bundle, bool) {
	x, hasX := s.Bundles[td]
	j, hasJ := s.JWT[td]
	if !hasX && !hasJ {
		return nil, false
	}
	b := spiffebundle.New(td)
	if hasX {
		b.SetX509Authorities(x.X509Authorities())
	}
	if hasJ {
		b.SetJWTAuthorities(j.JWTAuthorities())
	}
	b.SetSequenceNumber(s.Seq)
	b.SetRefreshHint(refreshHint)
	return b, true
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{snap: Snapshot{Bundles: map[spiffeid.TrustDomain]*x509bundle.Bundle{}, JWT: map[spiffeid.TrustDomain]*jwtbundle.Bundle{}}}
}

// SetX509Authorities replaces the bundle of td and reports whether that
// changed anything.
func (s *Store) SetX509Authorities(td spiffeid.TrustDomain, authorities []*x509.Certificate) bool {
	next := x509bundle.FromX509Authorities(td, authorities)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.snap.Bundles[td]; ok && cur.Equal(next) {
		return false
	}
	bundles := maps.Clone(s.snap.Bundles)
	bundles[td] = next
	s.publish(bundles, s.snap.JWT)
	return true
}

// SetJWTAuthorities replaces the JWT bundle of td and reports whether that
// changed anything.
func (s *Store) SetJWTAuthorities(td spiffeid.TrustDomain, keys map[string]crypto.PublicKey) bool {
	next := jwtbundle.FromJWTAuthorities(td, keys)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.snap.JWT[td]; ok && cur.Equal(next) {
		return false
	}
	jwt := maps.Clone(s.snap.JWT)
	jwt[td] = next
	s.publish(s.snap.Bundles, jwt)
	return true
}

// Remove drops the bundles of td and reports whether there were any.
func (s *Store) Remove(td spiffeid.TrustDomain) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, hasX509 := s.snap.Bundles[td]
	_, hasJWT := s.snap.JWT[td]
	if !hasX509 && !hasJWT {
		return false
	}
	bundles, jwt := maps.Clone(s.snap.Bundles), maps.Clone(s.snap.JWT)
	delete(bundles, td)
	delete(jwt, td)
	s.publish(bundles, jwt)
	return true
}

// Snapshot returns the current bundles.
func (s *Store) Snapshot() Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap
}

// Changed returns a channel closed at the next change.
func (s *Store) Changed() <-chan struct{} {
	return s.changed.Changed()
}

// publish needs s.mu held for writing.
func (s *Store) publish(bundles map[spiffeid.TrustDomain]*x509bundle.Bundle, jwt map[spiffeid.TrustDomain]*jwtbundle.Bundle) {
	s.snap = Snapshot{Seq: s.snap.Seq + 1, Bundles: bundles, JWT: jwt}
	s.changed.Notify()
}
