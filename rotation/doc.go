// Package rotation decides when short-lived credentials are renewed and runs
// the renewals.
//
// Policy is pure arithmetic: a credential is renewed at a fraction of its
// lifetime (half by default) shifted by a random jitter (±10% of the lifetime
// by default), so that credentials issued together do not all come due in the
// same instant. Backoff spaces retries after a failure exponentially, with
// jitter, and never waits past the point where the credential would expire
// unrenewed if a shorter wait still leaves time to recover.
//
// Scheduler applies a Policy to many keys. It guarantees that
//   - at most Workers renewals run at once, however many come due together
//     (after an outage every overdue key is retried, but never as a burst
//     above that bound);
//   - a failed renewal is retried with Backoff until it succeeds or the key
//     is untracked, so a credential is never silently left to expire;
//   - RetryFailed (the cause of failures is gone) renews every failed key,
//     most urgent first, paced as Spread paces (n keys over n × each, none
//     past half its remaining life): an outage ends for every agent at
//     once, and their backlogs must not reach the CA in one burst; keys
//     due at the same instant go in order of their credential's expiry;
//   - a key is never renewed twice concurrently; Force on a key that is
//     being renewed renews it once more afterwards, at once even if that
//     renewal failed (the backoff applies if the forced one fails too);
//   - Spread (Force paced over a window, for a re-issue of every key after a
//     CA change) renews the keys most urgent first, evenly window/n apart
//     from a random phase, so agents that re-issue together interleave; no
//     key waits past half its credential's remaining life, and one with
//     little left goes at once.
//
// Time comes from an injected clock so tests drive it deterministically;
// timers are armed for an instant, not for a wait read a moment earlier
// (ArmAt), so a renewal is never late by the time it took to arm it. The
// package imports nothing else of sworn's.
package rotation
