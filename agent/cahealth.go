package agent

import (
	"context"
	"errors"

	"github.com/sworn-id/sworn/ca"
)

// caState is what the last CA call said about the CA.
type caState int32

const (
	// caAnswered: the CA answered (even an error that is the request's
	// fault). The zero value: the agent starts assuming its CA is fine.
	caAnswered caState = iota
	// caUnreachable: the CA could not be reached or did not answer
	// (ca.ErrUnavailable); it may come back on its own.
	caUnreachable
	// caRefused: the CA answered and turned the agent away (ca.ErrRefused):
	// its credentials were rejected or the CA's policy forbids the call.
	// Waiting does not help; an operator must act.
	caRefused
	// caExpired: the CA has expired, or cannot cover a full SVID
	// lifetime (ca.ErrExpired): it signs nothing rather than an SVID that
	// outlives it. Waiting does not help; an operator must rotate the CA
	// or lower svid.ttl.
	caExpired
)

// Messages /ready gives for a CA that answered but cannot serve the agent.
const (
	readyRefused = "CA refused the agent's credentials (fix the agent's CA credentials or the CA's policy; waiting will not help)"
	readyExpired = "CA cannot cover a full SVID lifetime: it has expired or expires too soon (rotate the CA or lower svid.ttl; waiting will not help)"
)

// classifyCA sorts a CA call's result. A refusal, then an expired CA, is
// checked first: neither is ever an outage, whatever else the error wraps,
// since each needs an operator.
func classifyCA(err error) caState {
	switch {
	case err == nil:
		return caAnswered
	case errors.Is(err, ca.ErrRefused):
		return caRefused
	case errors.Is(err, ca.ErrExpired):
		return caExpired
	case errors.Is(err, ca.ErrUnavailable):
		return caUnreachable
	default:
		return caAnswered
	}
}

// observeCA records what a CA call said about the CA, logs each change
// and sets the ca_reachable metric: 1 when the CA answered, refusals and
// an expired CA included (/ready tells those apart), 0 when it could not
// be reached.
func (a *Agent) observeCA(err error) {
	state := classifyCA(err)
	if prev := caState(a.caState.Swap(int32(state))); prev != state {
		switch state {
		case caAnswered:
			a.caBack.Notify()
			switch prev {
			case caRefused:
				a.log.Info("CA accepts the agent again")
			case caExpired:
				a.log.Info("CA covers a full SVID lifetime again")
			default:
				a.log.Info("CA reachable again")
			}
		case caUnreachable:
			a.log.Error("CA unreachable; cached SVIDs are still served", "error", err)
		case caRefused:
			a.log.Error("CA refused the agent; cached SVIDs are still served, but none is renewed until an operator fixes the agent's CA credentials or the CA's policy", "error", err)
		case caExpired:
			a.log.Error("CA cannot cover a full SVID lifetime; cached SVIDs are still served until they expire, but none is renewed until an operator rotates the CA or lowers svid.ttl", "error", err)
		}
	}
	if state == caUnreachable {
		a.metrics.CAReachable.Set(0)
	} else {
		a.metrics.CAReachable.Set(1)
	}
}

// retryWhenCAReturns renews, as soon as the CA answers again after an
// outage, a refusal or an expiry, every SVID whose renewal failed meanwhile,
// most urgent first, paced as a re-issue (rotation.reissue_spread, within
// rotation.max_concurrent and max_per_second; an expired SVID at once):
// each would otherwise wait out its own backoff, up to a minute, even with
// its SVID already expired.
func (a *Agent) retryWhenCAReturns(ctx context.Context) {
	back := a.caBack.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-back:
		}
		back = a.caBack.Changed()
		if n := a.cache.RetryFailed(); n > 0 {
			a.log.Info("CA answers again; renewing the SVIDs whose renewal failed, most urgent first, at the re-issue pace", "svids", n)
		}
	}
}

// readiness is what /ready reports: nil when the agent serves and can
// renew, else why not.
func (a *Agent) readiness() error {
	if !a.listening.Load() {
		return errors.New("workload API not listening yet")
	}
	switch caState(a.caState.Load()) {
	case caUnreachable:
		return errors.New("CA unreachable")
	case caRefused:
		return errors.New(readyRefused)
	case caExpired:
		return errors.New(readyExpired)
	}
	if a.podsReady != nil && !a.podsReady() {
		return errors.New("pods of this node not listed yet")
	}
	return a.connectionsReady()
}
