package cache

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/agent/telemetry"
	"github.com/sworn-id/sworn/ca"
)

// Default bounds of a JWTCache. A token of the largest request the Workload
// API accepts (audiences of 16 KiB in all) costs about 40 KiB here, so one
// uid can always keep at least a hundred of those, and thousands of tokens
// of ordinary size (under 1 KiB each).
const (
	DefaultJWTCacheBytes       = 64 << 20
	DefaultJWTCacheBytesPerUID = 4 << 20
)

// jwtSweepMin is the shortest wait between two sweeps for expired tokens,
// so a steady flow of new tokens does not cost a scan of the cache each.
const jwtSweepMin = 10 * time.Second

// jwtItemOverhead approximates what an entry costs beyond its key and token
// (the map slot, two list elements and the item itself), so many tiny
// entries cannot hide behind a byte count of their strings alone.
const jwtItemOverhead = 256

// JWTCache hands out JWT-SVIDs, signing each (caller uid, identity, audience
// set) once and again when half its life has passed, so a client asking
// often does not cost a signature per call. Concurrent requests for the
// same token share one signature.
//
// Memory is bounded in bytes, in total and per uid: a uid over its share
// has its own least recently used tokens dropped (never another uid's), and
// when the cache as a whole is over its bound the least recently used
// tokens of any uid go. A token that alone exceeds a uid's share is handed
// out but not kept. Expired tokens are dropped within jwtSweepMin of their
// expiry whether or not anyone calls again.
type JWTCache struct {
	Signer ca.JWTSigner
	TTL    time.Duration
	// Clock defaults to the real clock; timed sweeps need it to implement
	// clock.WithDelayedExecution (the real and fake clocks do).
	Clock clock.Clock
	// MaxBytes and MaxBytesPerUID bound the cache (see BytesOf); zero
	// means DefaultJWTCacheBytes and DefaultJWTCacheBytesPerUID.
	MaxBytes       int
	MaxBytesPerUID int
	// Metrics, if set, counts evictions and exposes the cache's size.
	Metrics *telemetry.Metrics

	group singleflight.Group
	mu    sync.Mutex
	items map[string]*jwtItem
	lru   *list.List            // of *jwtItem, most recently used first
	byUID map[uint32]*uidTokens // a uid's own LRU order and bytes
	bytes int                   // sum of the size of every item
	sweep clock.Timer           // armed while any item is held
}

type jwtItem struct {
	key         string
	uid         uint32
	token       string
	issued, exp time.Time
	size        int
	all, own    *list.Element
}

type uidTokens struct {
	lru   *list.List // of *jwtItem, most recently used first
	bytes int
}

// Get returns a JWT-SVID for id valid for every audience, asked for by who.
func (j *JWTCache) Get(ctx context.Context, who Requester, id spiffeid.ID, audience []string) (string, error) {
	aud := slices.Clone(audience)
	slices.Sort(aud)
	aud = slices.Compact(aud)
	key := strconv.FormatUint(uint64(who.UID), 10) + "\x00" + id.String() + "\x00" + strings.Join(aud, "\x00")
	now := j.clock().Now()
	if token, ok := j.lookup(key, now); ok {
		return token, nil
	}
	v, err, _ := j.group.Do(key, func() (any, error) {
		token, exp, err := j.Signer.SignJWTSVID(ctx, ca.JWTSVIDRequest{ID: id, Audience: aud, TTL: j.TTL})
		if err != nil {
			return "", fmt.Errorf("cache: sign JWT-SVID for %s: %w", id, err)
		}
		j.store(&jwtItem{key: key, uid: who.UID, token: token, issued: now, exp: exp})
		return token, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// lookup returns the cached token for key while it is in the first half of
// its life, marking it used.
func (j *JWTCache) lookup(key string, now time.Time) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	it, ok := j.items[key]
	if !ok || !now.Before(it.issued.Add(it.exp.Sub(it.issued)/2)) {
		return "", false
	}
	j.lru.MoveToFront(it.all)
	j.byUID[it.uid].lru.MoveToFront(it.own)
	return it.token, true
}

// BytesOf returns what the cache holds in all and for uid, as counted
// against MaxBytes and MaxBytesPerUID: each token's key and text plus a
// fixed overhead per entry.
func (j *JWTCache) BytesOf(uid uint32) (total, ofUID int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if u := j.byUID[uid]; u != nil {
		ofUID = u.bytes
	}
	return j.bytes, ofUID
}

// Len returns the number of tokens held.
func (j *JWTCache) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.items)
}

