package cache

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"

	"github.com/sworn-id/sworn/ca"
)

// JWTCache hands out JWT-SVIDs, signing each (identity, audience set) once
// and again when half its life has passed, so a client asking often does
// not cost a signature per call. Concurrent requests for the same token
// share one signature; expired tokens are dropped so the cache stays
// bounded by the tokens in use.
type JWTCache struct {
	Signer ca.JWTSigner
	TTL    time.Duration
	Clock  clock.Clock

	group singleflight.Group
	mu    sync.Mutex
	items map[string]jwtItem
}

type jwtItem struct {
	token       string
	issued, exp time.Time
}

const maxJWTs = 10000

// Get returns a JWT-SVID for id valid for every audience.
func (j *JWTCache) Get(ctx context.Context, id spiffeid.ID, audience []string) (string, error) {
	aud := slices.Clone(audience)
	slices.Sort(aud)
	aud = slices.Compact(aud)
	key := id.String() + "\x00" + strings.Join(aud, "\x00")
	now := j.clock().Now()
	j.mu.Lock()
	it, ok := j.items[key]
	j.mu.Unlock()
	if ok && now.Before(it.issued.Add(it.exp.Sub(it.issued)/2)) {
		return it.token, nil
	}
	v, err, _ := j.group.Do(key, func() (any, error) {
		token, exp, err := j.Signer.SignJWTSVID(ctx, ca.JWTSVIDRequest{ID: id, Audience: aud, TTL: j.TTL})
		if err != nil {
			return "", fmt.Errorf("cache: sign JWT-SVID for %s: %w", id, err)
		}
		j.store(key, jwtItem{token: token, issued: now, exp: exp})
		return token, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (j *JWTCache) store(key string, it jwtItem) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.items == nil {
		j.items = map[string]jwtItem{}
	}
	if len(j.items) >= maxJWTs {
		now := j.clock().Now()
		for k, old := range j.items {
			if !now.Before(old.exp) {
				delete(j.items, k)
			}
		}
		if len(j.items) >= maxJWTs {
			clear(j.items) // all live and too many: start over rather than grow
		}
	}
	j.items[key] = it
}

func (j *JWTCache) clock() clock.Clock {
	if j.Clock == nil {
		return clock.RealClock{}
	}
	return j.Clock
}
