package trust

import (
	"crypto"
	"crypto/x509"
	"maps"
	"slices"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Store keeps X.509 bundles by trust domain.
type Store struct {
	mu      sync.RWMutex
	snap    Snapshot
	changed chan struct{}
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

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{snap: Snapshot{Bundles: map[spiffeid.TrustDomain]*x509bundle.Bundle{}, JWT: map[spiffeid.TrustDomain]*jwtbundle.Bundle{}}, changed: make(chan struct{})}
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// publish needs s.mu held for writing.
func (s *Store) publish(bundles map[spiffeid.TrustDomain]*x509bundle.Bundle, jwt map[spiffeid.TrustDomain]*jwtbundle.Bundle) {
	s.snap = Snapshot{Seq: s.snap.Seq + 1, Bundles: bundles, JWT: jwt}
	close(s.changed)
	s.changed = make(chan struct{})
}