func (j *JWTCache) store(it *jwtItem) {
	it.size = len(it.key) + len(it.token) + jwtItemOverhead
	maxTotal, maxUID := j.limits()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.items == nil {
		j.items = map[string]*jwtItem{}
		j.lru = list.New()
		j.byUID = map[uint32]*uidTokens{}
	}
	if old, ok := j.items[it.key]; ok {
		j.removeLocked(old, "")
	}
	if it.size > maxUID || it.size > maxTotal {
		j.evicted("too_large")
		return
	}
	u := j.byUID[it.uid]
	if u == nil {
		u = &uidTokens{lru: list.New()}
		j.byUID[it.uid] = u
	}
	// The caller pays for its own excess first, so one uid asking for
	// ever new audiences only ever displaces its own tokens.
	for u.bytes+it.size > maxUID {
		j.removeLocked(u.lru.Back().Value.(*jwtItem), "uid_share")
	}
	for j.bytes+it.size > maxTotal {
		j.removeLocked(j.lru.Back().Value.(*jwtItem), "total")
	}
	if j.byUID[it.uid] == nil { // emptied by the evictions above
		j.byUID[it.uid] = u
	}
	it.all = j.lru.PushFront(it)
	it.own = u.lru.PushFront(it)
	u.bytes += it.size
	j.bytes += it.size
	j.items[it.key] = it
	j.armLocked()
}

// removeLocked drops it, counting the eviction under reason unless reason
// is empty (a token replaced by its successor).
func (j *JWTCache) removeLocked(it *jwtItem, reason string) {
	delete(j.items, it.key)
	j.lru.Remove(it.all)
	u := j.byUID[it.uid]
	u.lru.Remove(it.own)
	u.bytes -= it.size
	if u.lru.Len() == 0 {
		delete(j.byUID, it.uid)
	}
	j.bytes -= it.size
	if reason != "" {
		j.evicted(reason)
	}
}

func (j *JWTCache) evicted(reason string) {
	if j.Metrics != nil {
		j.Metrics.JWTCacheEvictions.WithLabelValues(reason).Inc()
	}
}

// armLocked schedules a sweep at the earliest expiry (but no sooner than
// jwtSweepMin from now) unless one is scheduled or nothing is held.
func (j *JWTCache) armLocked() {
	timed, ok := j.clock().(clock.WithDelayedExecution)
	if j.sweep != nil || len(j.items) == 0 || !ok {
		return
	}
	var first time.Time
	for _, it := range j.items {
		if first.IsZero() || it.exp.Before(first) {
			first = it.exp
		}
	}
	wait := max(first.Sub(j.clock().Now()), jwtSweepMin)
	// The fake clock runs the function while holding its own lock, so the
	// sweep, which reads the clock, runs on a goroutine of its own.
	j.sweep = timed.AfterFunc(wait, func() { go j.sweepExpired() })
}

// sweepExpired drops every expired token and schedules the next sweep.
func (j *JWTCache) sweepExpired() {
	now := j.clock().Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sweep = nil
	for _, it := range j.items {
		if !now.Before(it.exp) {
			j.removeLocked(it, "expired")
		}
	}
	j.armLocked()
}

func (j *JWTCache) limits() (total, perUID int) {
	total, perUID = j.MaxBytes, j.MaxBytesPerUID
	if total <= 0 {
		total = DefaultJWTCacheBytes
	}
	if perUID <= 0 {
		perUID = DefaultJWTCacheBytesPerUID
	}
	return total, min(perUID, total)
}

func (j *JWTCache) clock() clock.Clock {
	if j.Clock == nil {
		return clock.RealClock{}
	}
	return j.Clock
}
