package workload

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sworn-id/sworn/agent/cache"
)

// sdsSecrets shares the secrets SDS sends among the streams that ask for
// the same ones: a rotation pushed to 1,000 streams of one identity built
// its PEM chain, PEM key and encoded secret 1,000 times, which made SDS's
// fan-out twice the Workload API's. Each SVID's certificate is built once
// and each bundle snapshot's validation contexts once per kind.
//
// What a stream is sent is always built from the very *cache.SVID it
// holds: an entry is used only when it was built from that pointer (the
// cache hands out one immutable SVID per entry key and replaces, never
// edits, it), so a stream can never be sent another SVID's key. Memory is
// bounded by what the cache itself holds, not by the number of streams:
// at most one SVID entry per entry key (a new SVID replaces its entry,
// an expired one is swept, and the cache never hands those out again), and
// the validation contexts of the latest bundle snapshot only.
//
// The zero value is ready to use.
type sdsSecrets struct {
	mu        sync.Mutex
	svids     map[string]*svidSecrets // by registry.Entry.Key
	nextSweep time.Time               // the earliest NotAfter in svids

	bundles atomic.Pointer[bundleSecrets] // of the latest snapshot seen
}

// svidSecrets is one SVID's certificate, built once, and its encoded
// secret under each name asked for (its SPIFFE ID, the default name).
type svidSecrets struct {
	svid *cache.SVID

	mu     sync.Mutex
	cert   *tlsv3.TlsCertificate
	byName map[string]*anypb.Any
}

// bundleSecrets is one bundle snapshot's validation contexts, encoded.
type bundleSecrets struct {
	seq uint64

	mu    sync.Mutex
	byKey map[bundleKey]*anypb.Any
}

// bundleKey is everything a validation context is built from besides the
// snapshot: the name it is sent under, the validator kind and the trust
// domains it holds (one, or every one the caller may see for "ALL").
type bundleKey struct {
	name   string
	spiffe bool
	tds    string // trust domain names, sorted, joined with a space
}

// certificate returns svid's chain and key as the secret name, built at
// most once per SVID and name while svid is the SVID its entry holds.
func (c *sdsSecrets) certificate(svid *cache.SVID, name string, now time.Time) (*anypb.Any, error) {
	e := c.svidEntry(svid, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.byName[name]; a != nil {
		return a, nil
	}
	if e.cert == nil {
		e.cert = tlsCertificate(svid)
	}
	a, err := anypb.New(&tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: e.cert}})
	if err != nil {
		return nil, err
	}
	if e.byName == nil {
		e.byName = map[string]*anypb.Any{}
	}
	e.byName[name] = a
	return a, nil
}

// svidEntry returns the entry built from svid, making it the entry of
// svid's entry key unless that holds a later SVID (a stream that read its
// SVIDs just before a rotation must not evict what every other stream now
// shares). An entry not stored is this caller's alone.
func (c *sdsSecrets) svidEntry(svid *cache.SVID, now time.Time) *svidSecrets {
	if !now.Before(svid.NotAfter) {
		return &svidSecrets{svid: svid} // expired: never handed out again
	}
	key := svid.Entry.Key()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
	if e := c.svids[key]; e != nil {
		if e.svid == svid {
			return e
		}
		if e.svid.NotAfter.After(svid.NotAfter) {
			return &svidSecrets{svid: svid}
		}
	}
	e := &svidSecrets{svid: svid}
	if c.svids == nil {
		c.svids = map[string]*svidSecrets{}
	}
	c.svids[key] = e
	if len(c.svids) == 1 || svid.NotAfter.Before(c.nextSweep) {
		c.nextSweep = svid.NotAfter
	}
	return e
}

// sweep drops the entries of expired SVIDs once the earliest has expired;
// c.mu must be held.
func (c *sdsSecrets) sweep(now time.Time) {
	if len(c.svids) == 0 || now.Before(c.nextSweep) {
		return
	}
	var next time.Time
	for key, e := range c.svids {
		switch {
		case !now.Before(e.svid.NotAfter):
			delete(c.svids, key)
		case next.IsZero() || e.svid.NotAfter.Before(next):
			next = e.svid.NotAfter
		}
	}
	c.nextSweep = next
}

// validation returns the bundles of tds (from ders, of snapshot seq) as a
// validation context named name, built at most once per snapshot.
func (c *sdsSecrets) validation(ders *bundleDERs, name string, spiffe bool, tds []spiffeid.TrustDomain) (*anypb.Any, error) {
	names := make([]string, len(tds))
	for i, td := range tds {
		names[i] = td.Name()
	}
	key := bundleKey{name: name, spiffe: spiffe, tds: strings.Join(names, " ")}
	b := c.bundleSet(ders.seq)
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.byKey[key]; a != nil {
		return a, nil
	}
	secret, err := validationContext(spiffe, ders.der, tds)
	if err != nil {
		return nil, err
	}
	secret.Name = name
	a, err := anypb.New(secret)
	if err != nil {
		return nil, err
	}
	if b.byKey == nil {
		b.byKey = map[bundleKey]*anypb.Any{}
	}
	b.byKey[key] = a
	return a, nil
}

// bundleSet returns the validation contexts of snapshot seq, replacing
// those of an older snapshot; for an older seq than the latest seen (a
// stream that read the bundles just before they changed) it returns a set
// of its own, so the latest is not evicted.
func (c *sdsSecrets) bundleSet(seq uint64) *bundleSecrets {
	for {
		cur := c.bundles.Load()
		switch {
		case cur != nil && cur.seq == seq:
			return cur
		case cur != nil && cur.seq > seq:
			return &bundleSecrets{seq: seq}
		}
		next := &bundleSecrets{seq: seq}
		if c.bundles.CompareAndSwap(cur, next) {
			return next
		}
	}
}

// currentDERs returns the current bundle snapshot's DER with its Seq, a
// consistent pair (bundleDER stores it before returning).
func (s *Server) currentDERs() *bundleDERs {
	s.bundleDER()
	return s.ders.Load()
}
