package rotation

import (
	"math"
	"time"
)

// Validity is the window in which a credential is valid.
type Validity struct {
	NotBefore time.Time
	NotAfter  time.Time
}

// Lifetime is the length of the window.
func (v Validity) Lifetime() time.Duration { return v.NotAfter.Sub(v.NotBefore) }

// Policy says when, within its validity, a credential is renewed.
type Policy struct {
	// Fraction of the lifetime after which to renew; 0 means 0.5.
	Fraction float64
	// Jitter is the largest shift, as a fraction of the lifetime, applied in
	// either direction; 0 means 0.1. A negative value disables jitter.
	Jitter float64
}

// DefaultPolicy renews at half the lifetime, ±10%.
var DefaultPolicy = Policy{Fraction: 0.5, Jitter: 0.1}

// RenewAt returns when a credential valid for v should be renewed. r is a
// uniform random number in [0,1) that picks the jitter.
func (p Policy) RenewAt(v Validity, r float64) time.Time {
	fraction, jitter := p.Fraction, p.Jitter
	if fraction <= 0 || fraction >= 1 {
		fraction = 0.5
	}
	switch {
	case jitter == 0:
		jitter = 0.1
	case jitter < 0:
		jitter = 0
	}
	at := fraction + (2*r-1)*jitter
	at = math.Min(math.Max(at, 0), 1)
	return v.NotBefore.Add(time.Duration(float64(v.Lifetime()) * at))
}

// Backoff spaces out retries after failures.
type Backoff struct {
	// Initial is the wait after the first failure; 0 means one second.
	Initial time.Duration
	// Max caps the wait; 0 means one minute.
	Max time.Duration
}

// Delay returns the wait before retry number attempt (1 for the first retry).
// It doubles with each attempt up to Max and is jittered to between half and
// all of that, so that callers failing together do not retry together. r is
// uniform in [0,1). If the credential expires in remaining, the wait is also
// capped at half of it, so that a CA that comes back is noticed in time.
func (b Backoff) Delay(attempt int, remaining time.Duration, r float64) time.Duration {
	initial, ceiling := b.Initial, b.Max
	if initial <= 0 {
		initial = time.Second
	}
	if ceiling <= 0 {
		ceiling = time.Minute
	}
	if attempt < 1 {
		attempt = 1
	}
	d := ceiling
	if attempt < 32 {
		if exp := initial << (attempt - 1); exp > 0 && exp < ceiling {
			d = exp
		}
	}
	if remaining > 0 && remaining/2 < d {
		d = max(remaining/2, initial)
	}
	return d/2 + time.Duration(r*float64(d/2))
}

// SpreadDelay is how long after now the i-th (from 0) of n forced renewals
// waits when they are spread over window instead of sent at once: slot
// (i+phase)/n of the window, so the n renewals come evenly paced, window/n
// apart, and agents that draw different phases interleave rather than
// collide. The window is cut, for this credential, to half of left (what
// remains of its life), so a spread renewal always leaves the credential
// at least half its remaining life for retries; one with little left goes
// at once. phase is uniform in [0,1); window <= 0 means no spread.
func SpreadDelay(window, left time.Duration, i, n int, phase float64) time.Duration {
	window = min(window, left/2)
	if window <= 0 || n <= 0 {
		return 0
	}
	return time.Duration((float64(i) + phase) / float64(n) * float64(window))
}
