package cache_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sworn-id/sworn/agent/cache"
	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/ca/local"
	"github.com/sworn-id/sworn/internal/testutil"
)

// jwtSigner is the embedded CA on the test's clock, counting signatures.
type jwtSigner struct {
	ca    *local.CA
	calls atomic.Int32
}

func (s *jwtSigner) SignJWTSVID(ctx context.Context, req ca.JWTSVIDRequest) (string, time.Time, error) {
	s.calls.Add(1)
	return s.ca.SignJWTSVID(ctx, req)
}

func newJWTCache(t *testing.T, clk *clocktesting.FakeClock, maxBytes, perUID int) (*cache.JWTCache, *jwtSigner) {
	t.Helper()
	c, err := local.New(local.Config{TrustDomain: td, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	s := &jwtSigner{ca: c}
	return &cache.JWTCache{Signer: s, TTL: 5 * time.Minute, Clock: clk, MaxBytes: maxBytes, MaxBytesPerUID: perUID}, s
}

func getJWT(t *testing.T, j *cache.JWTCache, uid uint32, aud ...string) string {
	t.Helper()
	token, err := j.Get(context.Background(), cache.Requester{PID: 1, UID: uid}, spiffeid.RequireFromPath(td, "/web"), aud)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// The review's attack: many calls with large, distinct audiences, then
// silence. Every byte must be given back once the tokens expire, without
// any further call.
func TestJWTCacheDropsExpiredTokensWithoutFurtherCalls(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	j, _ := newJWTCache(t, clk, 0, 0)
	big := strings.Repeat("a", 2000)
	for i := range 40 {
		getJWT(t, j, 1000, fmt.Sprintf("%s-%d", big, i))
	}
	total, own := j.BytesOf(1000)
	if j.Len() != 40 || total < 40*2000 || own != total {
		t.Fatalf("after 40 tokens: len %d, bytes %d (uid's %d); want 40 tokens counted with their audiences", j.Len(), total, own)
	}

	clk.Step(5*time.Minute + time.Second) // past expiry, and past the sweep's minimum wait
	testutil.Eventually(t, "expired tokens to be dropped", func() bool {
		total, own := j.BytesOf(1000)
		return j.Len() == 0 && total == 0 && own == 0
	})
}

func TestJWTCacheBoundsBytesPerUIDAndInTotal(t *testing.T) {
	const perUID, maxTotal = 16 << 10, 40 << 10
	clk := clocktesting.NewFakeClock(time.Now())
	j, signer := newJWTCache(t, clk, maxTotal, perUID)

	// A quiet uid's token must survive a noisy uid filling its share.
	quiet := getJWT(t, j, 2000, "db")
	for i := range 200 {
		getJWT(t, j, 1000, fmt.Sprintf("audience-%d-%s", i, strings.Repeat("x", 200)))
		if total, own := j.BytesOf(1000); own > perUID || total > maxTotal {
			t.Fatalf("after %d tokens: uid 1000 holds %d bytes (limit %d), cache %d (limit %d)", i+1, own, perUID, total, maxTotal)
		}
	}
	if _, own := j.BytesOf(1000); own < perUID/2 {
		t.Fatalf("uid 1000 holds %d bytes; its share (%d) should be nearly used, not emptied", own, perUID)
	}
	before := signer.calls.Load()
	if again := getJWT(t, j, 2000, "db"); again != quiet || signer.calls.Load() != before {
		t.Fatal("a noisy uid over its share evicted another uid's token")
	}
	// The noisy uid's newest token is kept; its oldest went.
	getJWT(t, j, 1000, fmt.Sprintf("audience-%d-%s", 199, strings.Repeat("x", 200)))
	if signer.calls.Load() != before {
		t.Fatal("the noisy uid's most recent token was evicted instead of its oldest")
	}
	getJWT(t, j, 1000, fmt.Sprintf("audience-%d-%s", 0, strings.Repeat("x", 200)))
	if signer.calls.Load() != before+1 {
		t.Fatal("the noisy uid's oldest token was still cached beyond its share")
	}

	// Many uids, each within its share, still cannot grow the cache past
	// its total.
	for uid := uint32(3000); uid < 3020; uid++ {
		for i := range 10 {
			getJWT(t, j, uid, fmt.Sprintf("aud-%d-%s", i, strings.Repeat("y", 200)))
			if total, _ := j.BytesOf(uid); total > maxTotal {
				t.Fatalf("cache holds %d bytes, over its limit %d", total, maxTotal)
			}
		}
	}
}

func TestJWTCacheDoesNotKeepATokenLargerThanAShare(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	j, signer := newJWTCache(t, clk, 8<<10, 4<<10)
	aud := strings.Repeat("z", 5<<10)
	first := getJWT(t, j, 1000, aud)
	if j.Len() != 0 {
		t.Fatalf("a token larger than a uid's share was cached (%d held)", j.Len())
	}
	if second := getJWT(t, j, 1000, aud); second == "" || signer.calls.Load() != 2 || first == "" {
		t.Fatalf("an uncacheable token must still be handed out, freshly signed (signatures: %d)", signer.calls.Load())
	}
}

func TestJWTCacheServesOneTokenUntilHalfLife(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	j, signer := newJWTCache(t, clk, 0, 0)
	first := getJWT(t, j, 1000, "db", "cache")
	if again := getJWT(t, j, 1000, "cache", "db", "db"); again != first {
		t.Fatal("the same audience set in another order signed a new token")
	}
	if other := getJWT(t, j, 1001, "db", "cache"); other == first {
		t.Fatal("another uid was handed the token cached for uid 1000")
	}
	calls := signer.calls.Load()
	clk.Step(2*time.Minute + 31*time.Second)
	if renewed := getJWT(t, j, 1000, "db", "cache"); renewed == first || signer.calls.Load() != calls+1 {
		t.Fatal("a token past half its life was served from the cache")
	}
	if j.Len() != 2 {
		t.Fatalf("a renewed token must replace its predecessor: %d held, want 2", j.Len())
	}
}
